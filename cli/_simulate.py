"""
``uet simulate``: how long would this workflow take with N workers?

The prediction is `uet_trio.predict`: the workflow runs through the real
scheduler with a fake runner under a mock clock, so nothing is executed and
the answer comes at once. Each task takes the duration it took in a recorded
run: the run named by ``--durations``, or else the median of the workflow's
recent runs in the database. Tasks with no record take the median of those
that have one (1 s when none has). Retries are not replayed: every task
succeeds on its first attempt. This module reads those records from the store
and renders the prediction.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ._common import echo_json, flow_db_option, flow_store, open_view_store, plural, seconds

if TYPE_CHECKING:
    from uet_trio import WorkflowSpec

NO_RECORD = "no recorded run: every task counted as 1s"


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--workers", "-j", type=click.IntRange(min=1), help="Worker tasks (default: as uet run)."
)
@click.option(
    "--durations",
    "durations_run",
    metavar="RUN",
    help="Take task durations from RUN (id or unique prefix) instead of recent runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@flow_db_option
def simulate(
    flow: str, workers: int | None, durations_run: str | None, as_json: bool, db: str | None
) -> None:
    """Predict the wall time and critical path of FLOW with N workers."""
    from uet_trio import open_workflow, predict

    spec, _ = open_workflow(flow)
    db = db or flow_store(flow)
    durations, history, replayed = _recorded(spec, db, durations_run)
    prediction = predict(spec, workers=workers, durations=durations, history=history)
    workers = prediction.workers
    actual = _actual(db, spec.name, workers, replayed, prediction.wall)
    if durations_run is not None:
        source = "run " + durations_run
    else:
        source = "recent runs" if history else NO_RECORD
    steps = [
        {
            "task_id": step.task_id,
            "start": step.start,
            "end": step.end,
            "duration": step.end - step.start,
            "waited": step.waited,
        }
        for step in prediction.critical_path
    ]
    path = prediction.critical_path
    if as_json:
        echo_json(
            {
                "wall": prediction.wall,
                "busy": prediction.busy,
                "parallelism": prediction.parallelism,
                "critical_path": {
                    "duration": path[-1].end - path[0].start if path else 0.0,
                    "steps": steps,
                },
                "workflow": spec.name,
                "workers": workers,
                "durations_from": source,
                "estimated": list(prediction.estimated),
                "actual": actual,
            }
        )
        return
    click.echo(
        f"workflow {spec.name}: {plural(len(spec.tasks), 'task')} on "
        f"{plural(workers, 'worker')} (durations: {source})"
    )
    if prediction.estimated:
        click.echo(
            f"  {plural(len(prediction.estimated), 'task')} without a recorded duration "
            f"{'was' if len(prediction.estimated) == 1 else 'were'} estimated"
        )
    click.echo(f"predicted wall time: {seconds(prediction.wall)}")
    if actual is None:
        click.echo(f"  (no run succeeded on {plural(workers, 'worker')} to compare with)")
    else:
        error = actual["error"]
        verdict = (
            f"predicted {abs(error):.0%} {'long' if error > 0 else 'short'}"
            if error is not None and round(abs(error), 2)
            else "predicted to within 1%"
        )
        click.echo(
            f"actual wall time: {seconds(actual['wall'])} (run {actual['run_id']} on "
            f"{plural(workers, 'worker')}); {verdict}"
        )
    click.echo(
        f"busy time: {seconds(prediction.busy)}, parallelism "
        f"{prediction.parallelism:.2f} of {workers}"
    )
    click.echo("critical path:")
    width = max((len(step.task_id) for step in prediction.critical_path), default=0)
    for step in prediction.critical_path:
        waited = f"  (waited {seconds(step.waited)} for a worker)" if step.waited else ""
        click.echo(
            f"  {step.task_id:<{width}}  {seconds(step.start):>8} -> {seconds(step.end):>8}{waited}"
        )


def _recorded(
    spec: WorkflowSpec, db: str, durations_run: str | None
) -> tuple[dict[str, float] | None, dict[str, list[float]], str | None]:
    """
    (The durations of the ``--durations`` run, or None; the workflow's recent
    durations; the ``--durations`` run's id, or None).

    Raises:
        click.UsageError: ``--durations`` without a database, or naming a run of another workflow.
    """
    from uet_trio import run_durations

    if not os.path.exists(db):
        if durations_run is not None:
            raise click.UsageError(f"--durations {durations_run}: no database at {db}")
        return None, {}, None
    with open_view_store(db) as store:
        history = store.recent_durations(spec.name)
        if durations_run is None:
            return None, history, None
        run_id = store.resolve_run(durations_run)
        record = store.get_run(run_id)
        if record.workflow != spec.name:
            raise click.UsageError(
                f"--durations {durations_run}: run {run_id} is of workflow "
                f"{record.workflow!r}, not {spec.name!r}"
            )
        return run_durations(store, run_id), history, run_id


def _actual(
    db: str, workflow: str, workers: int, replayed: str | None, predicted: float
) -> dict[str, Any] | None:
    """
    The real run the prediction can be held against, or None if there is none.

    That is the ``--durations`` run if it ran on as many workers, else the
    latest run of the workflow that succeeded on as many workers (a failed
    run skipped tasks, so it did less work than predicted). Its wall time
    leaves out the gaps before resumptions, as `uet runs` does. ``error``
    is how far the prediction is off, as a fraction of the actual wall time
    (positive: predicted too long).
    """
    from uet_trio import RunStatus

    if not os.path.exists(db):
        return None
    with open_view_store(db) as store:
        if replayed is not None and store.get_run(replayed).max_workers == workers:
            record = store.get_run(replayed)
        else:
            candidates = store.runs_of(workflow, status=RunStatus.SUCCEEDED, workers=workers)
            if not candidates:
                return None
            record = candidates[0]
        if record.duration is None:
            return None
        wall = record.duration - store.idle_seconds([record.run_id]).get(record.run_id, 0.0)
    return {
        "run_id": record.run_id,
        "wall": wall,
        "error": (predicted - wall) / wall if wall > 0 else None,
    }


COMMANDS = [simulate]
