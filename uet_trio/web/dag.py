"""
A recorded run's dependency edges and levels, for drawing its DAG.

The store records no dependencies, so the edges come from the workflow file
the run was started from, when that file still describes the same workflow
(its fingerprint equals the run's ``spec_hash`` and it has the same tasks).
Otherwise they are rebuilt from the events (`Store.ready_causes`): each task
gets one edge, from the dependency whose end made it ready, which keeps the
drawing's shape but not every edge; `RunGraph.source` says which was used.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..errors import WorkflowError
from ..recording.store import Store
from ..workflow.graph import compile_graph
from ..workflow.loader import load_workflow


@attrs.frozen(kw_only=True)
class RunGraph:
    """The edges and levels of one run's tasks, by task index (declaration order)."""

    edges: tuple[tuple[int, int], ...]
    """(dependency, dependent) pairs of task indexes."""
    levels: tuple[int, ...]
    """levels[i]: 0 for a task with no drawn dependency, else one past its deepest one."""
    source: str
    """``"workflow"`` (every edge, from the workflow file) or ``"events"`` (one per task)."""


def run_graph(
    store: Store, run_id: str, task_ids: Sequence[str], *, from_file: bool = True
) -> RunGraph:
    """
    The edges and levels of run `run_id`, whose tasks in declaration order are `task_ids`.

    `from_file` False skips the workflow file (known not to match) and
    rebuilds the edges from the events at once.

    Raises:
        RunNotFound: no such run.
        StoreError: the store cannot be read.
    """
    edges = None
    if from_file:
        run = store.get_run(run_id)
        edges = _edges_from_workflow(run.source, run.spec_hash, task_ids)
    source = "workflow"
    if edges is None:
        source = "events"
        index = {task_id: i for i, task_id in enumerate(task_ids)}
        edges = [
            (index[cause], index[task_id])
            for task_id, cause in store.ready_causes(run_id).items()
            if cause is not None and cause in index and task_id in index
        ]
    return RunGraph(edges=tuple(edges), levels=levels(len(task_ids), edges), source=source)


def _edges_from_workflow(
    source: str | None, spec_hash: str, task_ids: Sequence[str]
) -> list[tuple[int, int]] | None:
    """The edges of the workflow file at `source`, or None if it is gone or changed."""
    if not source:
        return None
    try:
        spec = load_workflow(source)
        if spec.fingerprint() != spec_hash:
            return None
        graph = compile_graph(spec)
    except (WorkflowError, OSError):
        return None
    if tuple(graph.ids) != tuple(task_ids):
        return None
    return [(dep, task) for task, deps in enumerate(graph.deps) for dep in deps]


def levels(count: int, edges: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """
    Each of `count` nodes' level: one past its deepest predecessor along `edges`.

    Kahn's order, so a cycle (impossible in a recorded run, but edges rebuilt
    from events are not checked) leaves its nodes at level 0 instead of looping.
    """
    successors: list[list[int]] = [[] for _ in range(count)]
    waiting = [0] * count
    for before, after in edges:
        successors[before].append(after)
        waiting[after] += 1
    level = [0] * count
    ready = [node for node in range(count) if waiting[node] == 0]
    while ready:
        node = ready.pop()
        for after in successors[node]:
            level[after] = max(level[after], level[node] + 1)
            waiting[after] -= 1
            if waiting[after] == 0:
                ready.append(after)
    return tuple(level)
