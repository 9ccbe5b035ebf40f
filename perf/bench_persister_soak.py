"""
Persister soak: a steady 20,000 events per second for a minute, into a real file.

What it checks and reports:

- the channel stays bounded: the largest number of events ever queued
  (sampled every tick) never exceeds the channel capacity, since a full
  channel makes the producer wait rather than grow a queue;
- the event log is complete: afterwards the store holds exactly the events
  sent, with sequence numbers 1..N, and ``PRAGMA integrity_check`` is ok;
- the rate was held: events sent per second of wall time, how many ticks
  fell behind schedule, and the worst lag.

The baseline, measured first in the same invocation and on the same kind of
file, is the persister's unthrottled throughput (one producer sending as
fast as it can); the report gives the soak's achieved rate as a ratio to it.

Run:
    python perf/bench_persister_soak.py                    # 20,000/s for 60 s
    python perf/bench_persister_soak.py --rate 5000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from uet_trio.recording.events import Event, EventKind
from uet_trio.recording.records import NewRun
from uet_trio.recording.store import Store
from uet_trio.running.persister import DEFAULT_CAPACITY, open_persister

TICK = 0.01
"""Seconds between bursts of the producer."""


def _new_store(directory: Path, run_id: str) -> Store:
    store = Store.open(directory / f"{run_id}.db")
    store.create_run(
        NewRun(
            run_id=run_id,
            workflow="soak",
            base_dir=str(directory),
            spec_hash="soak",
            task_ids=[f"t{i}" for i in range(100)],
        )
    )
    return store


def _event(run_id: str, seq: int, start: float) -> Event:
    # A realistic mix: mostly task state changes with small payloads.
    task = f"t{seq % 100}"
    if seq % 4 == 0:
        return Event(
            run_id=run_id,
            seq=seq,
            kind=EventKind.ROUTE_CHOSEN,
            time=time.monotonic() - start,
            task_id=task,
            data={"tool": "a", "strategy": "first", "candidates": ["a", "b"], "reason": "soak"},
        )
    return Event(
        run_id=run_id,
        seq=seq,
        kind=EventKind.TASK_READY,
        time=time.monotonic() - start,
        task_id=task,
    )


async def unthrottled(store: Store, run_id: str, count: int) -> dict[str, Any]:
    """Send `count` events as fast as the persister takes them."""
    start = time.monotonic()
    async with open_persister(store, wall_start=time.time()) as persister:
        for seq in range(1, count + 1):
            await persister.send(_event(run_id, seq, start))
    elapsed = time.monotonic() - start
    return {"events": count, "seconds": elapsed, "rate": count / elapsed}


async def soak(store: Store, run_id: str, rate: int, seconds: float) -> dict[str, Any]:
    """Send `rate` events per second in bursts every TICK for `seconds`."""
    per_tick = max(1, round(rate * TICK))
    ticks = round(seconds / TICK)
    max_queued = 0
    late_ticks = 0
    worst_lag = 0.0
    seq = 0
    start = time.monotonic()
    async with open_persister(store, wall_start=time.time()) as persister:
        for tick in range(ticks):
            due = start + tick * TICK
            lag = time.monotonic() - due
            if lag > TICK:
                late_ticks += 1
                worst_lag = max(worst_lag, lag)
            for _ in range(per_tick):
                seq += 1
                await persister.send(_event(run_id, seq, start))
            max_queued = max(max_queued, persister.statistics().queued)
            await trio.sleep(max(0.0, due + TICK - time.monotonic()))
        sent_in = time.monotonic() - start
    drained_in = time.monotonic() - start
    stats = persister.statistics()
    return {
        "target_rate": rate,
        "seconds": seconds,
        "events": seq,
        "achieved_rate": seq / sent_in,
        "drained_after": drained_in - sent_in,
        "late_ticks": late_ticks,
        "ticks": ticks,
        "worst_lag": worst_lag,
        "max_queued": max_queued,
        "capacity": DEFAULT_CAPACITY,
        "batches": stats.batches_written,
        "largest_batch": stats.largest_batch,
        "mean_batch": stats.events_written / max(1, stats.batches_written),
    }


def verify(path: Path, run_id: str, events: int) -> dict[str, Any]:
    """The log is complete and gap-free, and the file is sound."""
    conn = sqlite3.connect(path)
    try:
        count, low, high = conn.execute(
            "SELECT count(*), min(seq), max(seq) FROM events WHERE run_id = ?", (run_id,)
        ).fetchone()
        verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    complete = count == events and low == 1 and high == events
    return {"complete": complete, "stored": count, "integrity": verdict}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        base = Path(directory)
        with _new_store(base, "baseline") as store:
            baseline = await unthrottled(store, "baseline", args.baseline_events)
        baseline.update(verify(base / "baseline.db", "baseline", args.baseline_events))
        with _new_store(base, "soak") as store:
            result = await soak(store, "soak", args.rate, args.seconds)
        result.update(verify(base / "soak.db", "soak", result["events"]))
    result["ratio_to_baseline"] = result["achieved_rate"] / baseline["rate"]
    return {"baseline": baseline, "soak": result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=20_000, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-events", type=int, default=200_000)
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    report = trio.run(main, parser.parse_args())
    print(json.dumps(report, indent=2))
    ok = report["soak"]["complete"] and report["soak"]["max_queued"] <= DEFAULT_CAPACITY
    raise SystemExit(0 if ok else 1)
