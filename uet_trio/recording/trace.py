"""
A run as Chrome trace-event JSON: the timeline file Perfetto and ``chrome://tracing`` open.

`chrome_trace` reads one run from a store and returns the JSON object
format of the trace-event spec (``{"traceEvents": [...]}``): one complete
(``"X"``) slice per attempt, on its worker's lane (``tid`` = the worker
number the attempt recorded), named by task id, with the attempt's number,
status, exit code, signal, tool and the routing decision that chose the tool
in its ``args``. What a task spent not running is shown beside the lanes as
async slices (``"b"``/``"e"``, one track per task): ``queued`` from the
moment it became ready to its attempt's start (waiting for a free worker),
and ``retry wait`` from a failed attempt to the moment its retry was ready
again. Times are microseconds from the run's first recorded instant, as the
format wants.

Attempts that recorded no worker (in-process callables, attempts that never
spawned) are packed onto extra lanes numbered from `NO_WORKER_LANE`, so that
slices on one lane never overlap. A running attempt (a run in progress, or
one a crashed runner left) ends at `now` and has status ``running``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .events import DataField, EventKind
from .records import AttemptRecord
from .store import Store

PROCESS_ID = 1
"""The one process of the trace: the run."""

NO_WORKER_LANE = 1_000_000
"""The first lane (``tid``) of attempts that recorded no worker."""

_WAIT_KINDS = (
    EventKind.TASK_READY,
    EventKind.TASK_RETRY_WAIT,
    EventKind.ROUTE_CHOSEN,
    EventKind.ATTEMPT_STARTED,
)

_ROUTE_FIELDS = (DataField.TOOL, DataField.STRATEGY, DataField.REASON, DataField.FALLBACK_FROM)
"""The fields of a ``route_chosen`` event an attempt's slice carries as its routing."""


def chrome_trace(store: Store, run_id: str, *, now: float | None = None) -> dict[str, Any]:
    """
    The trace-event JSON object of run `run_id` (exactly this id).

    `now` (Unix time, default the current time) ends the slices of attempts
    still running.

    Raises:
        RunNotFound: no such run.
        StoreError: the store cannot be read.
    """
    run = store.get_run(run_id)
    end_of_running = time.time() if now is None else now
    attempts = store.attempts(run_id)
    events = store.events_json(run_id, kinds=_WAIT_KINDS)
    routes, waits = _routes_and_waits(events)
    instants = [run.created_at, *(a.started_at for a in attempts), *(w[2] for w in waits)]
    if run.started_at is not None:
        instants.append(run.started_at)
    origin = min(instants)

    def micros(at: float) -> float:
        return round((at - origin) * 1e6, 3)

    trace: list[dict[str, Any]] = [
        _meta("process_name", 0, {"name": f"run {run.run_id} ({run.workflow})"}),
    ]
    lanes = _lanes(attempts)
    for lane in sorted(set(lanes.values())):
        name = f"worker {lane}" if lane < NO_WORKER_LANE else f"lane {lane - NO_WORKER_LANE}"
        trace.append(_meta("thread_name", lane, {"name": name}))
        trace.append(_meta("thread_sort_index", lane, {"sort_index": lane}))
    for attempt in attempts:
        finished = attempt.finished_at if attempt.finished_at is not None else end_of_running
        args: dict[str, Any] = {
            "attempt": attempt.attempt,
            "status": attempt.status.value,
            "exit_code": attempt.exit_code,
            "tool": attempt.tool,
        }
        if attempt.signal is not None:
            args["signal"] = attempt.signal
        if attempt.timed_out:
            args["timed_out"] = True
        if attempt.error:
            args["error"] = attempt.error
        route = routes.get((attempt.task_id, attempt.attempt))
        if route is not None:
            args["routing"] = route
        trace.append(
            {
                "name": attempt.task_id,
                "cat": "attempt",
                "ph": "X",
                "pid": PROCESS_ID,
                "tid": lanes[(attempt.task_id, attempt.attempt)],
                "ts": micros(attempt.started_at),
                "dur": round(max(0.0, finished - attempt.started_at) * 1e6, 3),
                "args": args,
            }
        )
    for number, (task_id, name, start, end, args) in enumerate(waits):
        common = {"name": name, "cat": "wait", "pid": PROCESS_ID, "id": number, "tid": 0}
        opening = {"ph": "b", "ts": micros(start), "args": {"task_id": task_id, **args}}
        trace.append({**common, **opening})
        trace.append({**common, "ph": "e", "ts": micros(end)})
    return {
        "traceEvents": trace,
        "displayTimeUnit": "ms",
        "otherData": {
            "run_id": run.run_id,
            "workflow": run.workflow,
            "status": run.status.value,
            "origin": origin,
        },
    }


def _meta(name: str, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    """A metadata (``"M"``) event: names and orders the process and its lanes."""
    return {"name": name, "ph": "M", "pid": PROCESS_ID, "tid": tid, "args": args}


def _lanes(attempts: list[AttemptRecord]) -> dict[tuple[str, int], int]:
    """
    The lane of each attempt: its worker, or the first free extra lane for one without.

    Extra lanes are handed out greedily by start time, so attempts without a
    worker that overlap in time never share one.
    """
    lanes: dict[tuple[str, int], int] = {}
    free_at: list[float] = []
    for attempt in sorted(attempts, key=lambda a: (a.started_at, a.task_id, a.attempt)):
        key = (attempt.task_id, attempt.attempt)
        if attempt.worker is not None:
            lanes[key] = attempt.worker
            continue
        end = attempt.finished_at if attempt.finished_at is not None else float("inf")
        for index, busy_until in enumerate(free_at):
            if busy_until <= attempt.started_at:
                free_at[index] = end
                lanes[key] = NO_WORKER_LANE + index
                break
        else:
            free_at.append(end)
            lanes[key] = NO_WORKER_LANE + len(free_at) - 1
    return lanes


_Wait = tuple[str, str, float, float, dict[str, Any]]
"""(task id, slice name, start, end, args) of a span a task spent waiting."""


def _routes_and_waits(
    events: list[tuple[int, str, str | None, int | None, float, float, str | None]],
) -> tuple[dict[tuple[str, int], dict[str, Any]], list[_Wait]]:
    """
    From the run's events in order: each attempt's routing decision, and the waits.

    An attempt's routing is the last ``route_chosen`` of its task before it
    started. A ``queued`` wait runs from a ``task_ready`` to the task's next
    ``attempt_started``; a ``retry wait`` from a ``task_retry_wait`` to the
    task's next ``task_ready``.
    """
    routes: dict[tuple[str, int], dict[str, Any]] = {}
    waits: list[_Wait] = []
    last_route: dict[str, dict[str, Any]] = {}
    ready_since: dict[str, float] = {}
    retry_since: dict[str, tuple[float, dict[str, Any]]] = {}
    for _seq, kind, task_id, attempt, _t, at, data in events:
        if task_id is None:
            continue
        if kind == EventKind.ROUTE_CHOSEN:
            fields = json.loads(data) if data else {}
            last_route[task_id] = {key: fields[key] for key in _ROUTE_FIELDS if key in fields}
        elif kind == EventKind.TASK_RETRY_WAIT:
            fields = json.loads(data) if data else {}
            retry_since[task_id] = (at, {"retry": fields.get(DataField.RETRY)})
        elif kind == EventKind.TASK_READY:
            ready_since[task_id] = at
            if task_id in retry_since:
                since, args = retry_since.pop(task_id)
                waits.append((task_id, "retry wait", since, at, args))
        elif kind == EventKind.ATTEMPT_STARTED and attempt is not None:
            if task_id in last_route:
                routes[(task_id, attempt)] = last_route[task_id]
            since_ready = ready_since.pop(task_id, None)
            if since_ready is not None:
                waits.append((task_id, "queued", since_ready, at, {"attempt": attempt}))
    return routes, waits
