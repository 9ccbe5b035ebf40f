"""
Benchmark 5: start-up of the `uet` program, `--help` and `validate` of a 1000-task file.

Whole processes timed by pyperf's `bench_command`, next to a bare
``python -c pass`` and ``python -c "import trio"`` from the same interpreter
as baselines, so the time uet adds on top of the interpreter is visible.

    python perf/bench_startup.py -o startup.json
"""

from __future__ import annotations

import sys

import pyperf
import workloads as w


def main() -> None:
    runner = pyperf.Runner(processes=5, values=3, warmups=1)
    flow = w.write_uet_flow(w.scratch("startup") / "flow1000.toml", 1000, "dag", 8)
    runner.bench_command("python-pass", [sys.executable, "-c", "pass"])
    runner.bench_command("python-import-trio", [sys.executable, "-c", "import trio"])
    runner.bench_command("uet-help", [w.UET, "--help"])
    runner.bench_command("uet-validate-1000", [w.UET, "validate", str(flow)])


if __name__ == "__main__":
    main()
