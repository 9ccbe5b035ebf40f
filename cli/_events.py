"""
``uet events`` and ``uet logs``: a run's event log and an attempt's output.

``--json`` prints one JSON document, ``--jsonl`` one object per line. The
``--follow`` options poll the store, which another ``uet`` process is
writing, until the run has finished; each poll is one short read
transaction, so it never holds up the writer. A run whose runner is gone
never finishes by itself, so a follow stops there with exit 3
(`uet_trio.run_crashed`). An attempt's output that its log file no longer
holds is `uet_trio.LogUnavailable`, which the root group reports (exit 4).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ._common import (
    open_view_store,
    resolve_run,
    store_option,
    visible,
)
from ._inspect import crashed_message

if TYPE_CHECKING:
    from collections.abc import Callable

    from uet_trio import EventRecord, RunRecord, Store

FOLLOW_INTERVAL = 0.2
"""Seconds between polls of the store while following a run."""


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
        # Likewise a runner found dead before the read has committed all it ever will.
        record = store.get_run(run_id)
        finished = record.status.finished
        crashed = follow and not finished and _crashed(store, record)
        batch = fetch(after)
        if batch:
            after = last_seq(batch[-1])
            yield batch
        if not follow or finished:
            return
        if crashed:
            _stop_crashed(record)
        time.sleep(FOLLOW_INTERVAL)


def _crashed(store: Store, record: RunRecord) -> bool:
    """
    Whether the followed run is crashed, `record` having been read just now.

    Read again before saying so: a runner that ended normally since `record`
    was read has recorded the run's end first, and a resumer has claimed it.
    """
    from uet_trio import run_crashed

    return run_crashed(record) and run_crashed(store.get_run(record.run_id))


def _stop_crashed(record: RunRecord) -> NoReturn:
    """End a follow whose run will never finish by itself: say so, exit 3."""
    click.echo(f"uet: {crashed_message(record)}", err=True)
    sys.exit(3)


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="The most recent run.")
@store_option
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
    from uet_trio import EventKind

    known = {kind.value for kind in EventKind}
    for kind in kinds:
        if kind not in known:
            raise click.BadParameter(
                f"{kind!r} is not an event kind; choose from {', '.join(sorted(known))}",
                param_hint="--kind",
            )
    if as_json and (as_jsonl or follow):
        raise click.UsageError("--json prints one document; use --jsonl with --follow")
    with open_view_store(db) as store:
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
                    # One list, one compact event per line, as `json_text` lays lists out.
                    separator = "[\n  "
                    for batch in batches:
                        out.write(separator + ",\n  ".join(map(_event_json, batch)))
                        separator = ",\n  "
                    out.write("[]\n" if separator == "[\n  " else "\n]\n")
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
                    out.write("".join(visible(_event_line(record)) + "\n" for record in batch))
                    out.flush()
        except KeyboardInterrupt:
            sys.exit(130)
        out.flush()


# ---------------------------------------------------------------- logs


@click.command()
@click.argument("run_or_task", required=False, metavar="[RUN] [TASK]")
@click.argument("task", required=False, metavar="")
@click.option("--last", is_flag=True, help="The most recent run (then give only TASK).")
@store_option
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: latest).")
@click.option("--stderr", is_flag=True, help="Print stderr instead of stdout.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing output until the task ends, through its retries.",
)
def logs(
    run_or_task: str | None,
    task: str | None,
    last: bool,
    db: str,
    attempt: int | None,
    stderr: bool,
    follow: bool,
) -> None:
    """
    Print the captured output of a task's attempt: uet logs RUN TASK, or --last TASK.

    With a run and no TASK (uet logs RUN, uet logs --last), list the run's
    tasks, their states and attempts.
    """
    run: str | None = run_or_task
    if last:
        if task is not None:
            raise click.UsageError("give a RUN or --last, not both")
        run, task = None, run_or_task
    elif run is None:
        raise click.UsageError("give RUN and TASK, or --last TASK (without TASK: list the tasks)")
    with open_view_store(db) as store:
        run_id = resolve_run(store, run, last)
        if task is None:
            _list_tasks(store, run_id)
            return
        if not store.has_task(run_id, task):
            raise click.BadParameter(f"run {run_id} has no task {task!r}", param_hint="TASK")
        try:
            _print_output(store, run_id, task, attempt, stderr=stderr, follow=follow)
        except KeyboardInterrupt:
            sys.exit(130)


def _list_tasks(store: Store, run_id: str) -> None:
    """The run's tasks, for choosing one: id, state and attempts, in declaration order."""
    tasks = store.tasks(run_id)
    names = [visible(task.task_id) for task in tasks]
    width = max([4, *map(len, names)])
    lines = [f"{'TASK':<{width}}  {'STATE':<10}  ATTEMPTS"]
    lines += [
        f"{name:<{width}}  {task.state.value:<10}  {task.attempts}"
        for name, task in zip(names, tasks, strict=True)
    ]
    sys.stdout.write("".join(line + "\n" for line in lines))
    click.echo(f"output of one: uet logs {run_id} TASK [--stderr]", err=True)


def _print_output(
    store: Store, run_id: str, task: str, pinned: int | None, *, stderr: bool, follow: bool
) -> None:
    """
    Print the output of attempt `pinned` of the task (default: its latest).

    With `follow`, keep printing it as it is written; when the attempt ends
    and the task goes on (a retry, a fallback tool), go on with the next
    attempt, saying so on stderr, until the task has ended or the run has.
    """
    from uet_trio import read_output

    number = pinned
    written = 0
    while True:
        run_record = store.get_run(run_id)
        finished = run_record.status.finished
        crashed = follow and not finished and _crashed(store, run_record)
        record = store.find_attempt(run_id, task, number)
        if record is None and (finished or not follow):
            which = f"attempt {pinned}" if pinned is not None else "attempts"
            raise click.ClickException(f"task {task!r} of run {run_id} has no {which}")
        if record is not None:
            number = record.attempt
            data = read_output(record, stderr=stderr, skip=written)
            written += len(data)
            _write_output(data)
            ended = record.finished_at is not None or record.status.finished
            if not follow or (pinned is not None and (ended or finished)):
                return
            if ended or finished:
                following = store.find_attempt(run_id, task, number + 1)
                if following is not None:
                    click.echo(f"uet: attempt {number + 1} of {task!r}:", err=True)
                    number, written = number + 1, 0
                    continue
                state = store.task(run_id, task)
                if finished or (state is not None and state.state.finished):
                    return
        if crashed:
            _stop_crashed(run_record)
        time.sleep(FOLLOW_INTERVAL)


def _write_output(data: bytes) -> None:
    """Raw bytes to a pipe or file; decoded (bad bytes replaced) on a terminal."""
    if not data:
        return
    if sys.stdout.isatty():
        click.echo(data.decode("utf-8", errors="replace"), nl=False)
    else:
        # A write cut short (a reader that left mid-write) returns a count
        # instead of raising: write the rest, so the broken pipe is reported.
        out = sys.stdout.buffer
        view = memoryview(data)
        while view:
            view = view[out.write(view) :]
        out.flush()


COMMANDS = [events, logs]
