"""
Preparing a run before its task tree starts: options, routing, order, rows.

`prepare` settles everything a run needs from the store and the caller's
options (the router's saved state, recorded durations for the dispatch
order, the run's rows, or the records of a run being resumed) and returns a
`Scheduler` ready to start. Its writes come last: a cancellation (Ctrl-C)
before them leaves no trace, and one during them is seen only after the
write (a worker thread is not abandoned), so the run then starts cancelled
and is recorded ``cancelled`` rather than left ``pending``.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import attrs
import trio

from ..deciding.priority import CRITICAL, ORDERS, ready_order
from ..deciding.routing import Router
from ..deciding.scheduler import Scheduler
from ..errors import RunConflict, WorkflowError
from ..recording.logs import default_log_root, run_log_dir
from ..recording.records import AttemptRecord, NewRun
from ..recording.states import AttemptStatus
from ..recording.store import Store
from ..workflow.graph import TaskGraph
from ..workflow.spec import WorkflowSpec
from .executors.base import AttemptRunner
from .executors.procfs import process_alive, process_start_time
from .freshness import Freshness
from .persister import DEFAULT_FLUSH_DEADLINE

T = TypeVar("T")


def new_run_id() -> str:
    """
    A short run id that sorts by creation time: UTC timestamp plus a random suffix.

    The timestamp has milliseconds, so runs started one after another within
    a second still sort in order (20261127-083828.123-af0c).
    """
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now % 1 * 1000):03d}-{secrets.token_hex(2)}"


class RunOptions(TypedDict, total=False):
    """What a caller may set for one run beyond the workflow itself (see `open_run`)."""

    max_workers: int | None
    log_root: Path | str | None
    run_id: str | None
    fail_fast: bool | None
    kill_grace: float | None
    seed: int | None
    resume: str | None
    force: bool
    fresh_routing: bool
    order: str
    expected_durations: Mapping[str, Sequence[float]] | None
    short_switch_interval: bool
    always_make: bool
    check_outputs: bool


@attrs.frozen(kw_only=True)
class RunSettings:
    """A run's options resolved against the workflow and the store: what the engine uses."""

    max_workers: int
    fail_fast: bool
    kill_grace: float
    log_dir: Path | None
    seed: int
    flush_deadline: float = DEFAULT_FLUSH_DEADLINE
    short_switch_interval: bool = False


@attrs.frozen(kw_only=True)
class Prepared:
    """A run ready to start: its scheduler and what the engine needs besides."""

    scheduler: Scheduler
    settings: RunSettings
    last_seq: int = 0
    """The last event number already recorded (a resumed run numbers on from it)."""
    lost: Sequence[AttemptRecord] = ()
    """Attempts a dead runner left recorded as running (resume only)."""
    freshness: Freshness | None = None
    """The run's up-to-date checks (None when no task declares outputs)."""


def worker_count(spec: WorkflowSpec, requested: int | None = None) -> int:
    """How many attempts a run has going at once: as asked, else the workflow's, else the CPUs."""
    return requested or spec.max_workers or os.cpu_count() or 1


async def prepare(
    spec: WorkflowSpec, graph: TaskGraph, store: Store, options: RunOptions
) -> Prepared:
    """
    Resolve a run's options and create (or take over) its rows; see `open_run`.

    Raises:
        TypeError: an option that `RunOptions` does not name.
    """
    unknown = options.keys() - RunOptions.__annotations__.keys()
    if unknown:
        raise TypeError(f"unknown run option(s): {', '.join(sorted(unknown))}")
    workers = worker_count(spec, options.get("max_workers"))
    if workers < 1:
        raise WorkflowError(f"max_workers must be positive, got {workers}", field="max_workers")
    order = options.get("order", CRITICAL)
    if order not in ORDERS:
        raise WorkflowError(
            f"unknown order {order!r} (choose from {', '.join(ORDERS)})", field="order"
        )
    resume = options.get("resume")
    run_id = options.get("run_id")
    fail_fast = options.get("fail_fast")
    kill_grace = options.get("kill_grace")
    seed = options.get("seed")
    given_root = options.get("log_root")
    log_root = Path(given_root) if given_root is not None else default_log_root(store.path)
    the_id = resume or run_id or new_run_id()
    settings = RunSettings(
        max_workers=workers,
        fail_fast=spec.fail_fast if fail_fast is None else fail_fast,
        kill_grace=spec.kill_grace if kill_grace is None else kill_grace,
        log_dir=run_log_dir(log_root, the_id) if log_root is not None else None,
        seed=seed if seed is not None else _seed_from(the_id),
        short_switch_interval=options.get("short_switch_interval", False),
    )
    rng = random.Random(settings.seed)
    router = Router(spec, rng=rng)
    if not options.get("fresh_routing", False):
        saved = await _in_thread(store.load_router_state, spec.name)
        if saved is not None:
            router.restore(saved)
    durations: Mapping[str, Sequence[float]] = {}
    expected_durations = options.get("expected_durations")
    if expected_durations is not None:
        durations = expected_durations
    elif order == CRITICAL:
        durations = await _in_thread(store.recent_durations, spec.name)
    scheduler = Scheduler(
        spec,
        graph,
        run_id=the_id,
        order=ready_order(graph, [task.priority for task in spec.tasks], durations, order),
        router=router,
        rng=rng,
        environ=dict(os.environ),
        workers=workers,
        fail_fast=settings.fail_fast,
        kill_grace=settings.kill_grace,
        always_make=options.get("always_make", False),
        check_outputs=options.get("check_outputs", True),
    )
    freshness = None
    if options.get("check_outputs", True) and any(task.outputs for task in spec.tasks):
        freshness = await _in_thread(open_freshness, spec, store)
    if resume is None:
        await _in_thread(store.create_run, _new_run_record(spec, graph, the_id, settings))
        return Prepared(scheduler=scheduler, settings=settings, freshness=freshness)
    prepared = await _in_thread(_take_over, store, scheduler, settings, options.get("force", False))
    return attrs.evolve(prepared, freshness=freshness)


def open_freshness(spec: WorkflowSpec, store: Store) -> Freshness:
    """The up-to-date checks of a run of `spec`, from what `store` recorded."""
    base_dir = str(spec.base_dir)
    return Freshness(spec.base_dir, store.signatures(base_dir), store.file_states())


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await trio.to_thread.run_sync(fn, *args)


def _new_run_record(
    spec: WorkflowSpec, graph: TaskGraph, run_id: str, settings: RunSettings
) -> NewRun:
    return NewRun(
        run_id=run_id,
        workflow=spec.name,
        source=spec.source,
        base_dir=str(spec.base_dir),
        spec_hash=spec.fingerprint(),
        max_workers=settings.max_workers,
        log_dir=str(settings.log_dir) if settings.log_dir else "",
        owner_pid=os.getpid(),
        owner_start=process_start_time(os.getpid()),
        task_ids=graph.ids,
        task_kinds=[task.kind for task in spec.tasks],
    )


def _take_over(store: Store, scheduler: Scheduler, settings: RunSettings, force: bool) -> Prepared:
    """Claim a recorded run, keep its succeeded tasks, note attempts a dead runner left running."""
    run_id = scheduler.run_id
    record = store.get_run(run_id)
    if record.spec_hash != scheduler.spec.fingerprint() and not force:
        raise RunConflict(
            f"run {run_id} was started from a different version of workflow "
            f"{record.workflow!r}; resume with --force to run it with this one"
        )
    store.claim_run(
        run_id,
        owner_pid=os.getpid(),
        owner_start=process_start_time(os.getpid()),
        owner_alive=process_alive,
    )
    scheduler.resume(store.tasks(run_id))
    lost = [a for a in store.attempts(run_id) if a.status == AttemptStatus.RUNNING]
    return Prepared(scheduler=scheduler, settings=settings, last_seq=record.last_seq, lost=lost)


async def reclaim_lost(
    runner: AttemptRunner, lost: Sequence[AttemptRecord]
) -> list[tuple[str, int, bool]]:
    """Have the executor stop each lost attempt's remains: (task id, attempt, stopped)."""
    return [(a.task_id, a.attempt, await runner.reclaim(a)) for a in lost]


def _seed_from(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")
