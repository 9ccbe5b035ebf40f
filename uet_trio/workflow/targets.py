"""
Targets: run only some tasks of a workflow, and what they need.

A target is a task id, an instance id (``compile[src=a.c]``), the id of a
fanned-out task (every instance), a glob over ids in which only ``*`` and
``?`` are wildcards (``'compile[*]'``: brackets are literal, as in ids), or
a declared output path. The selection is the targets and every task they
depend on, transitively, through ``depends_on``, ``after`` and inputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import attrs

from ..errors import WorkflowError
from .graph import TaskGraph
from .spec import WorkflowSpec


def _id_pattern(target: str) -> re.Pattern[str]:
    """`target` as a pattern over ids: ``*`` is any text, ``?`` one character."""
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in target)
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def _output_path(target: str, base_dir: Path) -> str:
    """`target` as a declared output would be spelled: relative to the workflow's directory."""
    return os.path.normpath(os.path.relpath(os.path.abspath(target), base_dir))


def select_targets(spec: WorkflowSpec, graph: TaskGraph, targets: Sequence[str]) -> WorkflowSpec:
    """
    The workflow reduced to `targets` and what they need, in declaration order.

    Raises:
        WorkflowError: a target matches no task, instance or declared output.
    """
    producer = {path: i for i, task in enumerate(spec.tasks) for path in task.outputs}
    wanted: set[int] = set()
    for target in targets:
        matched = _matches(spec, graph, producer, target)
        if not matched:
            raise WorkflowError(
                f"no task, instance or declared output matches {target!r}", field="targets"
            )
        wanted.update(matched)
    needed = set(wanted)
    walk = list(wanted)
    while walk:
        for dep in graph.deps[walk.pop()]:
            if dep not in needed:
                needed.add(dep)
                walk.append(dep)
    tasks = [task for i, task in enumerate(spec.tasks) if i in needed]
    return attrs.evolve(spec, tasks=tasks)


def _matches(
    spec: WorkflowSpec, graph: TaskGraph, producer: dict[str, int], target: str
) -> list[int]:
    """The tasks `target` names: by id, group, id pattern or output path."""
    i = graph.index.get(target)
    if i is not None:
        return [i]
    grouped = [i for i, task in enumerate(spec.tasks) if task.group == target]
    if grouped:
        return grouped
    if "*" in target or "?" in target:
        pattern = _id_pattern(target)
        return [i for i, task_id in enumerate(graph.ids) if pattern.match(task_id)]
    for path in (os.path.normpath(target), _output_path(target, spec.base_dir)):
        if path in producer:
            return [producer[path]]
    return []
