"""
The compiled DAG and the ready set the scheduler draws from.

`compile_graph` turns a validated `WorkflowSpec` into integer-indexed adjacency
lists once per run (a task depends on its ``depends_on`` and ``after`` tasks
and on the producers of its inputs, the tasks that declare them as outputs):
cycle detection (naming the cycle) and topological levels are computed here
and cached. `ReadySet` keeps indegree counters and a heap, so
completing a task costs O(out-degree + log n): nothing scans or sorts all tasks.
No Trio here; the scheduler drives it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..errors import CycleError
from .spec import WorkflowSpec


@attrs.frozen
class TaskGraph:
    """Integer-indexed dependency structure of one workflow (index = declaration order)."""

    ids: tuple[str, ...]
    index: dict[str, int]
    deps: tuple[tuple[int, ...], ...]
    """deps[i]: the tasks i waits for."""
    dependents: tuple[tuple[int, ...], ...]
    """dependents[i]: the tasks waiting for i."""
    levels: tuple[tuple[int, ...], ...]
    """Topological levels: level 0 has no dependencies; each task sits one past its deepest dep."""
    soft: tuple[frozenset[int], ...] = ()
    """
    soft[i]: the deps of i that need only finish (its ``after`` tasks that are
    not also required); every other dep must succeed. Empty when no task has any.
    """

    def waits_only_for(self, task: int, dep: int) -> bool:
        """Whether `task` needs `dep` only to have finished, not to have succeeded."""
        return bool(self.soft) and dep in self.soft[task]

    def __len__(self) -> int:
        return len(self.ids)

    def descendants(self, start: int) -> list[int]:
        """Every task downstream of `start` (not `start` itself), in index order."""
        seen = {start}
        stack = [start]
        while stack:
            for nxt in self.dependents[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        seen.discard(start)
        return sorted(seen)


_NONE: frozenset[int] = frozenset()


def compile_graph(spec: WorkflowSpec) -> TaskGraph:
    """
    Compile `spec` into a `TaskGraph`.

    Raises:
        CycleError: the dependencies form a cycle; the error lists it.
    """
    ids = tuple(task.id for task in spec.tasks)
    index = {task_id: i for i, task_id in enumerate(ids)}
    position = index.__getitem__
    producer = {path: i for i, task in enumerate(spec.tasks) for path in task.outputs}
    deps_lists: list[tuple[int, ...]] = []
    soft_sets: list[frozenset[int]] = []
    for task in spec.tasks:
        required = tuple(map(position, task.depends_on))
        if producer and task.inputs:
            required += tuple(producer[path] for path in task.inputs if path in producer)
        if task.after:
            only_after = tuple(map(position, task.after))
            deps_lists.append(tuple(dict.fromkeys(required + only_after)))
            soft_sets.append(frozenset(only_after).difference(required))
        else:
            # A task's own list seldom repeats a task: most have one dependency.
            deps_lists.append(tuple(dict.fromkeys(required)) if len(required) > 1 else required)
            soft_sets.append(_NONE)
    deps = tuple(deps_lists)
    del deps_lists
    dependents_lists: list[Any] = [[] for _ in ids]
    for i, task_deps in enumerate(deps):
        for d in task_deps:
            dependents_lists[d].append(i)
    # Each list becomes a tuple in place, so both forms of a million are never
    # held at once; every task without dependents shares the empty tuple.
    for i, waiting in enumerate(dependents_lists):
        dependents_lists[i] = tuple(waiting) if waiting else ()
    dependents: tuple[tuple[int, ...], ...] = tuple(dependents_lists)
    del dependents_lists
    levels = _levels(deps, dependents)
    if sum(len(level) for level in levels) != len(ids):
        raise CycleError([ids[i] for i in _find_cycle(deps, levels)])
    soft = tuple(soft_sets) if any(soft_sets) else ()
    return TaskGraph(
        ids=ids, index=index, deps=deps, dependents=dependents, levels=levels, soft=soft
    )


def _levels(
    deps: Sequence[Sequence[int]], dependents: Sequence[Sequence[int]]
) -> tuple[tuple[int, ...], ...]:
    """Kahn's algorithm by layers; tasks on a cycle never reach indegree zero."""
    indegree = [len(d) for d in deps]
    current = [i for i, n in enumerate(indegree) if n == 0]
    levels = []
    while current:
        levels.append(tuple(current))
        following = []
        for i in current:
            for nxt in dependents[i]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    following.append(nxt)
        current = sorted(following)
    return tuple(levels)


def _find_cycle(deps: Sequence[Sequence[int]], levels: Iterable[Iterable[int]]) -> list[int]:
    """
    Walk dependencies among the unplaced tasks until one repeats; return that loop.

    Read ``a -> b`` as "a depends on b"; the loop starts at its first-declared task.
    """
    placed = {i for level in levels for i in level}
    start = next(i for i in range(len(deps)) if i not in placed)
    path: list[int] = []
    position: dict[int, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(d for d in deps[node] if d not in placed)
    loop = path[position[node] :]
    first = loop.index(min(loop))
    loop = loop[first:] + loop[:first]
    return [*loop, loop[0]]


class ReadySet:
    """
    Tasks whose dependencies are all finished, in a dispatch order fixed for the run.

    `order` lists every task index once, the one to dispatch first first
    (`priority.ready_order`). Tasks enter through `release` as their last
    dependency completes, or through `push` (retries, resumed runs). The
    heap holds each ready task's position in that order, an int, so a push
    or pop compares ints.
    """

    def __init__(self, graph: TaskGraph, order: Sequence[int]) -> None:
        self._graph = graph
        self._waiting = [len(d) for d in graph.deps]
        self._order = list(order)
        self.position = [0] * len(self._order)
        """Each task's place in the ready order (a sort key for any queue of tasks)."""
        for place, i in enumerate(self._order):
            self.position[i] = place
        self._heap: list[int] = []

    def roots(self) -> list[int]:
        """Tasks with no dependencies, in index order."""
        return [i for i, n in enumerate(self._waiting) if n == 0]

    def push(self, i: int) -> None:
        """Make task `i` ready."""
        heapq.heappush(self._heap, self.position[i])

    def pop(self) -> int | None:
        """Remove and return the ready task that should run first; None if none is ready."""
        return self._order[heapq.heappop(self._heap)] if self._heap else None

    def release(self, finished: int) -> list[int]:
        """
        Record that `finished` is done; return its dependents that became ready.

        The caller decides whether to `push` them (a skipped task is not pushed).
        """
        released = []
        for nxt in self._graph.dependents[finished]:
            self._waiting[nxt] -= 1
            if self._waiting[nxt] == 0:
                released.append(nxt)
        return released
