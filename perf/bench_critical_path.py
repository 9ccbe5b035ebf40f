"""
Critical path first: wall time of a run whose order matters, three ways.

The workflow (real ``sleep`` processes, 4 workers): one long chain of three
0.6 s steps, declared last, and sixteen short side chains of four 0.05 s
steps each. The work (1.8 s + 3.2 s over 4 workers = 1.25 s) fits inside the
long chain, so the ideal wall time is the long chain itself, 1.8 s: start it
at once and fill the other workers with side work.

- ``declared``: plain declaration order (`--order declared`): every side
  step goes first, the long chain starts late.
- ``critical-first-run``: critical-path order with no history, so every task
  weighs 1: the side chains (4 steps) outrank the long chain (3 steps) until
  they are half done.
- ``critical-second-run``: the same order after one recorded run of the
  workflow, so tasks weigh their recorded durations: the long chain (1.8 s)
  outranks every side chain (0.2 s) and starts first.

Each value runs in a fresh database; the second-run value first makes one
untimed run into it. Every run is checked to have succeeded.

    python perf/bench_critical_path.py -o critical_path.json
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyperf
import trio
import workloads as w

from uet_trio.recording.states import RunStatus
from uet_trio.recording.store import Store
from uet_trio.running.engine import run_workflow
from uet_trio.workflow.spec import TaskSpec, WorkflowSpec

WORKERS = 4
LONG_STEPS = 3
LONG_STEP = 0.6
SIDE_CHAINS = 16
SIDE_STEPS = 4
SIDE_STEP = 0.05
IDEAL = LONG_STEPS * LONG_STEP


def workflow(base_dir: Path) -> WorkflowSpec:
    """The side chains, then the long chain, as described above."""
    tasks = []
    for chain in range(SIDE_CHAINS):
        for step in range(SIDE_STEPS):
            tasks.append(
                TaskSpec(
                    id=f"side{chain:02d}-{step}",
                    command=["sleep", str(SIDE_STEP)],
                    depends_on=[f"side{chain:02d}-{step - 1}"] if step else [],
                )
            )
    for step in range(LONG_STEPS):
        tasks.append(
            TaskSpec(
                id=f"long-{step}",
                command=["sleep", str(LONG_STEP)],
                depends_on=[f"long-{step - 1}"] if step else [],
            )
        )
    return WorkflowSpec(name="critical-path", tasks=tasks, base_dir=base_dir)


def main() -> None:
    runner = pyperf.Runner(processes=3, values=2, warmups=0, loops=1)
    args = runner.parse_args()
    results: dict[str, Any] = {}
    for name, order, history in (
        ("declared", "declared", False),
        ("critical-first-run", "critical", False),
        ("critical-second-run", "critical", True),
    ):
        results[name] = runner.bench_time_func(f"wall-{name}", _time_run, order, history)
    if args.worker or any(bench is None for bench in results.values()):
        return
    wall = {name: bench.mean() for name, bench in results.items()}
    print()
    for name, seconds in wall.items():
        print(f"{name:>20}: {seconds:.3f} s ({seconds / IDEAL:.2f}x the {IDEAL:.1f} s ideal)")
    second = wall["critical-second-run"]
    print(
        f"second run / first run: {second / wall['critical-first-run']:.3f}; "
        f"second run / declared: {second / wall['declared']:.3f}"
    )


def _time_run(loops: int, order: str, history: bool) -> float:
    total = 0.0
    for _ in range(loops):
        scratch = w.scratch("critical-path")
        spec = workflow(scratch)
        with Store.open(scratch / "uet.db") as store:
            if history:
                _check(trio.run(_run, spec, store, order))
            start = time.perf_counter()
            status = trio.run(_run, spec, store, order)
            total += time.perf_counter() - start
            _check(status)
    return total


async def _run(spec: WorkflowSpec, store: Store, order: str) -> RunStatus:
    result = await run_workflow(spec, store=store, max_workers=WORKERS, order=order)
    return result.status


def _check(status: RunStatus) -> None:
    if status is not RunStatus.SUCCEEDED:
        raise RuntimeError(f"benchmark run ended {status.value}")


if __name__ == "__main__":
    main()
