"""
Attempts on Dask: uet's throughput against a plain Dask client, and its parallelism.

Two clusters, started by this script as users start them (``dask scheduler``
and ``dask worker`` processes, every port on 127.0.0.1):

- **Throughput**, on 2 workers x 2 threads: ``--tasks`` tasks of ``true``
  (no dependencies), each value one whole process from a clean directory:

  - ``uet-dask``: ``uet run -q flow.toml --dask ADDRESS`` (4 workers, the
    cluster's threads);
  - ``plain-dask``: a Python script that connects a ``distributed.Client``
    to the same cluster, submits one ``subprocess.run(["true"])`` per task
    and gathers the exit codes: the least a Dask user would write;
  - ``noop-dask``: the same script submitting a function that does nothing
    (what Dask alone costs per task);
  - ``uet-local``: ``uet run -q flow.toml -j 4`` without Dask (what an
    attempt costs on this machine).

  The runs are interleaved: each round runs every variant once, in an order
  that rotates from round to round, so a slow spell of the shared machine
  falls on all of them alike. The table gives each variant's median and
  tasks/s at the median, and uet's ratio to the plain script, overall
  (medians) and as the median of the per-round ratios.
- **Parallelism**, on 2 workers x 5 threads: 10 tasks of ``sleep
  --seconds`` through ``uet run --dask``, ``--rounds`` times after one
  untimed warm-up; parallelism is
  the sum of the attempts' durations over the run's duration, both as the
  store recorded them (10 is perfect).

    python perf/bench_dask.py                              # 1000 tasks, 5 rounds
    python perf/bench_dask.py --tasks 200 --rounds 3 -o dask.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distributed import Client

from uet_trio.recording.store import Store

DASK = str(Path(sys.executable).with_name("dask"))
UET = str(Path(sys.executable).with_name("uet"))

PLAIN = """\
import subprocess, sys
from distributed import Client

def run(argv):
    return subprocess.run(argv, check=False).returncode

def nothing(argv):
    return 0

address, tasks, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
function = run if kind == "run" else nothing
with Client(address) as client:
    futures = [client.submit(function, ["true"], pure=False) for _ in range(tasks)]
    codes = client.gather(futures)
assert codes == [0] * tasks
"""
"""The baseline: a plain Dask client script (``run``: subprocesses, ``noop``: nothing)."""


@contextmanager
def cluster(directory: Path, workers: int, threads: int) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker`` on 127.0.0.1; yields the scheduler's address."""
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "scheduler.json"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [
            *(DASK, "scheduler", "--host", "127.0.0.1", "--port", "0"),
            *("--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file)),
        ],
        **quiet,
    )
    worker = None
    try:
        while not (file.exists() and "address" in file.read_text()):
            time.sleep(0.05)
        address = str(json.loads(file.read_text())["address"])
        worker = subprocess.Popen(
            [
                *(DASK, "worker", address, "--host", "127.0.0.1"),
                *("--dashboard-address", "127.0.0.1:0"),
                *("--nworkers", str(workers), "--nthreads", str(threads)),
            ],
            **quiet,
        )
        with Client(address) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait()


def write_flow(path: Path, tasks: int, command: list[str]) -> None:
    lines = ["[workflow]", f'name = "{path.stem}"', ""]
    argv = ", ".join(f'"{part}"' for part in command)
    for i in range(tasks):
        lines += ["[[tasks]]", f'id = "t{i}"', f"command = [{argv}]", ""]
    path.write_text("\n".join(lines))


def timed(argv: list[str], cwd: Path) -> float:
    """Seconds `argv` took as a whole process, from a clean ``.uet``; a failure raises."""
    subprocess.run(["rm", "-rf", str(cwd / ".uet")], check=True)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def parallelism(db: Path) -> float:
    """Sum of attempt durations over the run's duration, as the store recorded them."""
    with Store.open(db) as store:
        (run,) = store.list_runs()
        attempts = store.attempts(run.run_id)
    assert run.started_at is not None
    assert run.finished_at is not None
    return sum(a.duration or 0.0 for a in attempts) / (run.finished_at - run.started_at)


def throughput(root: Path, tasks: int, rounds: int) -> dict[str, Any]:
    flow_dir = root / "flow"
    flow_dir.mkdir()
    write_flow(flow_dir / "flow.toml", tasks, ["true"])
    plain = root / "plain.py"
    plain.write_text(PLAIN)
    values: dict[str, list[float]] = {}
    with cluster(root / "cluster-2x2", workers=2, threads=2) as address:
        variants = {
            "uet-dask": [UET, "run", "-q", "flow.toml", "--dask", address],
            "plain-dask": [sys.executable, str(plain), address, str(tasks), "run"],
            "noop-dask": [sys.executable, str(plain), address, str(tasks), "noop"],
            "uet-local": [UET, "run", "-q", "flow.toml", "-j", "4"],
        }
        names = list(variants)
        for name in names:  # one untimed warm-up each
            timed(variants[name], flow_dir)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                values.setdefault(name, []).append(timed(variants[name], flow_dir))
    medians = {name: statistics.median(v) for name, v in values.items()}
    ratios = [p / u for u, p in zip(values["uet-dask"], values["plain-dask"], strict=True)]
    return {
        "tasks": tasks,
        "values": values,
        "medians": medians,
        "ratio": medians["plain-dask"] / medians["uet-dask"],
        "ratio_per_round": statistics.median(ratios),
    }


def parallel(root: Path, seconds: float, rounds: int) -> list[float]:
    flow_dir = root / "sleep"
    flow_dir.mkdir()
    write_flow(flow_dir / "flow.toml", 10, ["sleep", f"{seconds:g}"])
    found = []
    with cluster(root / "cluster-2x5", workers=2, threads=5) as address:
        # Untimed: each worker process imports the remote side on its first attempt.
        timed([UET, "run", "-q", "flow.toml", "--dask", address], flow_dir)
        for _ in range(rounds):
            timed([UET, "run", "-q", "flow.toml", "--dask", address], flow_dir)
            found.append(parallelism(flow_dir / ".uet" / "uet.db"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="uet-perf-dask-") as scratch:
        root = Path(scratch)
        result = throughput(root, args.tasks, args.rounds)
        levels = parallel(root, args.seconds, args.rounds)
    tasks = result["tasks"]
    print(f"{tasks} tasks of true on 2 workers x 2 threads, {args.rounds} rounds, medians:")
    for name, median in result["medians"].items():
        print(f"  {name:<11} {median:7.3f} s  {tasks / median:7.0f} tasks/s")
    print(
        f"uet-dask / plain-dask tasks/s: {result['ratio']:.2f} "
        f"(median of per-round ratios {result['ratio_per_round']:.2f})"
    )
    print(
        f"10 x sleep {args.seconds:g} on 2 workers x 5 threads: parallelism "
        f"median {statistics.median(levels):.2f}, min {min(levels):.2f}"
    )
    if args.output is not None:
        result["parallelism"] = levels
        args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
