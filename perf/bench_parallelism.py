"""
Benchmark 2: 10 tasks of `sleep 1` on 10 workers, as a whole `uet run` process.

pyperf times the whole process. Achieved parallelism is read from the store
the run wrote: the sum of the attempts' durations divided by the run's
duration (``started_at`` to ``finished_at`` of the run row); 10 is perfect. The
manager process prints it for one more run after the timed ones.

    python perf/bench_parallelism.py -o parallelism.json
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyperf
import workloads as w

from uet_trio.recording.store import Store

TASKS = 10


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--seconds", str(args.seconds)])


def main() -> None:
    runner = pyperf.Runner(processes=3, values=1, warmups=0, loops=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--seconds", type=float, default=1.0)
    args = runner.parse_args()
    root = w.scratch("parallelism")
    flow = root / "flow.toml"
    _write_flow(flow, args.seconds)
    command = [w.UET, "run", "-q", "--db", ".uet/uet.db", "flow.toml"]
    bench = runner.bench_time_func(
        f"uet-{TASKS}x-sleep-{args.seconds:g}",
        w.time_command,
        command,
        root,
        lambda: shutil.rmtree(root / ".uet", ignore_errors=True),
    )
    if bench is None or args.worker:
        return
    w.time_command(1, command, root, lambda: shutil.rmtree(root / ".uet", ignore_errors=True))
    print(
        f"\nwhole process: mean {bench.mean():.3f} s, max {max(bench.get_values()):.3f} s; "
        f"achieved parallelism (one more run): {parallelism(root / '.uet' / 'uet.db'):.2f}"
    )


def _write_flow(path: Path, seconds: float) -> None:
    lines = ["[workflow]", 'name = "parallel-sleep"', f"max_workers = {TASKS}", ""]
    for i in range(TASKS):
        lines += ["[[tasks]]", f'id = "sleep-{i}"', f'command = ["sleep", "{seconds:g}"]', ""]
    path.write_text("\n".join(lines))


def parallelism(db: Path) -> float:
    """Sum of attempt durations over the run's duration, both as the store recorded them."""
    with Store.open(db) as store:
        (run,) = store.list_runs()
        attempts = store.attempts(run.run_id)
    assert run.started_at is not None
    assert run.finished_at is not None
    return sum(a.duration or 0.0 for a in attempts) / (run.finished_at - run.started_at)


if __name__ == "__main__":
    main()
