"""``uet validate`` and ``uet plan``: everything that can be known without running."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any

import click

from ._common import db_option, echo_json, open_store, seconds

if TYPE_CHECKING:
    from uet_trio.deciding.routing import Router
    from uet_trio.workflow.graph import TaskGraph
    from uet_trio.workflow.spec import WorkflowSpec


def _load(flow: str) -> tuple[WorkflowSpec, TaskGraph]:
    from uet_trio.errors import WorkflowError
    from uet_trio.workflow.graph import compile_graph
    from uet_trio.workflow.loader import load_workflow

    spec = load_workflow(flow)
    try:
        return spec, compile_graph(spec)
    except WorkflowError as error:
        raise error.in_file(flow) from None


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
def validate(flow: str) -> None:
    """Check a workflow file without running anything."""
    spec, graph = _load(flow)
    click.echo(
        f"{flow}: ok: workflow {spec.name!r}, {len(graph)} tasks in {len(graph.levels)} "
        f"levels, {len(spec.tools)} tools"
    )


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plan(flow: str, db: str, as_json: bool) -> None:
    """
    Show the execution levels, the tool each task would use and why.

    When the database exists, the plan starts from what earlier runs of the
    workflow recorded there, as `uet run` does: the router's saved metrics
    (for ``fastest`` and ``round_robin``) and the tasks' durations (for the
    critical-path weights). Tools are chosen in level order, so
    ``least_loaded`` and ``round_robin`` show how a burst would be spread.
    """
    from uet_trio.deciding.priority import remaining_path, task_weights
    from uet_trio.deciding.routing import Router

    spec, graph = _load(flow)
    router = Router(spec)
    durations: dict[str, list[float]] = {}
    if os.path.exists(db):
        with open_store(db) as store:
            saved = store.load_router_state(spec.name)
            durations = store.recent_durations(spec.name)
        if saved is not None:
            router.restore(saved)
    path = remaining_path(graph, task_weights(graph, durations))
    levels: list[list[dict[str, Any]]] = []
    for level in graph.levels:
        entries = []
        for i in level:
            task = spec.tasks[i]
            entry: dict[str, Any] = {"id": task.id, "priority": task.priority, "path": path[i]}
            tool = None
            if task.kind is not None:
                decision = router.choose(task)
                assert decision is not None
                router.queued(decision.tool)
                tool = spec.tools[decision.tool]
                entry.update(
                    kind=task.kind,
                    tool=tool.name,
                    strategy=decision.strategy,
                    candidates=list(decision.candidates),
                    reason=decision.reason,
                )
            argv = task.argv(tool, redact=True)
            entry["argv"] = list(argv) if argv is not None else None
            entries.append(entry)
        levels.append(entries)
    routing = _routing_table(spec, router)
    critical = max(path)
    if as_json:
        echo_json(
            {
                "workflow": spec.name,
                "tasks": len(graph),
                "critical_path": critical,
                "history": bool(durations),
                "routing": routing,
                "levels": levels,
            }
        )
        return
    if durations:
        length = f"{seconds(critical)} by recorded durations"
    else:
        length = f"{critical:g} tasks (no recorded durations)"
    click.echo(
        f"workflow {spec.name}: {len(graph)} tasks in {len(levels)} levels; critical path {length}"
    )
    if routing:
        click.echo("routing:")
        for kind, route in routing.items():
            tools = ", ".join(
                name + (f" (max {limit})" if limit is not None else "")
                for name, limit in ((t["name"], t["max_concurrency"]) for t in route["tools"])
            )
            click.echo(f"  {kind}: {route['strategy']} over {tools}")
    width = min(40, max(len(task.id) for task in spec.tasks))
    for depth, entries in enumerate(levels):
        click.echo(f"level {depth}:")
        for entry in entries:
            route_text = ""
            if "tool" in entry:
                route_text = (
                    f"[{entry['kind']} -> {entry['tool']} ({entry['strategy']}: "
                    f"{entry['reason']})] "
                )
            command = shlex.join(entry["argv"]) if entry["argv"] else "(callable)"
            click.echo(f"  {entry['id']:<{width}}  {route_text}{command}")


def _routing_table(spec: WorkflowSpec, router: Router) -> dict[str, dict[str, Any]]:
    """Strategy and candidate tools (with their limits) of every routed kind."""
    table: dict[str, dict[str, Any]] = {}
    for task in spec.tasks:
        if task.kind is None or task.tool is not None or task.kind in table:
            continue
        strategy, candidates = router.route_of(task)
        table[task.kind] = {
            "strategy": strategy,
            "tools": [
                {"name": name, "max_concurrency": spec.tools[name].max_concurrency}
                for name in candidates
            ],
        }
    return table


COMMANDS = [validate, plan]
