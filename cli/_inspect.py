"""``uet runs``, ``uet events``: look at what the store recorded."""

from __future__ import annotations

import click

from ._common import db_option, echo_json, open_store, resolve_run, seconds


@click.command()
@db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--status", type=click.Choice(["pending", "running", "succeeded", "failed", "cancelled"])
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def runs(db: str, limit: int, status: str | None, as_json: bool) -> None:
    """List recent runs, newest first."""
    with open_store(db) as store:
        records = store.list_runs(limit=limit, status=status)
        rows = []
        for record in records:
            counts = store.task_counts(record.run_id)
            duration = (
                record.finished_at - record.started_at
                if record.finished_at is not None and record.started_at is not None
                else None
            )
            rows.append(
                {
                    "run_id": record.run_id,
                    "workflow": record.workflow,
                    "status": record.status,
                    "started_at": record.started_at,
                    "duration": duration,
                    "counts": counts,
                }
            )
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        counts = row["counts"]
        click.echo(
            f"{row['run_id']}  {row['status']:<9}  {row['workflow']:<20}  "
            f"{seconds(row['duration']):>8}  ok {counts.get('succeeded', 0)}  "
            f"failed {counts.get('failed', 0)}  skipped {counts.get('skipped', 0)}"
        )


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="The most recent run.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def events(run: str | None, last: bool, db: str, as_json: bool) -> None:
    """Print a run's event log in sequence order."""
    with open_store(db) as store:
        run_id = resolve_run(store, run, last)
        records = store.events(run_id)
    if as_json:
        echo_json(
            [
                {
                    "seq": r.seq,
                    "kind": r.kind,
                    "task_id": r.task_id,
                    "attempt": r.attempt,
                    "t": r.t,
                    "at": r.at,
                    "data": r.data,
                }
                for r in records
            ]
        )
        return
    for r in records:
        task = f" {r.task_id}" if r.task_id else ""
        attempt = f"#{r.attempt}" if r.attempt else ""
        click.echo(f"{r.seq:>6} {r.t:9.3f} {r.kind}{task}{attempt}")


COMMANDS = [runs, events]
