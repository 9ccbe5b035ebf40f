"""
Benchmark: the CLI views on a large run, against the sqlite3 shell running the raw query.

Builds (once, in the pyperf manager process) a store holding one run of
`--tasks` tasks (default 10,000) in ten dependent layers, each task routed to a
tool and run by `uet_trio.testing.FakeRunner` under a mock clock, 5% of them
failing once and retried: about five events per task, ~52,000 events for
10,000 tasks. Then it times, as whole processes:

- ``uet show RUN`` and ``uet show RUN --json`` (tasks, attempts, ready causes,
  critical path, parallelism, rendering);
- ``uet events RUN --json`` (the whole event log as one JSON document);
- the sqlite3 shell answering the equivalent raw queries (``-json`` output),
  the floor for anything that reads these rows and prints them;
- ``uet --version``, the cost of starting the CLI at all.

A second store holds `--runs` runs (default 1,000) of a 20-task workflow in
which one task fails for good and its dependent is skipped. On it (and, for
comparison, on the large run) it times ``uet runs`` (the newest 20, and all
of them with ``--limit``) and ``uet show RUN --failed``, each against the
sqlite3 shell answering the raw query.

    python perf/bench_views.py -o views.json
    python perf/bench_views.py --tasks 1000 --runs 100 --fast      # quick look
    python perf/bench_views.py --interleaved 15                    # medians, interleaved

Commands run with stdout discarded; ratios are computed from means of the
same invocation.
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyperf

UET = str(Path(sys.executable).with_name("uet"))
SQLITE3 = shutil.which("sqlite3") or "sqlite3"
RUN_ID = "bench-views"
LAYERS = 10
RETRIED = 0.05
"""Share of tasks whose first attempt fails (and is retried)."""


def _flow_text(tasks: int) -> str:
    """A layered workflow: task j of layer k waits for tasks j and j+1 of layer k-1."""
    width = max(1, tasks // LAYERS)
    lines = [
        "[workflow]",
        'name = "views-bench"',
        "",
        "[tools.step]",
        'command = ["true", "{n}"]',
        'kinds = ["step"]',
        "retries = 1",
        "backoff = { initial = 0.01 }",
        "",
    ]
    for layer in range(LAYERS):
        for j in range(width):
            lines += [
                "[[tasks]]",
                f'id = "l{layer}_{j}"',
                'kind = "step"',
                f'params = {{ n = "{j}" }}',
            ]
            if layer:
                deps = sorted({f"l{layer - 1}_{j}", f"l{layer - 1}_{(j + 1) % width}"})
                lines.append("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]")
            lines.append("")
    return "\n".join(lines)


def _fraction(task_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def build_store(directory: Path, tasks: int) -> Path:
    """Record one simulated run of the workflow into ``directory/uet.db``; return the path."""
    from uet_trio.recording.store import Store
    from uet_trio.testing import FakeRunner, Outcome, simulate
    from uet_trio.workflow.loader import load_workflow

    flow = directory / "flow.toml"
    flow.write_text(_flow_text(tasks))
    spec = load_workflow(flow)

    def outcome(task_id: str, attempt: int) -> Outcome:
        duration = 0.01 + 0.2 * _fraction(task_id, "duration")
        failed = attempt == 1 and _fraction(task_id, "fail") < RETRIED
        return Outcome(duration, exit_code=1 if failed else 0)

    db = directory / "uet.db"
    with Store.open(db) as store:
        simulate(spec, FakeRunner(outcome), max_workers=8, store=store, run_id=RUN_ID)
    return db


SMALL_FLOW = """
[workflow]
name = "many-runs"

[[tasks]]
id = "prepare"
command = ["true"]

[[tasks]]
id = "broken"
command = ["false"]
depends_on = ["prepare"]

[[tasks]]
id = "after-broken"
command = ["true"]
depends_on = ["broken"]
""" + "".join(
    f'\n[[tasks]]\nid = "unit-{i:02d}"\ncommand = ["true"]\ndepends_on = ["prepare"]\n'
    for i in range(17)
)


def build_runs_store(directory: Path, runs: int) -> Path:
    """Record `runs` simulated runs of SMALL_FLOW into ``directory/runs.db``; return the path."""
    from uet_trio.recording.store import Store
    from uet_trio.testing import FakeRunner, Outcome, simulate
    from uet_trio.workflow.loader import load_workflow

    flow = directory / "small.toml"
    flow.write_text(SMALL_FLOW)
    spec = load_workflow(flow)

    def outcome(task_id: str, attempt: int) -> Outcome:
        return Outcome(0.05, exit_code=1 if task_id == "broken" else 0)

    db = directory / "runs.db"
    with Store.open(db) as store:
        for i in range(runs):
            simulate(spec, FakeRunner(outcome), max_workers=4, store=store, run_id=f"many-{i:05d}")
    return db


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--tasks", str(args.tasks), "--db", args.db])
    cmd.extend(["--runs", str(args.runs), "--runs-db", args.runs_db])


def main() -> None:
    runner = pyperf.Runner(processes=4, values=3, warmups=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--tasks", type=int, default=10_000)
    runner.argparser.add_argument("--db", default="", help="An existing store (built if empty).")
    runner.argparser.add_argument("--runs", type=int, default=1_000)
    runner.argparser.add_argument(
        "--runs-db", default="", help="An existing store of many runs (built if empty)."
    )
    runner.argparser.add_argument(
        "--interleaved",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="Instead of pyperf's runs: ROUNDS rounds, each running every command once.",
    )
    args = runner.parse_args()
    scratch = None
    if not args.db or not args.runs_db:
        scratch = tempfile.mkdtemp(prefix="bench-views-")
    if not args.db:
        assert scratch is not None
        args.db = str(build_store(Path(scratch), args.tasks))
        _describe(args.db)
    if not args.runs_db:
        assert scratch is not None
        args.runs_db = str(build_runs_store(Path(scratch), args.runs))
        _describe(args.runs_db)
    db, many = args.db, args.runs_db
    newest = f"many-{args.runs - 1:05d}"
    runs_sql = (
        "SELECT r.*, t.state, count(*) FROM (SELECT * FROM runs ORDER BY created_at DESC "
        "LIMIT {limit}) AS r JOIN tasks AS t USING (run_id) GROUP BY r.run_id, t.state"
    )
    failed_sql = (
        "SELECT t.*, a.attempt, a.exit_code, a.duration FROM tasks t LEFT JOIN attempts a "
        "USING (run_id, task_id) WHERE t.run_id = '{run}' AND t.state IN ('failed', 'skipped') "
        "ORDER BY t.idx, a.attempt"
    )
    show_sql = (
        "SELECT t.*, a.attempt, a.exit_code, a.signal, a.duration, a.started_at, a.finished_at "
        f"FROM tasks t LEFT JOIN attempts a USING (run_id, task_id) WHERE t.run_id = '{RUN_ID}' "
        "ORDER BY t.idx, a.attempt"
    )
    events_sql = f"SELECT * FROM events WHERE run_id = '{RUN_ID}' ORDER BY seq"
    timed = {
        "uet-show": [UET, "show", RUN_ID, "--db", db],
        "uet-show-json": [UET, "show", RUN_ID, "--db", db, "--json"],
        "sqlite3-show-query": [SQLITE3, "-json", db, show_sql],
        "uet-events-json": [UET, "events", RUN_ID, "--db", db, "--json"],
        "sqlite3-events-query": [SQLITE3, "-json", db, events_sql],
        "uet-startup": [UET, "--version"],
        "uet-runs": [UET, "runs", "--db", many],
        "sqlite3-runs-query": [SQLITE3, "-json", many, runs_sql.format(limit=20)],
        "uet-runs-all": [UET, "runs", "--db", many, "--limit", str(args.runs)],
        "sqlite3-runs-all-query": [SQLITE3, "-json", many, runs_sql.format(limit=args.runs)],
        "uet-show-failed": [UET, "show", newest, "--failed", "--db", many],
        "sqlite3-show-failed-query": [SQLITE3, "-json", many, failed_sql.format(run=newest)],
        "uet-show-failed-large-run": [UET, "show", RUN_ID, "--failed", "--db", db],
        "uet-runs-large-run": [UET, "runs", "--db", db],
    }
    if args.interleaved:
        try:
            interleaved(timed, args.interleaved)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        return
    results = {name: runner.bench_command(name, command) for name, command in timed.items()}
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if any(result is None for result in results.values()):
        return  # a worker process: the manager prints the summary
    mean = {name: result.mean() for name, result in results.items() if result is not None}
    print()
    for name, raw in PAIRS:
        print(
            f"{name}: {mean[name] * 1000:.0f} ms; {raw}: {mean[raw] * 1000:.0f} ms; "
            f"ratio {mean[name] / mean[raw]:.1f}x; without CLI startup "
            f"{(mean[name] - mean['uet-startup']) * 1000:.0f} ms"
        )


PAIRS = (
    ("uet-show", "sqlite3-show-query"),
    ("uet-show-json", "sqlite3-show-query"),
    ("uet-events-json", "sqlite3-events-query"),
    ("uet-runs", "sqlite3-runs-query"),
    ("uet-runs-all", "sqlite3-runs-all-query"),
    ("uet-show-failed", "sqlite3-show-failed-query"),
    ("uet-show-failed-large-run", "sqlite3-show-query"),
    ("uet-runs-large-run", "sqlite3-runs-query"),
)
"""Each uet command and the raw query it is held against."""


def interleaved(timed: dict[str, list[str]], rounds: int) -> None:
    """
    Time every command once per round, rounds interleaved, and print medians.

    Each round runs all commands, starting one further along the list than
    the round before, so a slow spell of a shared machine falls on a command
    and its baseline alike; a first round is an untimed warm-up. For each
    pair: the medians, their ratio, the median of the ratio within each
    round ("paired"), and the command's median minus the CLI's start-up.
    """
    names = list(timed)
    values: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds + 1):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            subprocess.run(timed[name], stdout=subprocess.DEVNULL, check=True)
            if round_number:
                values[name].append(time.perf_counter() - start)
    median = {name: statistics.median(found) for name, found in values.items()}
    startup = median["uet-startup"]
    print(f"\n{rounds} rounds; uet-startup median {startup * 1000:.0f} ms")
    print("| command | median | baseline | baseline median | ratio | paired | minus start-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, raw in PAIRS:
        paired = statistics.median(a / b for a, b in zip(values[name], values[raw], strict=True))
        print(
            f"| {name} | {median[name] * 1000:.0f} ms | {raw} | {median[raw] * 1000:.0f} ms | "
            f"{median[name] / median[raw]:.1f}x | {paired:.1f}x | "
            f"{(median[name] - startup) * 1000:.0f} ms |"
        )


def _describe(db: str) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        runs, tasks, attempts, events = (
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("runs", "tasks", "attempts", "events")
        )
    print(
        f"store {db}: {runs} runs, {tasks} tasks, {attempts} attempts, {events} events",
        flush=True,
    )


if __name__ == "__main__":
    main()
