"""
Benchmark 6: peak RSS of an in-process run of 100,000 tasks, and whether it grows with events.

Each value is the peak resident set size (``ru_maxrss``) of a fresh pyperf
worker process, so one value is one process and one run; the unit is bytes.
Three benchmarks in one invocation:

- ``spec-only``: build the spec and graph, open the store, no run (the floor);
- ``run``: the same, then a run with `workloads.NoopRunner` into a SQLite file;
- ``run-3x-events``: every task fails twice and is retried at once, so the run
  writes about three times as many events with the same tasks.

If events were held in memory, the third would exceed the second by the size
of the extra events; the manager prints both differences.

    python perf/bench_memory.py --tasks 100000 -o memory.json
"""

from __future__ import annotations

import resource
from typing import Any

import trio
import workloads as w

from uet_trio.recording.store import Store
from uet_trio.running.engine import open_run
from uet_trio.workflow.graph import compile_graph

WORKERS = 8


def main() -> None:
    runner, args = w.whole_run_runner(100_000)
    unit = {"unit": "byte"}
    results = {
        name: runner.bench_time_func(
            f"{name}-{args.tasks}", _peak_rss, args.tasks, failures, metadata=unit
        )
        for name, failures in (("spec-only", None), ("run", 0), ("run-3x-events", 2))
    }
    if None in results.values() or args.worker:
        return
    mib = {name: bench.mean() / 2**20 for name, bench in results.items() if bench is not None}
    print(
        f"\npeak RSS MiB: {', '.join(f'{k} {v:.1f}' for k, v in mib.items())}; "
        f"run adds {mib['run'] - mib['spec-only']:.1f}; "
        f"3x events adds {mib['run-3x-events'] - mib['run']:.1f} more"
    )


def _peak_rss(loops: int, tasks: int, failures: int | None) -> float:
    """Peak RSS in bytes of this process after building (and maybe running) the workload."""
    spec = w.noop_spec(tasks, WORKERS, failures or 0)
    compile_graph(spec)
    with Store.open(w.scratch("memory") / "uet.db") as store:
        for _ in range(loops if failures is not None else 0):
            trio.run(_run, spec, store, failures or 0)
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 * loops)


async def _run(spec: Any, store: Store, failures: int) -> None:
    async with open_run(spec, store=store, runner=w.NoopRunner(failures)):
        pass


if __name__ == "__main__":
    main()
