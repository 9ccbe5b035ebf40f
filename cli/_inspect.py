"""
``uet runs``, ``show``, ``events``, ``logs``, ``graph``, ``gc``: look at what the store recorded.

Every query lives in `uet_trio.store.Store`, every computation over records in
`uet_trio.report` and `uet_trio.output`; this module only renders, for people
(tables, colours on a terminal only) and for scripts (``--json``: one JSON
document; ``--jsonl``: one object per line, for streams). The ``--follow``
options poll the store, which another ``uet`` process is writing, until the run
has finished; each poll is one short read transaction, so it never holds up the
writer.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from ._common import colour, db_option, echo_json, open_store, resolve_run, seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from uet_trio.records import AttemptTiming, EventRecord, RunRecord
    from uet_trio.store import Store

FOLLOW_INTERVAL = 0.2
"""Seconds between polls of the store while following a run."""

FINISHED = ("succeeded", "failed", "cancelled")
STATUSES = ("pending", "running", *FINISHED)
STATE_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "yellow",
    "running": "blue",
    "retry_wait": "magenta",
}
GRAPH_FILLS = {
    "succeeded": "#b7e1a1",
    "failed": "#f4a6a6",
    "cancelled": "#f9d88c",
    "skipped": "#e0e0e0",
    "running": "#a6c8f4",
    "retry_wait": "#e3c8f4",
    "ready": "#fff3b0",
    "pending": "#ffffff",
}


def _when(timestamp: float | None) -> str:
    """A Unix time for people, in local time."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _shade(state: str) -> str:
    return colour(state, STATE_COLOURS[state]) if state in STATE_COLOURS else state


def _pad(text: str, plain: str, width: int) -> str:
    """`text` (perhaps coloured) left-aligned as if it were `plain`."""
    return text + " " * max(0, width - len(plain))


# ---------------------------------------------------------------- runs


@click.command()
@db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def runs(db: str, limit: int, status: str | None, as_json: bool) -> None:
    """List recent runs, newest first."""
    with open_store(db) as store:
        records = store.list_runs(limit=limit, status=status)
        counts = store.task_counts_by_run([record.run_id for record in records])
    rows = [_run_row(record, counts[record.run_id]) for record in records]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no runs")
        return
    click.echo(
        f"{'RUN':<20}  {'STATUS':<9}  {'WORKFLOW':<20}  {'STARTED':<19}  {'DURATION':>8}  "
        f"{'OK':>5}  {'FAILED':>6}  {'SKIPPED':>7}"
    )
    for row in rows:
        click.echo(
            f"{row['run_id']:<20}  {_pad(_shade(row['status']), row['status'], 9)}  "
            f"{row['workflow']:<20}  {_when(row['started_at']):<19}  "
            f"{seconds(row['duration']):>8}  {row['succeeded']:>5}  {row['failed']:>6}  "
            f"{row['skipped']:>7}"
        )


def _run_row(record: RunRecord, counts: dict[str, int]) -> dict[str, Any]:
    duration = (
        record.finished_at - record.started_at
        if record.finished_at is not None and record.started_at is not None
        else None
    )
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "status": record.status,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": duration,
        "tasks": record.task_count,
        "succeeded": counts.get("succeeded", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "cancelled": counts.get("cancelled", 0),
        "counts": counts,
    }


# ---------------------------------------------------------------- show


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="The most recent run.")
@db_option
@click.option(
    "--tail",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Lines of stderr shown for each failed task.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show(run: str | None, last: bool, db: str, tail: int, as_json: bool) -> None:
    """Show a run: its tasks, failures, critical path and achieved parallelism."""
    from uet_trio import report
    from uet_trio.output import tail_lines

    with open_store(db) as store:
        run_id = resolve_run(store, run, last)
        record = store.get_run(run_id)
        tasks = store.tasks(run_id)
        attempts = store.attempt_timings(run_id)
        causes = store.ready_causes(run_id)
        failed = [
            found
            for task in tasks
            if task.state == "failed"
            and (found := store.find_attempt(run_id, task.task_id)) is not None
        ]
    now = time.time()
    last_attempt: dict[str, AttemptTiming] = {}
    for attempt in attempts:
        last_attempt[attempt.task_id] = attempt
    wall = report.run_wall(record.started_at, record.finished_at, now=now)
    busy = report.busy_seconds(attempts, now=None if record.status in FINISHED else now)
    path = report.critical_path(tasks, causes, run_started=record.started_at)
    counts: dict[str, int] = {}
    task_rows = []
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
        attempt = last_attempt.get(task.task_id)
        task_rows.append(
            {
                "task_id": task.task_id,
                "state": task.state,
                "attempts": task.attempts,
                "tool": task.tool,
                "started_at": task.started_at,
                "finished_at": task.finished_at,
                "duration": (
                    task.finished_at - task.started_at
                    if task.finished_at is not None and task.started_at is not None
                    else None
                ),
                "exit_code": attempt.exit_code if attempt is not None else task.exit_code,
                "signal": attempt.signal if attempt is not None else None,
                "timed_out": bool(attempt.timed_out) if attempt is not None else False,
            }
        )
    failures = [
        {
            "task_id": attempt.task_id,
            "attempt": attempt.attempt,
            "stderr_tail": tail_lines(attempt, tail),
        }
        for attempt in failed
    ]
    document = {
        "run": _run_row(record, counts) | {"max_workers": record.max_workers},
        "tasks": task_rows,
        "failures": failures,
        "critical_path": {
            "duration": report.path_seconds(path),
            "steps": [
                {
                    "task_id": step.task_id,
                    "started_at": step.started_at,
                    "finished_at": step.finished_at,
                    "duration": step.duration,
                    "waited": step.waited,
                }
                for step in path
            ],
        },
        "busy_seconds": busy,
        "parallelism": report.parallelism(busy, wall),
    }
    if as_json:
        # Compact: the indenting encoder is pure Python, seconds for 10,000 tasks.
        click.echo(json.dumps(document, sort_keys=True))
        return
    sys.stdout.write("\n".join(_show_lines(document, wall)) + "\n")
    sys.stdout.flush()


def _show_lines(document: dict[str, Any], wall: float | None) -> list[str]:
    """The human view of `uet show`, line by line (written at once: 10,000 echoes are slow)."""
    lines: list[str] = []
    echo = lines.append
    run = document["run"]
    echo(f"run {run['run_id']}  {run['workflow']}  {_shade(run['status'])}")
    achieved = document["parallelism"]
    echo(
        f"  started {_when(run['started_at'])}  wall {seconds(wall)}  "
        f"workers {run['max_workers'] or '-'}  busy {seconds(document['busy_seconds'])}  "
        f"parallelism {f'{achieved:.2f}x' if achieved is not None else '-'}"
    )
    summary = ", ".join(f"{n} {state}" for state, n in sorted(run["counts"].items()))
    echo(f"  tasks: {run['tasks']} ({summary})")
    rows = document["tasks"]
    width = max([4, *(len(row["task_id"]) for row in rows)])
    tool_width = max([4, *(len(row["tool"] or "-") for row in rows)])
    echo("")
    echo(
        f"  {'TASK':<{width}}  {'STATE':<10}  {'ATT':>3}  {'TOOL':<{tool_width}}  "
        f"{'DURATION':>8}  EXIT"
    )
    for row in rows:
        echo(
            f"  {row['task_id']:<{width}}  {_pad(_shade(row['state']), row['state'], 10)}  "
            f"{row['attempts']:>3}  {row['tool'] or '-':<{tool_width}}  "
            f"{seconds(row['duration']):>8}  {_exit_text(row)}"
        )
    for failure in document["failures"]:
        echo("")
        echo(
            f"  {colour('failed', 'red')} {failure['task_id']} (attempt {failure['attempt']}), "
            "last lines of stderr:"
        )
        for line in failure["stderr_tail"] or ["(no stderr)"]:
            echo(f"    | {line}")
    path = document["critical_path"]
    steps = path["steps"]
    echo("")
    echo(f"  critical path: {len(steps)} tasks, {seconds(path['duration'])}")
    origin = run["started_at"] or (steps[0]["started_at"] if steps else 0.0)
    for step in steps:
        echo(
            f"    {seconds(step['started_at'] - origin):>8}  {step['task_id']:<{width}}  "
            f"{seconds(step['duration']):>8}  (waited {seconds(step['waited'])})"
        )
    return lines


def _exit_text(row: dict[str, Any]) -> str:
    if row["timed_out"]:
        return "timeout"
    if row["signal"]:
        return f"signal {row['signal']}"
    return "-" if row["exit_code"] is None else str(row["exit_code"])


# ---------------------------------------------------------------- events


def _event_json(row: tuple[Any, ...]) -> str:
    """
    One `Store.events_json` row as a JSON object, keys sorted.

    ``data`` is spliced in as the JSON text the store holds, and floats are
    written with `repr` (valid JSON, every digit kept), so a log of 50,000
    events is not decoded and encoded again.
    """
    seq, kind, task_id, attempt, t, at, data = row
    return (
        f'{{"at": {at!r}, "attempt": {"null" if attempt is None else attempt}, '
        f'"data": {data or "{}"}, "kind": {_quoted(kind)}, "seq": {seq}, "t": {t!r}, '
        f'"task_id": {_quoted(task_id)}}}'
    )


@functools.cache
def _quoted(text: str | None) -> str:
    """`text` as JSON (kinds and task ids repeat, so each is encoded once)."""
    return json.dumps(text)


def _event_line(record: EventRecord) -> str:
    task = f" {record.task_id}" if record.task_id else ""
    attempt = f"#{record.attempt}" if record.attempt else ""
    details = " ".join(
        f"{key}={json.dumps(value) if isinstance(value, (list, dict)) else value}"
        for key, value in record.data.items()
        if value is not None
    )
    return f"{record.seq:>6} {record.t:9.3f} {record.kind}{task}{attempt}" + (
        f"  {details}" if details else ""
    )


def _poll(
    store: Store,
    run_id: str,
    fetch: Callable[[int], list[Any]],
    last_seq: Callable[[Any], int],
    *,
    follow: bool,
) -> Iterator[list[Any]]:
    """
    Batches of `fetch(after_seq)`; with `follow`, keep polling until the run has finished.

    `last_seq` gives the sequence number of a batch's last item.
    """
    after = 0
    while True:
        # Read the status before the events: run_finished is committed with the
        # final status, so a finished status guarantees this read sees every event.
        finished = store.get_run(run_id).status in FINISHED
        batch = fetch(after)
        if batch:
            after = last_seq(batch[-1])
            yield batch
        if not follow or finished:
            return
        time.sleep(FOLLOW_INTERVAL)


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="The most recent run.")
@db_option
@click.option("--kind", "kinds", multiple=True, help="Only events of this kind (repeatable).")
@click.option("--task", "task_id", help="Only events of this task.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list).")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON object per line.")
def events(
    run: str | None,
    last: bool,
    db: str,
    kinds: tuple[str, ...],
    task_id: str | None,
    follow: bool,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Print a run's event log in sequence order."""
    from uet_trio.events import EventKind

    known = {kind.value for kind in EventKind}
    for kind in kinds:
        if kind not in known:
            raise click.BadParameter(
                f"{kind!r} is not an event kind; choose from {', '.join(sorted(known))}",
                param_hint="--kind",
            )
    if as_json and (as_jsonl or follow):
        raise click.UsageError("--json prints one document; use --jsonl with --follow")
    with open_store(db) as store:
        run_id = resolve_run(store, run, last)
        out = sys.stdout
        try:
            if as_json or as_jsonl:
                batches = _poll(
                    store,
                    run_id,
                    lambda after: store.events_json(
                        run_id, after_seq=after, kinds=kinds, task_id=task_id
                    ),
                    lambda row: int(row[0]),
                    follow=follow,
                )
                if as_json:
                    # One list, one compact event per line.
                    separator = "[\n"
                    for batch in batches:
                        out.write(separator + ",\n".join(map(_event_json, batch)))
                        separator = ",\n"
                    out.write("[]\n" if separator == "[\n" else "\n]\n")
                else:
                    for batch in batches:
                        out.write("".join(_event_json(row) + "\n" for row in batch))
                        out.flush()
            else:
                for batch in _poll(
                    store,
                    run_id,
                    lambda after: store.events(
                        run_id, after_seq=after, kinds=kinds, task_id=task_id
                    ),
                    lambda record: int(record.seq),
                    follow=follow,
                ):
                    out.write("".join(_event_line(record) + "\n" for record in batch))
                    out.flush()
        except KeyboardInterrupt:
            sys.exit(130)
        out.flush()


# ---------------------------------------------------------------- logs


@click.command()
@click.argument("run_or_task", metavar="[RUN] TASK")
@click.argument("task", required=False, metavar="")
@click.option("--last", is_flag=True, help="The most recent run (then give only TASK).")
@db_option
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: latest).")
@click.option("--stderr", is_flag=True, help="Print stderr instead of stdout.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing output until the attempt ends.")
def logs(
    run_or_task: str,
    task: str | None,
    last: bool,
    db: str,
    attempt: int | None,
    stderr: bool,
    follow: bool,
) -> None:
    """Print the captured output of a task's attempt: ``uet logs RUN TASK`` or ``--last TASK``."""
    from uet_trio.output import read_output

    run: str | None = run_or_task
    if last:
        if task is not None:
            raise click.UsageError("give a RUN or --last, not both")
        run, task = None, run_or_task
    elif task is None:
        raise click.UsageError("give RUN and TASK, or --last TASK")
    with open_store(db) as store:
        run_id = resolve_run(store, run, last)
        if not store.has_task(run_id, task):
            raise click.BadParameter(f"run {run_id} has no task {task!r}", param_hint="TASK")
        written = 0
        try:
            while True:
                finished = store.get_run(run_id).status in FINISHED
                record = store.find_attempt(run_id, task, attempt)
                if record is None and (finished or not follow):
                    which = f"attempt {attempt}" if attempt is not None else "attempts"
                    raise click.ClickException(f"task {task!r} of run {run_id} has no {which}")
                if record is not None:
                    data = read_output(record, stderr=stderr, skip=written)
                    written += len(data)
                    _write_output(data)
                    ended = record.finished_at is not None or record.status != "running"
                    if ended or finished or not follow:
                        return
                time.sleep(FOLLOW_INTERVAL)
        except KeyboardInterrupt:
            sys.exit(130)


def _write_output(data: bytes) -> None:
    """Raw bytes to a pipe or file; decoded (bad bytes replaced) on a terminal."""
    if not data:
        return
    if sys.stdout.isatty():
        click.echo(data.decode("utf-8", errors="replace"), nl=False)
    else:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()


# ---------------------------------------------------------------- graph


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
@db_option
def graph(flow: str, fmt: str, run: str | None, db: str) -> None:
    """Print the workflow's DAG as Mermaid or Graphviz (dot) text."""
    from ._plan import _load

    spec, compiled = _load(flow)
    states: dict[str, str] = {}
    if run is not None:
        with open_store(db) as store:
            run_id = store.resolve_run(run)
            states = {task.task_id: task.state for task in store.tasks(run_id)}
    edges = [
        (compiled.ids[dep], task_id)
        for task_id, deps in zip(compiled.ids, compiled.deps, strict=True)
        for dep in deps
    ]
    render = _mermaid if fmt == "mermaid" else _dot
    click.echo(render(spec.name, compiled.ids, edges, states), nl=False)


def _mermaid_text(text: str) -> str:
    """`text` safe inside a quoted Mermaid label (entity codes for the special characters)."""
    return re.sub(r'[#"<>]', lambda m: f"#{ord(m.group())};", text)


def _mermaid(
    name: str, ids: tuple[str, ...], edges: list[tuple[str, str]], states: dict[str, str]
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
    name: str, ids: tuple[str, ...], edges: list[tuple[str, str]], states: dict[str, str]
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


# ---------------------------------------------------------------- gc

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Age(click.ParamType):
    """An age such as ``7d``, ``12h``, ``30m``, ``90s`` or ``2w``, in seconds."""

    name = "age"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
        if match is None:
            self.fail(f"{value!r} is not an age like 7d, 12h, 30m, 90s or 2w", param, ctx)
        return float(match.group(1)) * _AGE_UNITS[match.group(2)]


@click.command()
@db_option
@click.option("--keep", type=click.IntRange(min=0), help="Keep the N most recent runs.")
@click.option("--older-than", "older_than", type=Age(), help="Delete runs older than this (7d).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def gc(db: str, keep: int | None, older_than: float | None, dry_run: bool, as_json: bool) -> None:
    """
    Delete old finished runs: their rows and their log files.

    With both options a run must satisfy both to go. Each run is deleted in
    its own transaction; runs still pending or running are never deleted.
    """
    if keep is None and older_than is None:
        raise click.UsageError("give --keep N, --older-than AGE, or both")
    created_before = time.time() - older_than if older_than is not None else None
    deleted = []
    with open_store(db) as store:
        for record in store.runs_to_collect(keep=keep, created_before=created_before):
            files = 0 if dry_run else store.delete_run(record.run_id)
            deleted.append({"run_id": record.run_id, "status": record.status, "log_files": files})
            if not as_json:
                verb = "would delete" if dry_run else "deleted"
                click.echo(f"{verb} run {record.run_id} ({record.status}, {files} log files)")
    if as_json:
        echo_json({"dry_run": dry_run, "deleted": deleted})
    elif not deleted:
        click.echo("nothing to delete")


COMMANDS = [runs, show, events, logs, graph, gc]
