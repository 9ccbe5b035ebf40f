"""
Two source trees of uet-trio run as whole `uet` processes, interleaved, in one venv.

Lighter than `compare_refs.py` (no worktrees, no venvs): each side is a
directory holding a tree's ``uet_trio`` and ``cli`` (a checkout, or
``git archive REF | tar -x -C DIR``), put first on ``PYTHONPATH`` through
links under a scratch directory (``cli`` as ``uet_trio_cli``), so this venv's
``uet`` script runs that side's code. Both sides' bytecode is compiled
first. Each round runs, in an order that rotates, every side on every
workload from a clean directory (no store), plus ``python -c 'import trio'``
and ``ninja -j8`` on the same DAG as baselines; the table gives the medians
of wall time and of the CPU time of the whole process tree (the commands'
children included, the same on both sides).

Workloads: ``run-1`` (one task of ``true``), ``dag-1000`` and ``dag-5000``
(`workloads.graph`, 8 workers).

    python perf/whole_run_ab.py --old /tmp/main-tree --new . --rounds 12
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workloads as w
from bench_throughput import JOBS, write_build_ninja

WORKLOADS = {"run-1": 1, "dag-1000": 1000, "dag-5000": 5000}


def side_path(tree: Path, scratch: Path, label: str) -> str:
    """A directory whose ``uet_trio`` and ``uet_trio_cli`` are `tree`'s, compiled."""
    root = scratch / f"path-{label}"
    root.mkdir()
    (root / "uet_trio").symlink_to(tree.resolve() / "uet_trio")
    (root / "uet_trio_cli").symlink_to(tree.resolve() / "cli")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "uet_trio"), str(tree / "cli")],
        check=True,
        env=_env(None),
    )
    return str(root)


def _env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # both sides run from bytecode caches
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of `argv`, and CPU seconds of it and the children it reaped."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="source tree of the old side")
    parser.add_argument("--new", type=Path, required=True, help="source tree of the new side")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="uet-ab-"))
    try:
        sides = {
            "old": _env(side_path(args.old, scratch, "old")),
            "new": _env(side_path(args.new, scratch, "new")),
        }
        ninja = shutil.which("ninja")
        dirs = {}
        for name in args.only:
            tasks = WORKLOADS[name]
            directory = w.fresh_dir(scratch / name)
            shape = "flat" if tasks == 1 else "dag"
            w.write_uet_flow(directory / "flow.toml", tasks, shape, JOBS)
            if ninja is not None and tasks > 1:
                write_build_ninja(directory / "build.ninja", tasks, shape)
            dirs[name] = directory
        values: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_ in range(args.rounds):
            for name, directory in dirs.items():
                runs = [*sides, "baseline"]
                runs = runs[round_ % len(runs) :] + runs[: round_ % len(runs)]
                for run in runs:
                    for stale in directory.glob(".ninja_*"):
                        stale.unlink()
                    shutil.rmtree(directory / ".uet", ignore_errors=True)
                    if run in sides:
                        argv = [w.UET, "run", "-q", "--db", ".uet/uet.db", "flow.toml"]
                        values.setdefault((name, run), []).append(
                            timed(argv, directory, sides[run])
                        )
                    elif WORKLOADS[name] == 1:
                        argv = [sys.executable, "-c", "import trio"]
                        values.setdefault((name, "import trio"), []).append(
                            timed(argv, directory, _env(None))
                        )
                    elif ninja is not None:
                        argv = [ninja, f"-j{JOBS}"]
                        values.setdefault((name, "ninja -j8"), []).append(
                            timed(argv, directory, _env(None))
                        )
        _report(values)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _report(values: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    print(f"{'workload':10} {'side':12} {'wall (median)':>14} {'CPU (median)':>15}  n")
    for (name, run), pairs in values.items():
        wall = statistics.median(p[0] for p in pairs) * 1000
        cpu = statistics.median(p[1] for p in pairs) * 1000
        print(f"{name:10} {run:12} {wall:11.1f} ms {cpu:12.1f} ms  {len(pairs)}")
    for name in WORKLOADS:
        base = values.get((name, "import trio")) or values.get((name, "ninja -j8"))
        if base is None:
            continue
        base_wall = statistics.median(p[0] for p in base)
        for side in ("old", "new"):
            pairs = values.get((name, side))
            if pairs is None:
                continue
            wall = statistics.median(p[0] for p in pairs)
            if WORKLOADS[name] == 1:
                print(f"{name} {side}: {(wall - base_wall) * 1000:.1f} ms over import trio")
            else:
                print(f"{name} {side}: {base_wall / wall:.2f} of ninja's tasks/s")


if __name__ == "__main__":
    main()
