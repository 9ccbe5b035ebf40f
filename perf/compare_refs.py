"""
Two versions of uet-trio side by side: throughput of each, same machine, same invocation.

Each side is a git ref (checked out with `git worktree add` under a scratch
directory in $TMPDIR) or an existing source directory; by default the old side
is commit e2d698f and the new side is this working tree. Each side gets its own
venv with ``pip install -e '<tree>[perf]'``, so each runs its own code, its own
console script and its own perf/ scripts, whatever its module layout. A
directory is measured as it is at each moment, edits made during the run
included; ``--new HEAD`` measures a fixed commit instead.

Benchmarks, each value one whole run:

- ``dag-1000``, ``dag-5000``: ``uet run -q`` as a whole process, from a clean
  directory each time, of a layered DAG of tasks of ``true`` with 8 workers
  (10 x 100 and 50 x 100 tasks; task j of a layer depends on tasks j and j + 1
  of the layer before, wrapping). Start-up, loading, persistence and exit are
  inside the time.
- ``inprocess``: one run of the side's own ``perf/bench_inprocess.py`` engine
  timing (100,000 no-op tasks on 8 workers into a fresh SQLite file, every
  event checked as persisted), in a fresh process of the side's venv.

The runs are interleaved: each round runs every benchmark once per side, the
side that goes first alternating between rounds, so a slow spell of the shared
machine falls on both sides alike. After one untimed warm-up of each side, the
table gives each side's median, its throughput at the median, and the ratio of
the new side's median throughput to the old side's, and the median of that
ratio within each round (less moved by a spell that lasts several rounds).

    python perf/compare_refs.py                      # e2d698f against the working tree
    python perf/compare_refs.py --old 8456e52 --new HEAD --rounds 9 -o compare.json

A default run (9 rounds) takes 3-5 minutes on a 2-core machine, more when
it is loaded. Scratch directories, venvs and worktrees are removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OLD = "e2d698f"
WORKERS = 8
DAG_WIDTH = 100
DAG_SIZES = {"dag-1000": 1000, "dag-5000": 5000}
BENCHMARKS = (*DAG_SIZES, "inprocess")


class Side:
    """One version under test: its source tree, its venv, and how to time a benchmark."""

    def __init__(self, label: str, spec: str, scratch: Path) -> None:
        self.label = label
        self.spec = spec
        checked_out = not Path(spec).is_dir()
        if checked_out:
            self.tree = scratch / f"tree-{label}"
            _git("worktree", "add", "--detach", str(self.tree), spec)
        else:
            self.tree = Path(spec).resolve()
        self.venv = scratch / f"venv-{label}"
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        subprocess.run(
            [self.bin("pip"), "install", "-q", "-e", f"{self.tree}[perf]"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        self.commit = _git("rev-parse", "--short", "HEAD", cwd=self.tree).strip()
        if not checked_out and _git("status", "--porcelain", cwd=self.tree).strip():
            self.commit += "+changes"

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def uet_run(self, flow: Path) -> float:
        """Seconds of one whole `uet run` of `flow`, from a directory with no database."""
        shutil.rmtree(flow.parent / ".uet", ignore_errors=True)
        argv = [self.bin("uet"), "run", "-q", "--db", ".uet/uet.db", flow.name]
        start = time.perf_counter()
        subprocess.run(argv, cwd=flow.parent, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    def inprocess(self, tasks: int) -> float:
        """Seconds of one in-process run, as timed by the side's own perf/bench_inprocess.py."""
        argv = [self.bin("python"), __file__, "_inprocess", str(self.tree / "perf"), str(tasks)]
        done = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
        return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=DEFAULT_OLD, help="git ref or source directory")
    parser.add_argument("--new", default=str(REPO), help="git ref or source directory")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--inprocess-tasks", type=int, default=100_000)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("-o", "--output", type=Path, help="write every value as JSON here")
    args = parser.parse_args()
    # Both sides run from bytecode caches, as an installed uet does: with
    # PYTHONDONTWRITEBYTECODE set (some shells set it), every run would compile
    # its modules again, and the side with more code would pay more for it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    scratch = Path(tempfile.mkdtemp(prefix="uet-compare-"))
    try:
        sides = [Side("old", args.old, scratch), Side("new", args.new, scratch)]
        flows = {name: _write_dag(scratch / name, tasks) for name, tasks in DAG_SIZES.items()}
        timers: dict[str, Callable[[Side], float]] = {
            name: functools.partial(Side.uet_run, flow=flow) for name, flow in flows.items()
        }
        timers["inprocess"] = functools.partial(Side.inprocess, tasks=args.inprocess_tasks)
        timers = {name: timers[name] for name in args.only}
        print(f"old: {args.old} ({sides[0].commit}); new: {args.new} ({sides[1].commit})")
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        warm = _write_dag(scratch / "warm-up", DAG_WIDTH)
        for side in sides:
            side.uet_run(warm)
            side.inprocess(1000)
        values = _measure(sides, timers, args.rounds)
        print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
        _table(values, {**DAG_SIZES, "inprocess": args.inprocess_tasks})
        if args.output is not None:
            args.output.write_text(json.dumps(values, indent=1) + "\n")
    finally:
        for worktree in scratch.glob("tree-*"):
            _git("worktree", "remove", "--force", str(worktree))
        shutil.rmtree(scratch, ignore_errors=True)


def _measure(
    sides: list[Side], timers: dict[str, Callable[[Side], float]], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Seconds per benchmark and side, the sides taking turns at going first."""
    values: dict[str, dict[str, list[float]]] = {
        name: {side.label: [] for side in sides} for name in timers
    }
    for round_ in range(rounds):
        order = sides if round_ % 2 == 0 else sides[::-1]
        for name, timer in timers.items():
            for side in order:
                values[name][side.label].append(timer(side))
        print(
            f"round {round_ + 1}/{rounds}: "
            + "; ".join(
                f"{name} " + " ".join(f"{s}={v[s][-1]:.3f}s" for s in v)
                for name, v in values.items()
            ),
            flush=True,
        )
    return values


def _table(values: dict[str, dict[str, list[float]]], tasks: dict[str, int]) -> None:
    """
    Medians per side; new/old compares the medians' throughputs, and "paired"
    is the median of the same ratio taken within each round.
    """
    print("| benchmark | side | median s | tasks/s | range s | new/old | paired |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, by_side in values.items():
        medians = {label: statistics.median(v) for label, v in by_side.items()}
        paired = statistics.median(
            [old / new for old, new in zip(by_side["old"], by_side["new"], strict=True)]
        )
        for label, seconds in by_side.items():
            ratios = ("", "")
            if label == "new":
                ratios = (f"{medians['old'] / medians['new']:.3f}", f"{paired:.3f}")
            print(
                f"| {name} | {label} | {medians[label]:.3f} | {tasks[name] / medians[label]:,.0f}"
                f" | {min(seconds):.3f}-{max(seconds):.3f} | {ratios[0]} | {ratios[1]} |"
            )


def _write_dag(directory: Path, tasks: int) -> Path:
    """A workflow of `tasks` tasks of `true` in layers of `DAG_WIDTH`, each on two of the last."""
    directory.mkdir(parents=True)
    lines = ["[workflow]", f'name = "dag-{tasks}"', f"max_workers = {WORKERS}", ""]
    for index in range(tasks):
        layer, j = divmod(index, DAG_WIDTH)
        lines += ["[[tasks]]", f'id = "l{layer}_{j}"', 'command = ["true"]']
        if layer:
            deps = sorted({f"l{layer - 1}_{j}", f"l{layer - 1}_{(j + 1) % DAG_WIDTH}"})
            lines.append("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]")
        lines.append("")
    flow = directory / "flow.toml"
    flow.write_text("\n".join(lines))
    return flow


def _inprocess(perf_dir: str, tasks: int) -> None:
    """Print the seconds of one run timed by `perf_dir`/bench_inprocess.py (in the side's venv)."""
    sys.path.insert(0, perf_dir)
    import bench_inprocess
    import workloads

    spec = workloads.noop_spec(tasks, bench_inprocess.WORKERS)
    print(bench_inprocess._time_engine(1, spec))


def _git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.PIPE, text=True)
    return done.stdout


if __name__ == "__main__":
    if sys.argv[1:2] == ["_inprocess"]:
        _inprocess(sys.argv[2], int(sys.argv[3]))
    else:
        main()
