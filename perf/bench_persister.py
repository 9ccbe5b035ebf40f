"""
Benchmark 4: events through the persister into a SQLite file.

Each value sends `--events` events of one run, the way the engine does (the scheduler's mix of kinds
for an attempt: ready, started, spawned, finished, succeeded) through
`open_persister` into a fresh file database, and stops the clock when the
persister has committed the last one. A baseline in the same invocation
inserts the same number of rows with one `executemany` per transaction of the
same size, the floor for any SQLite writer here.

    python perf/bench_persister.py --events 100000 -o persister.json
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pyperf
import trio
import workloads as w

from uet_trio.recording.events import Event, EventKind
from uet_trio.recording.records import NewRun
from uet_trio.recording.store import Store
from uet_trio.running.persister import DEFAULT_MAX_BATCH, open_persister

RUN = "bench"


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--events", str(args.events)])


def main() -> None:
    runner = pyperf.Runner(processes=3, values=3, warmups=1, loops=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--events", type=int, default=100_000)
    args = runner.parse_args()
    tasks = max(1, args.events // 5)
    events = _events(tasks)[: args.events]
    persister = runner.bench_time_func(f"persister-{len(events)}", _time_persister, events, tasks)
    raw = runner.bench_time_func(f"sqlite-executemany-{len(events)}", _time_raw, len(events))
    if persister is None or raw is None:
        return
    rate = len(events) / persister.mean()
    print(
        f"\npersister: {rate:,.0f} events/s; raw executemany: {len(events) / raw.mean():,.0f} "
        f"rows/s; ratio {raw.mean() / persister.mean():.2f}"
    )


def _events(tasks: int) -> list[Event]:
    """The events a run of `tasks` one-attempt tasks records, in sequence order."""
    kinds = (
        (EventKind.TASK_READY, {}),
        (EventKind.ATTEMPT_STARTED, {"tool": None, "argv": ["true"]}),
        (
            EventKind.ATTEMPT_SPAWNED,
            {
                "pid": 4242,
                "proc_start": 1,
                "worker": 0,
                "out_path": "w0.out",
                "out_offset": 0,
                "err_path": "w0.err",
                "err_offset": 0,
            },
        ),
        (
            EventKind.ATTEMPT_FINISHED,
            {
                "status": "succeeded",
                "exit_code": 0,
                "duration": 0.001,
                "out_length": 0,
                "err_length": 0,
            },
        ),
        (EventKind.TASK_SUCCEEDED, {}),
    )
    events = []
    seq = 0
    for i in range(tasks):
        for kind, data in kinds:
            seq += 1
            attempt = None if kind is EventKind.TASK_READY else 1
            events.append(Event(RUN, seq, kind, seq * 1e-4, f"t{i}", attempt, dict(data)))
    return events


def _new_store(tasks: int) -> Store:
    store = Store.open(w.scratch("persister") / "uet.db")
    store.create_run(
        NewRun(
            run_id=RUN,
            workflow="bench",
            task_ids=[f"t{i}" for i in range(tasks)],
        )
    )
    return store


def _time_persister(loops: int, events: list[Event], tasks: int) -> float:
    total = 0.0
    for _ in range(loops):
        with _new_store(tasks) as store:
            total += trio.run(_persist_all, store, events)
            assert store.get_run(RUN).last_seq == events[-1].seq
    return total


async def _persist_all(store: Store, events: list[Event]) -> float:
    start = time.perf_counter()
    # A benchmark owns its process: it may shorten the switch interval, as
    # e2d698f always did for large batches (`short_switch_interval`).
    async with open_persister(
        store, wall_start=time.time(), short_switch_interval=True
    ) as persister:
        # As the engine sends: without a checkpoint while the channel has room.
        for event in events:
            try:
                persister.send_nowait(event)
            except trio.WouldBlock:
                await persister.send(event)
    return time.perf_counter() - start


def _time_raw(loops: int, count: int) -> float:
    total = 0.0
    rows = [(RUN, i, "task_ready", f"t{i}", None, 0.0, 0.0, None) for i in range(count)]
    for _ in range(loops):
        with _new_store(1) as store:
            conn = sqlite3.connect(store.path, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")
            start = time.perf_counter()
            for first in range(0, count, DEFAULT_MAX_BATCH):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO events (run_id, seq, kind, task_id, attempt, t, at, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows[first : first + DEFAULT_MAX_BATCH],
                )
                conn.execute("COMMIT")
            total += time.perf_counter() - start
            conn.close()
    return total


if __name__ == "__main__":
    main()
