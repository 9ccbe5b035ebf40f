"""
Benchmark 3: in-process no-op tasks through the real scheduler, channels and persister.

Each value runs a flat workflow of `--tasks` tasks on 8 workers with
`workloads.NoopRunner` (no process is started) into a fresh SQLite file, and
checks afterwards that every event was persisted (the run's ``last_seq``
equals the number of events emitted). The spec and graph are built before
the clock starts; opening the store, the run rows and the final flush are
inside it. A baseline in the same invocation pushes the same number of tasks
through a bare Trio loop of the same shape (a bounded jobs channel, 8 workers,
a results channel, no state and no persistence), the cost of the channels alone.

    python perf/bench_inprocess.py --tasks 100000 -o inprocess.json
"""

from __future__ import annotations

import time

import trio
import workloads as w

from uet_trio.recording.store import Store
from uet_trio.running.engine import open_run
from uet_trio.workflow.graph import TaskGraph, compile_graph
from uet_trio.workflow.spec import WorkflowSpec

WORKERS = 8


def main() -> None:
    runner, args = w.whole_run_runner(100_000)
    spec = w.noop_spec(args.tasks, WORKERS)
    engine = runner.bench_time_func(f"uet-noop-{args.tasks}", _time_engine, spec)
    bare = runner.bench_time_func(f"bare-trio-loop-{args.tasks}", _time_bare, args.tasks)
    if engine is None or bare is None:
        return
    print(
        f"\nuet: {args.tasks / engine.mean():,.0f} tasks/s with every event persisted; "
        f"bare Trio loop: {args.tasks / bare.mean():,.0f} tasks/s; "
        f"ratio {bare.mean() / engine.mean():.2f}"
    )


def _time_engine(loops: int, spec: WorkflowSpec) -> float:
    total = 0.0
    for _ in range(loops):
        path = w.scratch("inprocess") / "uet.db"
        graph = compile_graph(spec)
        start = time.perf_counter()
        with Store.open(path) as store:
            trio.run(_run, spec, graph, store)
        total += time.perf_counter() - start
        # Every task of a run without kinds or failures records four events
        # (ready, started, finished, succeeded); the run two more.
        events = 4 * len(spec.tasks) + 2
        with Store.open(path) as store:
            (record,) = store.list_runs()
            if record.last_seq != events or record.status != "succeeded":
                raise AssertionError(f"{events} events expected, {record.last_seq} persisted")
    return total


async def _run(spec: WorkflowSpec, graph: TaskGraph, store: Store) -> None:
    # A benchmark owns its process: it may set the process-wide switch
    # interval that helps the writer thread keep up with in-process tasks.
    async with open_run(
        spec, store=store, graph=graph, runner=w.NoopRunner(), short_switch_interval=True
    ):
        pass


def _time_bare(loops: int, tasks: int) -> float:
    total = 0.0
    for _ in range(loops):
        start = time.perf_counter()
        trio.run(_bare, tasks)
        total += time.perf_counter() - start
    return total


async def _bare(tasks: int) -> None:
    jobs_send, jobs_receive = trio.open_memory_channel[int](WORKERS)
    done_send, done_receive = trio.open_memory_channel[int](WORKERS)

    async def worker() -> None:
        async for job in jobs_receive:
            await trio.lowlevel.checkpoint()
            await done_send.send(job)

    async with trio.open_nursery() as nursery:
        for _ in range(WORKERS):
            nursery.start_soon(worker)
        in_flight = 0
        for job in range(tasks):
            if in_flight == WORKERS:
                await done_receive.receive()
                in_flight -= 1
            await jobs_send.send(job)
            in_flight += 1
        for _ in range(in_flight):
            await done_receive.receive()
        jobs_send.close()


if __name__ == "__main__":
    main()
