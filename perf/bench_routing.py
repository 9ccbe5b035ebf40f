"""
Routing decisions per second for each strategy, and what saving router state costs a run.

Decisions: `Router.choose` for a task whose kind has 10 candidate tools, with
metrics seeded so that every strategy has real work to do (tools with
different averages, success rates and load; ``fastest`` past exploration).
The baseline in the same invocation is the way the system uet-trio replaces
kept its round-robin state: the state rewritten to a JSON file on every
decision (write, fsync, rename), so every decision paid a disk write.

Persistence: a run of `--tasks` routed tasks (``fastest`` over 10 tools,
`workloads.NoopRunner`, so no process starts) into a fresh SQLite file, with
the router snapshot saved in every persister transaction as uet-trio does,
against the same run with the snapshot hook returning nothing. The
difference is the whole cost of router persistence for one run.

    python perf/bench_routing.py -o routing.json
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

import pyperf
import trio
import workloads as w

from uet_trio.deciding.routing import Router
from uet_trio.recording.events import Event, EventKind
from uet_trio.recording.records import NewRun
from uet_trio.recording.store import Store
from uet_trio.running.engine import Run, open_run
from uet_trio.workflow.spec import RoutingRule, TaskSpec, ToolSpec, WorkflowSpec

STRATEGIES = ("first", "round_robin", "least_loaded", "fastest")
TOOLS = 10
WORKERS = 8
REAL_TASKS = 200


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--tasks", str(args.tasks)])


def main() -> None:
    runner = pyperf.Runner(processes=5, values=3, warmups=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--tasks", type=int, default=5_000)
    args = runner.parse_args()
    decisions = {
        strategy: runner.bench_time_func(f"route-{strategy}-{TOOLS}-tools", _time_choose, strategy)
        for strategy in STRATEGIES
    }
    old = runner.bench_time_func("route-json-file-per-decision", _time_file_per_decision)
    spec = _routed_spec(args.tasks)
    batch_with = runner.bench_time_func("write-batch-with-router-state", _time_batch, True)
    batch_without = runner.bench_time_func("write-batch-without-router-state", _time_batch, False)
    saved = runner.bench_time_func(f"run-{args.tasks}-with-router-state", _time_run, spec, True)
    unsaved = runner.bench_time_func(
        f"run-{args.tasks}-without-router-state", _time_run, spec, False
    )
    benches = [*decisions.values(), old, batch_with, batch_without, saved, unsaved]
    if args.worker or any(bench is None for bench in benches):
        return
    assert old is not None
    assert batch_with is not None
    assert batch_without is not None
    assert saved is not None
    assert unsaved is not None
    rates = {strategy: 1 / bench.mean() for strategy, bench in decisions.items() if bench}
    old_rate = 1 / old.mean()
    print()
    for strategy, rate in rates.items():
        print(f"{strategy:>12}: {rate:,.0f} decisions/s ({rate / old_rate:,.0f}x the file write)")
    print(f"{'file write':>12}: {old_rate:,.0f} decisions/s")
    per_batch = batch_with.mean() - batch_without.mean()
    print(
        f"router state per batch that carries it: {per_batch * 1e6:+.0f} us "
        f"({batch_with.mean() / batch_without.mean():.3f}x a one-event batch)"
    )
    for label, counted, real in (
        (f"{args.tasks} in-process tasks", spec, False),
        (f"{REAL_TASKS} real `true` processes", _routed_spec(REAL_TASKS), True),
    ):
        batches, carried = _batches_per_run(counted, real)
        print(
            f"  run of {label}: {carried} of {batches} batches carried router state: "
            f"{per_batch * carried * 1000:+.1f} ms per run"
        )
    print(
        f"whole {args.tasks}-task run with / without router state: "
        f"{saved.mean() / unsaved.mean():.3f} ({(saved.mean() - unsaved.mean()) * 1000:+.0f} ms)"
    )


def _routed_spec(tasks: int, strategy: str = "fastest") -> WorkflowSpec:
    names = [f"tool{n}" for n in range(TOOLS)]
    return WorkflowSpec(
        name=f"routed-{tasks}",
        tools=[ToolSpec(name=name, command=["true"], kinds=["k"]) for name in names],
        routing=[RoutingRule(kind="k", strategy=strategy, tools=names)],
        tasks=[TaskSpec(id=f"t{i}", kind="k") for i in range(tasks)],
        max_workers=WORKERS,
    )


def _seeded_router(strategy: str) -> tuple[Router, TaskSpec]:
    """A router whose tools have history: averages 0.5..1.4 s, every 7th attempt failed."""
    spec = _routed_spec(1, strategy)
    router = Router(spec)
    for n, name in enumerate(spec.tools):
        for attempt in range(20):
            router.queued(name)
            router.started(name)
            router.finished(name, duration=0.5 + n * 0.1, ok=attempt % 7 != 0)
        for _ in range(n % 3):
            router.queued(name)
    return router, spec.tasks[0]


def _time_choose(loops: int, strategy: str) -> float:
    router, task = _seeded_router(strategy)
    choose = router.choose
    start = time.perf_counter()
    for _ in itertools.repeat(None, loops):
        choose(task)
    return time.perf_counter() - start


def _time_file_per_decision(loops: int) -> float:
    """The replaced design: each round-robin decision rewrites the state file durably."""
    path = w.scratch("routing-file") / "router.json"
    temporary = path.with_suffix(".tmp")
    tools = [f"tool{n}" for n in range(TOOLS)]
    state = {"positions": {"k": 0}}
    start = time.perf_counter()
    for _ in range(loops):
        position = state["positions"]["k"]
        tools[position % TOOLS]  # the decision itself
        state["positions"]["k"] = position + 1
        with open(temporary, "w") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    return time.perf_counter() - start


def _time_run(loops: int, spec: WorkflowSpec, save_router: bool) -> float:
    total = 0.0
    snapshot = Run._router_snapshot
    if not save_router:
        Run._router_snapshot = lambda self: None  # type: ignore[assignment,method-assign,return-value]
    try:
        for _ in range(loops):
            path = w.scratch("routing-run") / "uet.db"
            start = time.perf_counter()
            with Store.open(path) as store:
                trio.run(_run, spec, store)
            total += time.perf_counter() - start
            with Store.open(path) as store:
                (record,) = store.list_runs()
                if record.status != "succeeded":
                    raise RuntimeError(f"benchmark run ended {record.status}")
                if (store.load_router_state(spec.name) is not None) != save_router:
                    raise RuntimeError("router state saved when it should not be, or not saved")
    finally:
        Run._router_snapshot = snapshot  # type: ignore[method-assign]
    return total


async def _run(spec: WorkflowSpec, store: Store, real: bool = False) -> int:
    """Run `spec` (no processes, or real ones); return the persister's transaction count."""
    runner = None if real else w.NoopRunner()
    async with open_run(spec, store=store, runner=runner, fresh_routing=True) as run:
        pass
    statistics = run.statistics()
    assert statistics is not None
    return statistics.batches_written


def _batches_per_run(spec: WorkflowSpec, real: bool = False) -> tuple[int, int]:
    """(transactions, transactions that carried router state) of one run of `spec`."""
    carried = 0
    snapshot = Run._router_snapshot

    def counting(run: Run) -> Any:
        nonlocal carried
        state = snapshot(run)
        carried += state is not None
        return state

    Run._router_snapshot = counting  # type: ignore[method-assign]
    try:
        with Store.open(w.scratch("routing-count") / "uet.db") as store:
            return trio.run(_run, spec, store, real), carried
    finally:
        Run._router_snapshot = snapshot  # type: ignore[method-assign]


def _time_batch(loops: int, with_state: bool) -> float:
    """One-event batches, each with the router snapshot taken and saved, or without it."""
    router, _ = _seeded_router("fastest")
    store = Store.open(w.scratch("routing-batch") / "uet.db")
    store.create_run(
        NewRun(
            run_id="bench",
            workflow="bench",
            task_ids=["t0"],
            task_kinds=["k"],
        )
    )
    events = [Event("bench", seq, EventKind.TASK_READY, 0.0, "t0") for seq in range(1, loops + 1)]
    with store:
        start = time.perf_counter()
        for event in events:
            state = ("bench", router.snapshot()) if with_state else None
            store.write_batch([event], wall_start=0.0, router_state=state)
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
