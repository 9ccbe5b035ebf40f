"""
Runs of 10,000 to 1,000,000 tasks: peak memory, the store's size, and the views on it.

For each size, one fresh process builds the layered DAG of `workloads.graph`
(ten layers) as a spec and runs it in-process with a runner that starts no
process, every event persisted to a new SQLite store; one task in a thousand
of the first layer fails, so its dependents are skipped and the run has
something for ``uet show --failed`` to show. That process reports its wall
time, its peak RSS (``ru_maxrss``) and the store's size. Then, on that store,
whole ``uet runs`` and ``uet show --last --failed`` processes are timed
(``--views`` times each, interleaved; medians of wall and CPU time, the CPU
time being user + system of the child as the kernel counts it).

    python perf/bench_scale_run.py --tasks 10000 100000 1000000 --views 5

Plain timing rather than pyperf: one value of the largest size takes a
minute, and what is compared is the growth from size to size.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio
import workloads as w

from uet_trio.deciding.attempts import AttemptRequest, AttemptResult
from uet_trio.recording.store import Store
from uet_trio.running.engine import open_run
from uet_trio.running.executors.base import Report
from uet_trio.workflow.spec import TaskSpec, WorkflowSpec

WORKERS = 8
FAIL_EVERY = 1000
"""One task in this many of the first layer fails."""


class SomeFail(w.NoopRunner):
    """`workloads.NoopRunner`, except that first-layer tasks ``l0_K`` fail when 1000 divides K."""

    async def run(self, request: AttemptRequest, report: Report) -> AttemptResult:
        result = await super().run(request, report)
        layer, _, k = request.task_id.partition("_")
        if layer == "l0" and int(k) % FAIL_EVERY == 0:
            return AttemptResult(
                index=result.index,
                attempt=result.attempt,
                started=result.started,
                ended=result.ended,
                exit_code=1,
            )
        return result


def run_once(tasks: int, db: Path) -> None:
    """Build and run the workload into `db`; print wall seconds, peak RSS bytes, store bytes."""
    start = time.perf_counter()
    spec = WorkflowSpec(
        name=f"scale-{tasks}",
        tasks=[
            TaskSpec(id=name, command=["true"], depends_on=deps)
            for name, deps in w.graph(tasks, "dag")
        ],
        max_workers=WORKERS,
        base_dir=db.parent,
    )

    async def run() -> None:
        async with open_run(spec, store=store, runner=SomeFail()):
            pass

    with Store.open(db) as store:
        trio.run(run)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(wall, peak, db.stat().st_size)


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process of `argv` (its output to /dev/null)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--views", type=int, default=5, help="times each view is timed")
    parser.add_argument("--one", nargs=2, metavar=("TASKS", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_once(int(args.one[0]), Path(args.one[1]))
        return
    scratch = w.scratch("scale-run")
    print("tasks, run wall s, peak RSS MB, store MB, store bytes per task; views: wall / CPU ms")
    for tasks in args.tasks:
        db = scratch / f"{tasks}" / "uet.db"
        db.parent.mkdir()
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(tasks), str(db)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        wall, peak, size = (float(value) for value in out.split())
        views = {
            "uet runs": [w.UET, "runs", "--db", str(db)],
            "uet show --last --failed": [w.UET, "show", "--last", "--failed", "--db", str(db)],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in views}
        for _ in range(args.views):
            for name, argv in views.items():
                times[name].append(timed(argv))
        shown = "; ".join(
            f"{name} {statistics.median(t[0] for t in values) * 1e3:.0f} / "
            f"{statistics.median(t[1] for t in values) * 1e3:.0f}"
            for name, values in times.items()
        )
        print(
            f"{tasks}, {wall:.1f}, {peak / 2**20:.0f}, {size / 2**20:.0f}, "
            f"{size / tasks:.0f}; {shown}",
            flush=True,
        )
        os.remove(db)


if __name__ == "__main__":
    main()
