"""
Up-to-date checks as the scheduler asks for them: which tasks are checked, and what a check asks.

A task that declares outputs may be up to date; so that its signature can
cover what it depends on, a task that such a task depends on has a
signature too. `check_request` is what the running layer needs to answer
(`uet_trio.running.freshness`), for a run and for a dry run alike.
"""

from __future__ import annotations

from ..workflow.graph import TaskGraph
from ..workflow.spec import WorkflowSpec
from .attempts import CheckRequest
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
