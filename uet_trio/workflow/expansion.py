"""
Fan-out and paths: a task table with ``foreach`` becomes one task per combination.

``foreach`` maps each key to a list of values or to a glob over the
workflow's directory; several keys give their cartesian product, and each
combination is one instance with the id ``ID[key=value,key=value]`` (keys in
declaration order). An instance's params are the task's params and its
combination, and its ``inputs``, ``outputs``, ``env`` values and ``cwd`` are
rendered with them. Then, across the whole workflow, each input glob becomes
the sorted files it matches, on disk or among the declared outputs (which
may not exist yet), and a dependency on a fanned-out task becomes one on
every instance. Globs are Python's: ``**`` is recursive, hidden files match
only a pattern that names them. This module reads directories, nothing else.
"""

from __future__ import annotations

import glob
import itertools
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import WorkflowError
from .templates import render_text, unknown_placeholders

Combination = tuple[tuple[str, str], ...]
"""One instance's foreach values: (key, value) pairs in declaration order."""


def instance_id(task_id: str, combination: Combination) -> str:
    """``compile[src=c/a.c]``: the id of one instance of a fanned-out task."""
    return f"{task_id}[{','.join(f'{key}={value}' for key, value in combination)}]"


def combinations(foreach: Mapping[str, Any], *, task: str, base_dir: Path) -> list[Combination]:
    """
    Every combination of a task's ``foreach`` values, in declaration order.

    Raises:
        WorkflowError: a key has no values, a value is not a string or a
            number, or a glob matches no file.
    """
    axes: list[list[tuple[str, str]]] = []
    for key, values in foreach.items():
        field = f"foreach.{key}"
        if isinstance(values, str):
            matches = match_files(values, base_dir)
            if not matches:
                raise WorkflowError(f"the glob {values!r} matches no file", task=task, field=field)
            items = matches
        elif isinstance(values, list):
            if not values:
                raise WorkflowError("needs at least one value", task=task, field=field)
            items = [_scalar(value, task=task, field=field) for value in values]
        else:
            raise WorkflowError(
                f"expected a list of values or a glob string, got {type(values).__name__}",
                task=task,
                field=field,
            )
        axes.append([(key, item) for item in items])
    return [tuple(combination) for combination in itertools.product(*axes)]


def _scalar(value: Any, *, task: str, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise WorkflowError(f"values are strings or numbers, got {value!r}", task=task, field=field)
    return str(value)


def render_field(template: str, params: Mapping[str, str], *, task: str, field: str) -> str:
    """
    `template` (a path, an env value, a cwd) filled from `params`.

    Raises:
        WorkflowError: a placeholder names no param (never left as a literal).
    """
    if "{" not in template and "}" not in template:
        return template
    try:
        unknown = unknown_placeholders((template,), params)
    except WorkflowError as error:
        raise WorkflowError(error.message, task=task, field=field) from None
    if unknown:
        raise WorkflowError(
            f"unknown placeholder {{{unknown[0]}}} in {template!r} "
            "(not a foreach key or param; write {{ and }} for literal braces)",
            task=task,
            field=field,
        )
    try:
        return render_text(template, params)
    except WorkflowError as error:
        raise WorkflowError(error.message, task=task, field=field) from None


def is_glob(path: str) -> bool:
    """Whether `path` is a pattern (has ``*``, ``?`` or ``[``) rather than one path."""
    return glob.has_magic(path)


def match_files(pattern: str, base_dir: Path) -> list[str]:
    """The paths under `base_dir` that `pattern` matches, relative to it and sorted."""
    return sorted(
        posixpath.normpath(match) for match in glob.glob(pattern, root_dir=base_dir, recursive=True)
    )


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """
    `pattern` as a regular expression over relative paths, as glob reads it.

    ``**/`` is any number of directories, ``*`` and ``?`` stay within one
    path component, ``[...]`` is a character class.
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            parts.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


def resolve_inputs(
    inputs: Sequence[str], *, produced: Iterable[str], base_dir: Path, task: str
) -> list[str]:
    """
    A task's inputs with each glob replaced by what it matches, sorted.

    A glob matches files on disk and the declared outputs `produced` by
    other tasks (which may not exist before the run).

    Raises:
        WorkflowError: a glob matches nothing.
    """
    resolved: list[str] = []
    for path in inputs:
        if not is_glob(path):
            resolved.append(path)
            continue
        regex = _pattern_regex(path)
        matches = set(match_files(path, base_dir))
        matches.update(output for output in produced if regex.match(output))
        if not matches:
            raise WorkflowError(
                f"the glob {path!r} matches no file and no declared output",
                task=task,
                field="inputs",
            )
        resolved.extend(sorted(matches))
    return list(dict.fromkeys(resolved))


def expand_references(deps: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Dependencies with each fanned-out task's id replaced by its instances' ids."""
    expanded: list[str] = []
    for dep in deps:
        expanded.extend(groups.get(dep, (dep,)))
    return expanded
