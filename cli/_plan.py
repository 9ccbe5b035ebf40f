"""``uet validate`` and ``uet plan``: everything that can be known without running."""

from __future__ import annotations

import gc
import os
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import click

from ._common import echo_json, flow_db_option, flow_store, open_store, plural, seconds

if TYPE_CHECKING:
    from uet_trio import Plan, PlannedTask, Planner, TaskGraph, WorkflowSpec


@contextmanager
def collector_paused() -> Iterator[None]:
    """
    Hold off Python's cycle collector while a command builds its workflow (and plan).

    Loading a large workflow allocates several objects per task and frees
    almost none, which is what makes the collector run its full passes again
    and again over everything loaded so far (a third of the load time of
    100,000 tasks); nothing loaded or planned forms a cycle to collect. A process-wide
    setting, so only the command line, which owns its process, sets it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
def validate(flow: str) -> None:
    """Check a workflow file without running anything."""
    from uet_trio import open_workflow

    with collector_paused():
        spec, graph = open_workflow(flow)
    click.echo(
        f"{flow}: ok: workflow {spec.name!r}, {plural(len(graph), 'task')} in "
        f"{plural(len(graph.levels), 'level')}, {plural(len(spec.tools), 'tool')}"
    )


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plan(flow: str, db: str | None, as_json: bool) -> None:
    """
    Show the execution levels, the tool each task would use and why.

    When the database exists, the plan starts from what earlier runs of the
    workflow recorded there, as uet run does: the router's saved metrics
    (for fastest and round_robin) and the tasks' durations (for the
    critical-path weights). Tools are chosen in level order, so
    least_loaded and round_robin show how a burst would be spread.
    Each task also shows its effective timeout and retries.
    """
    from uet_trio import Planner, open_workflow, plan_workflow

    with collector_paused():
        spec, graph = open_workflow(flow)
        db = db or flow_store(flow)
        saved = None
        durations: dict[str, list[float]] = {}
        if os.path.exists(db):
            with open_store(db) as store:
                saved = store.load_router_state(spec.name)
                durations = store.recent_durations(spec.name)
        if as_json:
            echo_json(
                _plan_document(plan_workflow(spec, graph, router_state=saved, durations=durations))
            )
        else:
            _echo_plan(spec, graph, Planner(spec, graph, router_state=saved, durations=durations))


def _plan_document(planned: Plan) -> dict[str, Any]:
    """The ``--json`` form of a plan."""
    return {
        "workflow": planned.workflow,
        "task_count": planned.tasks,
        "critical_path_length": planned.critical_path,
        "history": planned.history,
        "routing": {
            route.kind: {
                "strategy": route.strategy,
                "tools": [{"name": name, "max_concurrency": limit} for name, limit in route.tools],
            }
            for route in planned.routes
        },
        "levels": [[_task_document(task) for task in level] for level in planned.levels],
    }


def _task_document(task: PlannedTask) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "task_id": task.id,
        "group": task.group,
        "priority": task.priority,
        "path": task.path,
    }
    if task.strategy is not None:
        entry.update(
            kind=task.kind,
            tool=task.tool,
            strategy=task.strategy,
            candidates=list(task.candidates),
            reason=task.reason,
        )
    entry["argv"] = list(task.argv) if task.argv is not None else None
    entry["timeout"] = task.timeout
    entry["retries"] = task.retries
    return entry


def _echo_plan(spec: WorkflowSpec, graph: TaskGraph, planner: Planner) -> None:
    """The human form of a plan, written level by level as the planner gives them."""
    if planner.history:
        length = f"{seconds(planner.critical_path)} by recorded durations"
    else:
        length = f"{plural(planner.critical_path, 'task')} (no recorded durations)"
    click.echo(
        f"workflow {spec.name}: {plural(len(graph), 'task')} in "
        f"{plural(len(graph.levels), 'level')}; "
        f"critical path {length}"
    )
    if planner.routes:
        click.echo("routing:")
        for route in planner.routes:
            tools = ", ".join(
                name + (f" (max {limit})" if limit is not None else "")
                for name, limit in route.tools
            )
            click.echo(f"  {route.kind}: {route.strategy} over {tools}")
    width = min(
        40,
        max(
            len(f"{task.group}[...]" if task.group is not None else task.id) for task in spec.tasks
        ),
    )
    for depth, level in enumerate(planner.levels()):
        # One write per level: a million tasks are a million lines.
        lines = [f"level {depth}:"]
        for task, count in _grouped(level):
            route_text = ""
            if task.strategy is not None:
                route_text = f"[{task.kind} -> {task.tool} ({task.strategy}: {task.reason})] "
            command = _quoted(task.argv) if task.argv else "(callable)"
            if count > 1:
                lines.append(
                    f"  {_shown_id(task):<{width}}  {count} instances, the first: {task.id}"
                )
                lines.append(f"  {'':<{width}}  {route_text}{command}{_settings_text(task)}")
            else:
                lines.append(f"  {task.id:<{width}}  {route_text}{command}{_settings_text(task)}")
        click.echo("\n".join(lines))


_quoted = lru_cache(maxsize=1024)(shlex.join)
"""A command as a shell would read it; tasks of one command are quoted once."""


def _shown_id(task: PlannedTask) -> str:
    """How a task is named in a plan: a fanned-out task's instances as ``compile[...]``."""
    return f"{task.group}[...]" if task.group is not None else task.id


def _grouped(level: Sequence[PlannedTask]) -> list[tuple[PlannedTask, int]]:
    """The tasks of a level, each fanned-out task's instances as its first one and their count."""
    first: dict[str, int] = {}
    shown: list[tuple[PlannedTask, int]] = []
    for task in level:
        if task.group is None:
            shown.append((task, 1))
        elif task.group in first:
            entry, count = shown[first[task.group]]
            shown[first[task.group]] = (entry, count + 1)
        else:
            first[task.group] = len(shown)
            shown.append((task, 1))
    return shown


def _settings_text(task: PlannedTask) -> str:
    """The task's effective timeout and retries, when it has either."""
    parts = []
    if task.timeout is not None:
        parts.append(f"timeout {seconds(task.timeout)}")
    if task.retries:
        parts.append(f"{task.retries} {'retry' if task.retries == 1 else 'retries'}")
    return f"  ({', '.join(parts)})" if parts else ""


COMMANDS = [validate, plan]
