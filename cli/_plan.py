"""``uet validate`` and ``uet plan``: everything that can be known without running."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import click

from ._common import echo_json

if TYPE_CHECKING:
    from uet_trio.graph import TaskGraph
    from uet_trio.spec import WorkflowSpec


def _load(flow: str) -> tuple[WorkflowSpec, TaskGraph]:
    from uet_trio.errors import WorkflowError
    from uet_trio.graph import compile_graph
    from uet_trio.loader import load_workflow

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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plan(flow: str, as_json: bool) -> None:
    """Show the execution levels and the tool each task would use."""
    from uet_trio.routing import Router

    spec, graph = _load(flow)
    router = Router(spec)
    levels: list[list[dict[str, Any]]] = []
    for level in graph.levels:
        entries = []
        for i in level:
            task = spec.tasks[i]
            entry: dict[str, Any] = {"id": task.id, "priority": task.priority}
            tool = None
            if task.kind is not None:
                strategy, candidates = router.route_of(task)
                decision = router.choose(task)
                assert decision is not None
                tool = spec.tools[decision.tool]
                entry.update(
                    kind=task.kind, tool=tool.name, strategy=strategy, candidates=list(candidates)
                )
            argv = task.argv(tool, redact=True)
            entry["argv"] = list(argv) if argv is not None else None
            entries.append(entry)
        levels.append(entries)
    if as_json:
        echo_json({"workflow": spec.name, "tasks": len(graph), "levels": levels})
        return
    click.echo(f"workflow {spec.name}: {len(graph)} tasks in {len(levels)} levels")
    width = min(40, max(len(task.id) for task in spec.tasks))
    for depth, entries in enumerate(levels):
        click.echo(f"level {depth}:")
        for entry in entries:
            route = ""
            if "tool" in entry:
                route = f"[{entry['kind']} -> {entry['tool']} ({entry['strategy']})] "
            command = shlex.join(entry["argv"]) if entry["argv"] else "(callable)"
            click.echo(f"  {entry['id']:<{width}}  {route}{command}")


COMMANDS = [validate, plan]
