"""
Dry runs: which tasks a run would start, and the first reason for each, running nothing.

Each task is checked in dependency order as a run would check it
(`freshness`), against what the store recorded, with nothing written: not
the store, not a file. A task that is up to date by itself still runs when
a task it depends on would run ("upstream changed"), since that task's new
outputs cannot be known without running it. A task with a kind is shown
with the first tool it could be routed to.
"""

from __future__ import annotations

import attrs
import trio

from ..deciding.checks import check_request
from ..deciding.settings import Settings
from ..recording.store import Store
from ..workflow.graph import TaskGraph
from ..workflow.spec import WorkflowSpec
from .preparation import open_freshness


@attrs.frozen
class DryRunTask:
    """Whether a run would start one task, and why."""

    task_id: str
    runs: bool
    reason: str
    """The first reason it would run ("never run", "input changed: a.c"...), or "up to date"."""


async def dry_run(
    spec: WorkflowSpec, graph: TaskGraph, store: Store, *, always_make: bool = False
) -> list[DryRunTask]:
    """What a run of `spec` would do with each task, in the order a run could take them."""
    freshness = await trio.to_thread.run_sync(open_freshness, spec, store)
    settings = Settings(spec)
    runs = [False] * len(graph)
    found = []
    for level in graph.levels:
        for i in level:
            task = spec.tasks[i]
            tools = spec.candidate_tools(task)
            tool = tools[0].name if tools else None
            request = check_request(spec, graph, settings, i, tool, always_make)
            verdict = await freshness.check(request)
            reason = verdict.reason
            if not reason and any(runs[dep] for dep in graph.deps[i]):
                reason = "upstream changed"
            runs[i] = bool(reason)
            found.append(DryRunTask(task.id, runs[i], reason or "up to date"))
    return found
