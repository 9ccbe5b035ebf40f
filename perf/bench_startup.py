"""
Benchmark 5: start-up of the `uet` program: `--help`, `validate` of a 1000-task
file, and a whole `uet run` of a 1-task file.

Whole processes timed by pyperf, next to a bare ``python -c pass`` and
``python -c "import trio"`` from the same interpreter as baselines, so the
time uet adds on top of the interpreter is visible. The 1-task run starts
each time from a directory without a store (removed before, untimed), as a
first run of a workflow does; the manager process then prints how far it is
from ``import trio``.

    python perf/bench_startup.py -o startup.json
"""

from __future__ import annotations

import shutil
import sys

import pyperf
import workloads as w


def main() -> None:
    runner = pyperf.Runner(processes=5, values=3, warmups=1)
    flow = w.write_uet_flow(w.scratch("startup") / "flow1000.toml", 1000, "dag", 8)
    runner.bench_command("python-pass", [sys.executable, "-c", "pass"])
    trio = runner.bench_command("python-import-trio", [sys.executable, "-c", "import trio"])
    runner.bench_command("uet-help", [w.UET, "--help"])
    runner.bench_command("uet-validate-1000", [w.UET, "validate", str(flow)])
    one = w.write_uet_flow(w.scratch("startup-run") / "one.toml", 1, "flat", 1)
    run = runner.bench_time_func(
        "uet-run-1",
        w.time_command,
        [w.UET, "run", "-q", one.name],
        one.parent,
        lambda: shutil.rmtree(one.parent / ".uet", ignore_errors=True),
    )
    if run is not None and trio is not None:
        over = (run.median() - trio.median()) * 1000
        print(f"\nuet run of 1 task: {over:.1f} ms over python -c 'import trio' (medians)")


if __name__ == "__main__":
    main()
