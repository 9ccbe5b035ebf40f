"""``uet graph``: the DAG as Mermaid or Graphviz text, coloured by a run's outcome."""

from __future__ import annotations

import re
from collections import Counter

import click

from uet_trio import TaskState

from ._common import (
    flow_db_option,
    flow_store,
    open_store,
)

GRAPH_FILLS = {
    TaskState.SUCCEEDED: "#b7e1a1",
    TaskState.UP_TO_DATE: "#d8efcc",
    TaskState.FAILED: "#f4a6a6",
    TaskState.CANCELLED: "#f9d88c",
    TaskState.SKIPPED: "#e0e0e0",
    TaskState.RUNNING: "#a6c8f4",
    TaskState.RETRY_WAIT: "#e3c8f4",
    TaskState.READY: "#fff3b0",
    TaskState.PENDING: "#ffffff",
}


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
)
@click.option("--run", "run", help="Colour the tasks by their outcome in RUN (id or prefix).")
@click.option(
    "--expand", is_flag=True, help="One node per instance of a fanned-out task, not one per task."
)
@flow_db_option
def graph(flow: str, fmt: str, run: str | None, expand: bool, db: str | None) -> None:
    """
    Print the workflow's DAG as Mermaid or Graphviz (dot) text.

    A fanned-out task is one node, "compile [35]", unless --expand; coloured
    by a run, it takes the state of its least successful instance.
    """
    from uet_trio import open_workflow

    spec, compiled = open_workflow(flow)
    states: dict[str, TaskState] = {}
    if run is not None:
        with open_store(db or flow_store(flow)) as store:
            run_id = store.resolve_run(run)
            states = {task.task_id: task.state for task in store.tasks(run_id)}
    node_of = {
        task.id: task.id if expand or task.group is None else task.group for task in spec.tasks
    }
    counts = Counter(node_of.values())
    names = {node: f"{node} [{count}]" if count > 1 else node for node, count in counts.items()}
    edges = list(
        dict.fromkeys(
            (names[node_of[compiled.ids[dep]]], names[node_of[task_id]])
            for task_id, deps in zip(compiled.ids, compiled.deps, strict=True)
            for dep in deps
            if node_of[compiled.ids[dep]] != node_of[task_id]
        )
    )
    shown: dict[str, TaskState] = {}
    for task_id, state in states.items():
        if task_id in node_of:
            node = names[node_of[task_id]]
            if node not in shown or _SHOWN_FIRST.index(state) < _SHOWN_FIRST.index(shown[node]):
                shown[node] = state
    render = _mermaid if fmt == "mermaid" else _dot
    click.echo(render(spec.name, tuple(names.values()), edges, shown), nl=False)


_SHOWN_FIRST = (
    TaskState.FAILED,
    TaskState.CANCELLED,
    TaskState.SKIPPED,
    TaskState.RUNNING,
    TaskState.RETRY_WAIT,
    TaskState.READY,
    TaskState.PENDING,
    TaskState.SUCCEEDED,
    TaskState.UP_TO_DATE,
)
"""Which state a fanned-out task's node shows: the first one that any of its instances is in."""


def _mermaid_text(text: str) -> str:
    """`text` safe inside a quoted Mermaid label (entity codes for the special characters)."""
    return re.sub(r'[#"<>]', lambda m: f"#{ord(m.group())};", text)


def _mermaid(
    name: str, ids: tuple[str, ...], edges: list[tuple[str, str]], states: dict[str, TaskState]
) -> str:
    node = {task_id: f"t{i}" for i, task_id in enumerate(ids)}
    lines = ["flowchart LR", f"  %% workflow {_mermaid_text(name)}"]
    lines.extend(f'  {node[task_id]}["{_mermaid_text(task_id)}"]' for task_id in ids)
    lines.extend(f"  {node[a]} --> {node[b]}" for a, b in edges)
    used = sorted({states[task_id] for task_id in ids if task_id in states})
    for state in used:
        lines.append(f"  classDef st_{state} fill:{GRAPH_FILLS.get(state, '#ffffff')},stroke:#555")
        members = ",".join(node[task_id] for task_id in ids if states.get(task_id) == state)
        lines.append(f"  class {members} st_{state}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    """`text` as a quoted Graphviz ID."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(
    name: str, ids: tuple[str, ...], edges: list[tuple[str, str]], states: dict[str, TaskState]
) -> str:
    lines = [
        f"digraph {_dot_id(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    for task_id in ids:
        state = states.get(task_id)
        if state is None:
            lines.append(f"  {_dot_id(task_id)};")
        else:
            fill = GRAPH_FILLS.get(state, "#ffffff")
            lines.append(f'  {_dot_id(task_id)} [fillcolor="{fill}", tooltip="{state}"];')
    lines.extend(f"  {_dot_id(a)} -> {_dot_id(b)};" for a, b in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


COMMANDS = [graph]
