"""
Loading large workflows: whole `uet validate` and `uet plan` processes at 10k, 100k and 1M tasks.

The workflows are JSON files written here, each task ``tN`` running
``["true"]`` in 100 levels of equal width; every task past the first level
depends on the task one level above it (99% of the tasks have a
dependency). Each round runs every command on every size once, the order
rotating by one every round so a slow spell of the shared machine falls on
all of them alike, and records for each process its wall time, its CPU time
(user and system, from `os.wait4`) and its peak resident memory
(``ru_maxrss``). `uet plan` writes to /dev/null. The summary prints the
medians, the time per task at each size (a flat column is a linear curve)
and the targets of issue 20: validate under 10 s and plan under 15 s at
1,000,000 tasks, each under 1.0 GB. ``--baseline`` names the ``uet`` of
another version (another venv's), timed in the same rounds, interleaved,
and the summary adds its medians and the ratios. ``-o`` writes every value
as JSON.

    python perf/bench_scale.py --rounds 3
    python perf/bench_scale.py --sizes 10000 100000 --rounds 5 -o scale.json
    python perf/bench_scale.py --baseline /tmp/venv-main/bin/uet --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UET = str(Path(sys.executable).with_name("uet"))
LEVELS = 100
COMMANDS = ("validate", "plan")
TARGETS = {"validate": 10.0, "plan": 15.0}
"""Seconds at 1,000,000 tasks (issue 20); each process also under `MEMORY_TARGET` bytes."""
MEMORY_TARGET = 1.0e9


def write_flow(path: Path, tasks: int) -> Path:
    """A JSON workflow of `tasks` tasks of ``true`` in `LEVELS` levels, written piece by piece."""
    width = max(1, tasks // LEVELS)
    with path.open("w") as out:
        out.write(f'{{"workflow": {{"name": "scale{tasks}"}}, "tasks": [\n')
        for i in range(tasks):
            task: dict[str, object] = {"id": f"t{i}", "command": ["true"]}
            if i >= width:
                task["depends_on"] = [f"t{i - width}"]
            out.write(("" if i == 0 else ",\n") + json.dumps(task))
        out.write("\n]}\n")
    return path


def run_one(argv: list[str]) -> tuple[float, float, int]:
    """One whole process: its wall time, CPU time (user and system) and peak RSS in bytes."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def measure(
    sizes: list[int], rounds: int, uets: dict[str, str]
) -> dict[str, dict[str, list[float]]]:
    """
    Every value of every run, by ``VERSION COMMAND-SIZE`` and then ``wall``, ``cpu``, ``rss``.

    `uets` maps each version's label to its ``uet`` command.
    """
    with tempfile.TemporaryDirectory(prefix="uet-scale-") as scratch:
        flows = {size: write_flow(Path(scratch) / f"flow{size}.json", size) for size in sizes}
        runs = [(label, command, size) for size in sizes for command in COMMANDS for label in uets]
        values: dict[str, dict[str, list[float]]] = {}
        for turn in range(rounds):
            for label, command, size in runs[turn % len(runs) :] + runs[: turn % len(runs)]:
                argv = [uets[label], command, str(flows[size])]
                if command == "plan":
                    argv += ["--db", str(Path(scratch) / "none.db")]
                wall, cpu, rss = run_one(argv)
                key = f"{label} {command}-{size}"
                entry = values.setdefault(key, {"wall": [], "cpu": [], "rss": []})
                entry["wall"].append(wall)
                entry["cpu"].append(cpu)
                entry["rss"].append(rss)
        return values


def summary(
    sizes: list[int], rounds: int, labels: list[str], values: dict[str, dict[str, list[float]]]
) -> None:
    """Medians per version, command and size, microseconds per task, the targets at 1M, ratios."""
    print(f"\nwhole processes, medians of {rounds} rounds:")
    print(f"  {'':<25} {'wall':>9} {'CPU':>9} {'peak RSS':>10} {'wall/task':>10} {'CPU/task':>9}")
    median = {
        key: {kind: statistics.median(entry[kind]) for kind in entry}
        for key, entry in values.items()
    }
    for command in COMMANDS:
        for size in sizes:
            for label in labels:
                wall, cpu, rss = median[f"{label} {command}-{size}"].values()
                line = (
                    f"  {label + ' ' + command + ' ' + format(size, ','):<25} {wall:8.2f}s "
                    f"{cpu:8.2f}s {rss / 1e6:7.0f} MB {wall / size * 1e6:7.1f} us "
                    f"{cpu / size * 1e6:6.1f} us"
                )
                if size == 1_000_000:
                    met = wall < TARGETS[command] and rss < MEMORY_TARGET
                    line += f"  (target < {TARGETS[command]:.0f} s, < 1.0 GB: "
                    line += f"{'met' if met else 'missed'})"
                print(line)
    if len(labels) == 2:
        new, old = labels
        print(f"\n{new} / {old}, medians (and the median of per-round ratios of wall time):")
        for command in COMMANDS:
            for size in sizes:
                a, b = values[f"{new} {command}-{size}"], values[f"{old} {command}-{size}"]
                paired = statistics.median(x / y for x, y in zip(a["wall"], b["wall"], strict=True))
                ratios = "  ".join(
                    f"{kind} {statistics.median(a[kind]) / statistics.median(b[kind]):.2f}"
                    for kind in ("wall", "cpu", "rss")
                )
                name = f"{command} {size:,}"
                print(f"  {name:<20} {ratios}  (paired wall {paired:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uet", default=UET, help="the uet command to time (default: %(default)s)")
    parser.add_argument("--baseline", help="the uet command of another version, timed alongside")
    parser.add_argument("-o", "--output", type=Path, help="write every value as JSON here")
    args = parser.parse_args()
    uets = {"new": args.uet} | ({"old": args.baseline} if args.baseline else {})
    values = measure(args.sizes, args.rounds, uets)
    summary(args.sizes, args.rounds, list(uets), values)
    if args.output is not None:
        args.output.write_text(json.dumps(values, indent=1))


if __name__ == "__main__":
    main()
