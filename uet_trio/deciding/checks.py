"""
Up-to-date checks as the scheduler asks for them: which tasks are checked, and what a check asks.

A task that declares outputs may be up to date; so that its signature can
cover what it depends on, a task that such a task depends on has a
signature too. `check_request` is what the running layer needs to answer
(`uet_trio.running.freshness`), for a run and for a dry run alike;
`up_to_date_before_start` asks, in one pass before a run starts, about
every task that can be answered then (a no-op re-run is then decided
before any task is made ready).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..workflow.graph import TaskGraph
from ..workflow.spec import WorkflowSpec
from .attempts import CheckRequest, Verdict
from .settings import Settings


def signed_tasks(spec: WorkflowSpec, graph: TaskGraph) -> list[bool] | None:
    """
    Which tasks have a signature: those that declare outputs, and those that a
    task declaring outputs depends on (its signature covers theirs). None
    when no task declares outputs, so such a run checks nothing.
    """
    declares = [bool(task.outputs) for task in spec.tasks]
    if not any(declares):
        return None
    return [
        declares[i] or any(declares[j] for j in graph.dependents[i]) for i in range(len(declares))
    ]


def check_request(
    spec: WorkflowSpec,
    graph: TaskGraph,
    settings: Settings,
    i: int,
    tool: str | None,
    always_make: bool,
) -> CheckRequest:
    """The up-to-date check of task `i` on `tool` (a run's, or a dry run's)."""
    task = spec.tasks[i]
    effective = settings.of(task, tool)
    return CheckRequest(
        index=i,
        task_id=task.id,
        argv=effective.argv,
        env={**effective.tool_env, **effective.task_env},
        cwd=effective.cwd,
        inputs=task.inputs,
        outputs=task.outputs,
        upstream=tuple((graph.ids[dep], spec.tasks[dep].outputs) for dep in graph.deps[i]),
        judged=bool(task.outputs) and not always_make,
    )


def up_to_date_before_start(
    spec: WorkflowSpec,
    graph: TaskGraph,
    settings: Settings,
    signed: Sequence[bool],
    check: Callable[[CheckRequest], Verdict | None],
) -> Iterator[tuple[int, str] | None]:
    """
    The tasks that `check` finds up to date before a run starts, in
    dependency order: one step per task, (index, signature) for a task
    found up to date, None for any other (so a caller can go in parts).

    A task is asked about only when everything it depends on was found up
    to date here too: its dependencies' outputs are then final, so the
    verdict is the one the run would reach by checking it when it became
    ready. Only tasks whose command is known without routing are asked (no
    kind, or a kind with a single candidate tool); `check` answers None
    when it cannot tell without reading a file. Whatever is not found up
    to date here goes the usual way: ready, checked, run.
    """
    fresh = [False] * len(graph)
    for level in graph.levels:
        for i in level:
            task = spec.tasks[i]
            tools = spec.candidate_tools(task)
            if (
                not (signed[i] and task.outputs)
                or not all(fresh[d] for d in graph.deps[i])
                or len(tools) > 1
            ):
                yield None
                continue
            tool = tools[0].name if tools else None
            verdict = check(check_request(spec, graph, settings, i, tool, always_make=False))
            if verdict is None or not verdict.fresh:
                yield None
                continue
            fresh[i] = True
            # Not the verdict: its detail is no longer needed, and for a
            # large build the details would add up to megabytes held.
            yield i, verdict.signature
