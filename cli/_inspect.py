"""
``uet runs`` and ``uet show``: runs and their tasks as the store recorded them.

Every query lives in `uet_trio.Store`, every computation over records in the
library's report functions (`uet_trio.critical_path`, `uet_trio.parallelism`
and their neighbours); this module only renders, for people (tables, colours
on a terminal only) and for scripts (``--json``: one JSON document).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from uet_trio import TaskState

from ._common import (
    STATUSES,
    colour,
    colour_option,
    echo_json,
    open_view_store,
    plural,
    resolve_run,
    seconds,
    store_option,
    visible,
)
from ._failures import STREAMS, tail_block

if TYPE_CHECKING:
    from uet_trio import AttemptRecord, AttemptTiming, PathStep, RunRecord

FAILED_STATES = frozenset({TaskState.FAILED, TaskState.SKIPPED})
"""The states ``uet show --failed`` lists."""

CRASHED = "crashed"
"""What the views show as the status of a run whose runner is gone (`uet_trio.run_crashed`)."""


def crashed_message(record: RunRecord) -> str:
    """What a crashed run needs said: whose death left it, and how to finish it."""
    return (
        f"run {record.run_id} crashed (its runner, pid {record.owner_pid}, is gone); "
        f"resume it with `uet resume {record.run_id}`"
    )


STATE_COLOURS: dict[str, str] = {
    TaskState.SUCCEEDED: "green",
    TaskState.UP_TO_DATE: "green",
    TaskState.FAILED: "red",
    TaskState.CANCELLED: "yellow",
    TaskState.SKIPPED: "yellow",
    TaskState.RUNNING: "blue",
    TaskState.RETRY_WAIT: "magenta",
    CRASHED: "red",
}
"""Colours of task states; a run's statuses share their text, so they find theirs here too."""


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
@store_option
@colour_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def runs(db: str, limit: int, status: str | None, as_json: bool) -> None:
    """List recent runs, newest first."""
    with open_view_store(db) as store:
        records = store.list_runs(limit=limit, status=status)
        ids = [record.run_id for record in records]
        counts = store.task_counts_by_run(ids)
        idle = store.idle_seconds(ids)
    rows = [
        _run_row(record, counts[record.run_id], idle.get(record.run_id, 0.0)) for record in records
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no runs")
        return
    sys.stdout.write("".join(line + "\n" for line in _runs_table(rows)))
    sys.stdout.flush()


RUNS_COLUMNS = (
    "RUN",
    "STATUS",
    "WORKFLOW",
    "STARTED",
    "DURATION",
    "OK",
    "CURRENT",
    "FAILED",
    "SKIPPED",
)
"""The columns of `uet runs`; OK counts the tasks that succeeded, CURRENT those up to date."""
_RIGHT = frozenset({"DURATION", "OK", "CURRENT", "FAILED", "SKIPPED"})


def _runs_table(rows: list[dict[str, Any]]) -> list[str]:
    """The lines of `uet runs`: each column as wide as its widest cell, status coloured."""
    cells = [
        [
            row["run_id"],
            CRASHED if row["crashed"] else row["status"],
            visible(row["workflow"]),
            _when(row["started_at"]),
            seconds(row["duration"]),
            str(row["succeeded"]),
            str(row["up_to_date"]),
            str(row["failed"]),
            str(row["skipped"]),
        ]
        for row in rows
    ]
    widths = [
        max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(RUNS_COLUMNS)
    ]

    def line(values: list[str], shade: bool) -> str:
        parts = []
        for name, value, width in zip(RUNS_COLUMNS, values, widths, strict=True):
            if name in _RIGHT:
                parts.append(value.rjust(width))
            elif name == "STATUS" and shade:
                parts.append(_pad(_shade(value), value, width))
            else:
                parts.append(value.ljust(width))
        return "  ".join(parts).rstrip()

    return [line(list(RUNS_COLUMNS), False), *(line(values, True) for values in cells)]


def _run_row(record: RunRecord, counts: dict[str, int], idle: float) -> dict[str, Any]:
    """
    A run as `uet runs --json` gives it; ``crashed`` beside the status the store holds.

    Its duration leaves out the `idle` seconds it lay finished or crashed
    before a resumption (`uet_trio.Store.idle_seconds`).
    """
    from uet_trio import run_crashed

    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "status": record.status,
        "crashed": run_crashed(record),
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": record.duration - idle if record.duration is not None else None,
        "task_count": record.task_count,
        "succeeded": counts.get(TaskState.SUCCEEDED, 0),
        "up_to_date": counts.get(TaskState.UP_TO_DATE, 0),
        "failed": counts.get(TaskState.FAILED, 0),
        "skipped": counts.get(TaskState.SKIPPED, 0),
        "cancelled": counts.get(TaskState.CANCELLED, 0),
        "counts": counts,
    }


# ---------------------------------------------------------------- show


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="The most recent run.")
@store_option
@click.option(
    "--tail",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Lines of stdout and of stderr shown for each failed task.",
)
@colour_option
@click.option("--failed", "only_failed", is_flag=True, help="List only failed and skipped tasks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show(run: str | None, last: bool, db: str, tail: int, only_failed: bool, as_json: bool) -> None:
    """
    Show a run: its tasks, failures, critical path and achieved parallelism.

    With --failed, only what went wrong: the failed and skipped tasks and
    their output, without the critical path, which needs every task and the
    event log (seconds on a run of a million tasks).
    """
    from uet_trio import critical_path, parallelism, run_wall

    now = time.time()
    with open_view_store(db) as store:
        run_id = resolve_run(store, run, last)
        record = store.get_run(run_id)
        idle = store.idle_seconds([run_id]).get(run_id, 0.0)
        counts = store.task_counts(run_id)
        busy = store.busy_seconds(run_id, now=None if record.status.finished else now)
        tasks = store.tasks(run_id, states=FAILED_STATES if only_failed else ())
        failed = [
            found
            for task in tasks
            if task.state is TaskState.FAILED
            and (found := store.find_attempt(run_id, task.task_id)) is not None
        ]
        last_attempt: dict[str, AttemptTiming | AttemptRecord] = {
            attempt.task_id: attempt for attempt in failed
        }
        path = None
        if not only_failed:
            for timing in store.attempt_timings(run_id):
                last_attempt[timing.task_id] = timing
            causes = store.ready_causes(run_id)
            path = critical_path(tasks, causes, run_started=record.started_at)
    wall = run_wall(record.started_at, record.finished_at, now=now)
    if wall is not None:
        wall -= idle
    task_rows = []
    for task in tasks:
        attempt = last_attempt.get(task.task_id)
        task_rows.append(
            {
                "task_id": task.task_id,
                "state": task.state,
                "attempts": task.attempts,
                "tool": task.tool,
                "started_at": task.started_at,
                "finished_at": task.finished_at,
                "duration": task.duration,
                "exit_code": attempt.exit_code if attempt is not None else task.exit_code,
                "signal": attempt.signal if attempt is not None else None,
                "timed_out": bool(attempt.timed_out) if attempt is not None else False,
            }
        )
    failures = [_failure(attempt, tail) for attempt in failed]
    run_row = _run_row(record, counts, idle) | {"max_workers": record.max_workers}
    run_row["crash"] = crashed_message(record) if run_row["crashed"] else None
    document = {
        "run": run_row,
        "tasks": task_rows,
        "failures": failures,
        "critical_path": None if path is None else _path_document(path, record.started_at),
        "wall": wall,
        "busy": busy,
        "parallelism": parallelism(busy, wall),
    }
    if as_json:
        echo_json(document)
        return
    sys.stdout.write("\n".join(_show_lines(document, wall, tail)) + "\n")
    sys.stdout.flush()


def _path_document(path: list[PathStep], origin: float | None) -> dict[str, Any]:
    """The critical path as `uet show --json` gives it; `origin` is the run's start."""
    from uet_trio import path_seconds

    return {
        "duration": path_seconds(path),
        "steps": [
            {
                "task_id": step.task_id,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "start": _since(step.started_at, origin),
                "end": _since(step.finished_at, origin),
                "duration": step.duration,
                "waited": step.waited,
            }
            for step in path
        ],
    }


def _failure(attempt: AttemptRecord, tail: int) -> dict[str, Any]:
    """
    A failed task's entry in `uet show`: the attempt's error (such as a log it
    could not write), the last lines of its stdout and its stderr, or why
    they cannot be read.
    """
    from uet_trio import LogUnavailable, tail_lines

    entry: dict[str, Any] = {
        "task_id": attempt.task_id,
        "attempt": attempt.attempt,
        "error": attempt.error,
    }
    for stream in STREAMS:
        try:
            lines, unavailable = tail_lines(attempt, tail, stderr=stream == "stderr"), None
        except LogUnavailable as error:
            lines, unavailable = [], str(error)
        entry[f"{stream}_tail"] = lines
        entry[f"{stream}_unavailable"] = unavailable
    return entry


def _show_lines(document: dict[str, Any], wall: float | None, tail: int) -> list[str]:
    """The human view of `uet show`, line by line (written at once: 10,000 echoes are slow)."""
    lines: list[str] = []
    echo = lines.append
    echo_all = lines.extend
    run = document["run"]
    status = CRASHED if run["crashed"] else run["status"]
    echo(f"run {run['run_id']}  {visible(run['workflow'])}  {_shade(status)}")
    if run["crash"]:
        echo(f"  {run['crash']}")
    achieved = document["parallelism"]
    echo(
        f"  started {_when(run['started_at'])}  wall {seconds(wall)}  "
        f"workers {run['max_workers'] or '-'}  busy {seconds(document['busy'])}  "
        f"parallelism {f'{achieved:.2f}x' if achieved is not None else '-'}"
    )
    summary = ", ".join(
        f"{n} {str(state).replace('_', ' ')}" for state, n in sorted(run["counts"].items())
    )
    echo(f"  tasks: {run['task_count']} ({summary})")
    rows = document["tasks"]
    path = document["critical_path"]
    steps = path["steps"] if path is not None else []
    names = {row["task_id"]: visible(row["task_id"]) for row in (*rows, *steps)}
    tools = {row["tool"]: visible(row["tool"] or "-") for row in rows}
    width = max([4, *map(len, names.values())])
    tool_width = max([4, *map(len, tools.values())])
    echo("")
    echo(
        f"  {'TASK':<{width}}  {'STATE':<10}  {'ATT':>3}  {'TOOL':<{tool_width}}  "
        f"{'DURATION':>8}  EXIT"
    )
    for row in rows:
        echo(
            f"  {names[row['task_id']]:<{width}}  {_pad(_shade(row['state']), row['state'], 10)}  "
            f"{row['attempts']:>3}  {tools[row['tool']]:<{tool_width}}  "
            f"{seconds(row['duration']):>8}  {_exit_text(row)}"
        )
    for failure in document["failures"]:
        echo("")
        shown = ", last lines of its output:" if tail else ""
        echo(
            f"  {colour('failed', 'red')} {visible(failure['task_id'])} "
            f"(attempt {failure['attempt']}){shown}"
        )
        if failure["error"]:
            echo(f"    error: {visible(failure['error'])}")
        if tail:
            tails = {stream: failure[f"{stream}_tail"] for stream in STREAMS}
            unavailable = {stream: failure[f"{stream}_unavailable"] for stream in STREAMS}
            echo_all(tail_block(tails, unavailable) or ["    (no output)"])
    if path is None:
        return lines
    echo("")
    echo(f"  critical path: {plural(len(steps), 'task')}, {seconds(path['duration'])}")
    origin = run["started_at"] or (steps[0]["started_at"] if steps else 0.0)
    for step in steps:
        echo(
            f"    {seconds(step['started_at'] - origin):>8}  {names[step['task_id']]:<{width}}  "
            f"{seconds(step['duration']):>8}  (waited {seconds(step['waited'])})"
        )
    return lines


def _since(timestamp: float | None, origin: float | None) -> float | None:
    """Seconds from the run's start (`origin`) to `timestamp`, the run clock's reading then."""
    if timestamp is None or origin is None:
        return None
    return timestamp - origin


def _exit_text(row: dict[str, Any]) -> str:
    if row["timed_out"]:
        return "timeout"
    if row["signal"]:
        return f"signal {row['signal']}"
    return "-" if row["exit_code"] is None else str(row["exit_code"])


COMMANDS = [runs, show]
