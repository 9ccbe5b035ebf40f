"""
Critical-path ranks: which ready task to dispatch first.

Among ready tasks of equal user priority, the scheduler dispatches first the
one with the longest remaining path to the end of the DAG, where each task on
the path weighs its expected duration. Starting the long chains early is what
shortens the wall time when workers outnumber nothing but short side tasks:
ordering by depth alone treats a chain of ten 1-second steps like a chain of
ten 10 ms steps.

Expected durations come from earlier runs of the same workflow: the median of
a task's recent successful attempts (robust to one slow outlier). A task with
no record weighs the median of the tasks that have one, or 1 when none has,
in which case the rank is the plain number of tasks left on the longest path.
Everything here is computed once per run, in O(tasks + edges) and a sort;
the ready set then keeps that order with no work per dispatch. Pure functions,
no Trio and no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..workflow.graph import TaskGraph

CRITICAL = "critical"
"""Order ready tasks by priority, then by longest weighted remaining path."""
DECLARED = "declared"
"""Order ready tasks by priority, then by declaration order."""
ORDERS = (CRITICAL, DECLARED)

UNKNOWN_WEIGHT = 1.0
"""The weight of every task when no task of the workflow has a recorded duration."""


def task_weights(graph: TaskGraph, durations: Mapping[str, Sequence[float]]) -> list[float]:
    """
    The expected duration of every task, by index.

    Args:
        graph: the compiled workflow.
        durations: recent successful attempt durations per task id (any
            order); ids that are not in the graph are ignored.
    """
    if not durations:
        return [UNKNOWN_WEIGHT] * len(graph)
    # Imported here: statistics brings fractions and decimal, which a
    # workflow's first run (no durations) need not load.
    import statistics

    known: dict[int, float] = {}
    for task_id, samples in durations.items():
        i = graph.index.get(task_id)
        if i is not None and samples:
            known[i] = statistics.median(samples)
    default = statistics.median(known.values()) if known else UNKNOWN_WEIGHT
    return [known.get(i, default) for i in range(len(graph))]


def remaining_path(graph: TaskGraph, weights: Sequence[float]) -> list[float]:
    """
    For every task, the weight of the heaviest path from it to the end of the DAG.

    The path includes the task itself: a task nothing depends on ranks by its
    own weight.
    """
    longest = [0.0] * len(graph)
    dependents = graph.dependents
    for level in reversed(graph.levels):
        for i in level:
            if dependents[i]:
                longest[i] = weights[i] + max([longest[j] for j in dependents[i]])
            else:
                longest[i] = weights[i]
    return longest


def ready_order(
    graph: TaskGraph,
    priorities: Sequence[int],
    durations: Mapping[str, Sequence[float]],
    order: str,
) -> list[int]:
    """
    Every task's index, in the order the ready set dispatches them (first first).

    ``declared``: by priority (highest first), ties in declaration order.
    ``critical``: by priority, then by longest remaining path, then in
    declaration order.

    Two stable sorts by plain numbers (the path, then the priority) give
    that order without a key tuple per task: 100,000 tuples would cost their
    allocation and bring on garbage collections of everything the run holds.

    Raises:
        ValueError: `order` is not one of `ORDERS`.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (choose from {', '.join(ORDERS)})")
    indices = list(range(len(graph)))
    if order == CRITICAL:
        path = remaining_path(graph, task_weights(graph, durations))
        indices.sort(key=[-length for length in path].__getitem__)
    indices.sort(key=[-priority for priority in priorities].__getitem__)
    return indices
