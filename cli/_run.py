"""
``uet run`` and ``uet resume``: execute a workflow with signals handled.

SIGHUP, SIGINT and SIGTERM are received with `trio.open_signal_receiver` for
the whole run, including the final flush (a signal arriving before the
receiver is closed is handled, not fatal). The first signal cancels the run:
processes get SIGTERM, then SIGKILL after the grace period, and every event
is flushed. A second signal skips the rest of the grace period. SIGHUP is
how a closed terminal says so: the tasks run in sessions of their own and
never see it, so uet must stop them itself. Exit codes: 0 all tasks
succeeded, 1 a task failed, 129 SIGHUP, 130 SIGINT, 143 SIGTERM.

Everything is printed through `echo` (or the progress line, which does the
same): when stdout or stderr goes away (a pipe whose reader closed, a
terminal that hung up, a stream closed at start), the run goes on to its end
with that output dropped, and the exit code is still the run's own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shlex
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._common import (
    Program,
    colour,
    colour_option,
    echo,
    flow_store,
    json_text,
    label,
    locate_store,
    open_store,
    plural,
    resolve_run,
    seconds,
    store_hint,
    visible,
)
from ._failures import FailureTails
from ._progress import ProgressLine

if TYPE_CHECKING:
    import trio

    from uet_trio import (
        DaskRunner,
        Event,
        EventKind,
        LocalRunner,
        Run,
        RunResult,
        Store,
        TaskGraph,
        WorkflowSpec,
    )

EXIT_FOR_SIGNAL = {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGTERM: 143}
FAILED_LISTED = 20
"""Failed tasks named again in the summary, at most (``uet show --failed`` lists all)."""


def _run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--workers", "-j", type=click.IntRange(min=1), help="Worker tasks (default: CPUs)."
        ),
        click.option(
            "--kill-grace",
            type=click.FloatRange(min=0),
            help="Seconds between SIGTERM and SIGKILL when stopping a task.",
        ),
        click.option("--force", is_flag=True, help="Resume even if the workflow file changed."),
        click.option(
            "--dask",
            metavar="ADDRESS",
            envvar="UET_DASK",
            help="Run attempts on a Dask cluster: tcp://HOST:PORT, or local[:N] (started "
            "for the run). Default: the workflow's dask, else this machine.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="Print only the summary."),
        click.option("--verbose", "-v", is_flag=True, help="Print every event."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end."),
        click.option(
            "--tail",
            default=20,
            show_default=True,
            type=click.IntRange(min=0),
            help="Lines of stdout and of stderr shown under a failed task (0: none).",
        ),
        click.option(
            "--db",
            envvar="UET_DB",
            type=click.Path(dir_okay=False),
            help="The store (env: UET_DB). Default: for run, .uet/uet.db in the workflow "
            "file's directory; for resume, the nearest .uet/uet.db from here up.",
        ),
        colour_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.argument("targets", nargs=-1)
@click.option(
    "--dry-run",
    "-n",
    is_flag=True,
    help="Print each task that would run, with the first reason, and those up to date; "
    "run nothing, write nothing.",
)
@click.option(
    "--always-make", "-B", is_flag=True, help="Run every task, even those that are up to date."
)
@click.option(
    "--fail-fast", is_flag=True, default=None, help="Cancel the run at the first failure."
)
@click.option(
    "--retry-failed",
    metavar="[RUN]",
    is_flag=False,
    flag_value="",
    help="Re-run the failed and skipped tasks of RUN (default: the workflow's latest run).",
)
@click.option("--last", is_flag=True, help="With --retry-failed: the workflow's latest run.")
@click.option("--fresh-routing", is_flag=True, help="Ignore router state saved by earlier runs.")
@click.option(
    "--order",
    type=click.Choice(["critical", "declared"]),
    default="critical",
    show_default=True,
    help="Among ready tasks of equal priority: longest remaining path first, or file order.",
)
@_run_options
@click.pass_context
def run(
    ctx: click.Context,
    /,
    flow: str,
    targets: tuple[str, ...],
    dry_run: bool,
    always_make: bool,
    fail_fast: bool | None,
    retry_failed: str | None,
    last: bool,
    fresh_routing: bool,
    order: str,
    **options: Any,
) -> None:
    """
    Run the workflow in FLOW (TOML or JSON), or only TARGETS and what they need.

    A target is a task id, an instance id, a fanned-out task's id, a glob over
    ids ('compile[*]': only * and ? are wildcards) or a declared output path.
    Tasks that declare outputs and are up to date are not run.
    """
    from uet_trio import RunStatus, WorkflowError, compile_graph, open_workflow, select_targets

    if last and retry_failed is None:
        raise click.UsageError("--last goes with --retry-failed")
    if last and retry_failed:
        raise click.UsageError("give --retry-failed RUN or --retry-failed --last, not both")
    options["db"] = options["db"] or flow_store(flow)
    with _interrupt_exits(ctx):
        spec, graph = open_workflow(flow)
        if targets:
            try:
                spec = select_targets(spec, graph, targets)
            except WorkflowError as error:
                raise error.in_file(flow) from None
            graph = compile_graph(spec)
        if dry_run:
            ctx.exit(_dry_run(spec, graph, options["db"], always_make=always_make))
        # Checked before any task starts: a damaged file is refused, not written to.
        store = open_store(options["db"], check=True, writes=True)
        with store:
            resume = None
            if retry_failed is not None:
                resume = store.resolve_run(retry_failed) if retry_failed else None
                resume = resume or store.last_run_of(spec.name)
            if resume is not None and store.get_run(resume).status is RunStatus.SUCCEEDED:
                echo(f"run {resume} already succeeded; nothing to retry")
                ctx.exit(0)
            ctx.exit(
                _execute(
                    spec,
                    graph,
                    store,
                    resume=resume,
                    fail_fast=fail_fast,
                    fresh_routing=fresh_routing,
                    order=order,
                    always_make=always_make,
                    adopt_orphans=Program.of(ctx).adopt_orphans,
                    **options,
                )
            )


def _dry_run(spec: WorkflowSpec, graph: TaskGraph, db: str, *, always_make: bool) -> int:
    """Print what a run would do with each task; open the store only to read it."""
    import trio

    from uet_trio import Store, dry_run

    store = Store.open(db, readonly=True) if Path(db).exists() else Store.memory()
    with store:
        planned = trio.run(functools.partial(dry_run, always_make=always_make), spec, graph, store)
    for task in planned:
        if task.runs:
            echo(f"  {label('run', 'yellow')} {task.task_id}  {task.reason}")
        else:
            echo(f"  {label('current', 'green')} {task.task_id}  up to date")
    runs = sum(task.runs for task in planned)
    echo(f"{runs} would run, {len(planned) - runs} up to date (dry run: nothing ran)")
    return 0


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="Resume the most recent run.")
@_run_options
@click.pass_context
def resume(ctx: click.Context, /, run: str | None, last: bool, **options: Any) -> None:
    """Finish RUN (an id or unique prefix): keep what succeeded, run the rest."""
    from uet_trio import RunConflict, RunStatus, open_workflow

    # Given, the store is taken as it is; else it is the nearest one up from here.
    options["db"] = options["db"] or locate_store(None)
    with _interrupt_exits(ctx), open_store(options["db"], check=True, writes=True) as store:
        run_id = resolve_run(store, run, last)
        record = store.get_run(run_id)
        if record.status is RunStatus.SUCCEEDED:
            echo(f"run {run_id} already succeeded; nothing to resume")
            ctx.exit(0)
        if record.source is None:
            raise RunConflict(f"run {run_id} was not started from a file; resume it in Python")
        spec, graph = open_workflow(record.source)
        ctx.exit(
            _execute(
                spec,
                graph,
                store,
                resume=run_id,
                adopt_orphans=Program.of(ctx).adopt_orphans,
                **options,
            )
        )


@contextlib.contextmanager
def _interrupt_exits(ctx: click.Context) -> Iterator[None]:
    """
    Exit 130 on a Ctrl-C that arrives while no signal receiver is open (while
    the workflow loads, or as the run's receiver closes), instead of click's
    "Aborted!" with status 1.
    """
    try:
        yield
    except KeyboardInterrupt:
        echo("uet: interrupted", err=True)
        ctx.exit(EXIT_FOR_SIGNAL[signal.SIGINT])


def _execute(
    spec: WorkflowSpec,
    graph: TaskGraph,
    store: Store,
    *,
    db: str,
    workers: int | None,
    kill_grace: float | None,
    force: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
    tail: int,
    resume: str | None,
    adopt_orphans: bool,
    dask: str | None = None,
    fail_fast: bool | None = None,
    fresh_routing: bool = False,
    order: str = "critical",
    always_make: bool = False,
) -> int:
    import trio

    from uet_trio import RunStatus, UetError

    reporter = _Reporter(quiet=quiet or as_json, verbose=verbose, tail=tail)
    options = {
        "graph": graph,
        "max_workers": workers,
        "kill_grace": kill_grace,
        "fail_fast": fail_fast,
        "resume": resume,
        "force": force,
        "fresh_routing": fresh_routing,
        "order": order,
        "always_make": always_make,
    }
    try:
        result, signum = trio.run(
            _drive, spec, store, options, reporter, adopt_orphans, dask or spec.dask
        )
    except BaseExceptionGroup as group:
        errors, _ = group.split(UetError)
        if errors is None:
            raise
        raise _leaves(errors)[0] from group
    if result is None:
        assert signum is not None
        echo("uet: interrupted before the run started", err=True)
        return EXIT_FOR_SIGNAL[signum]
    if as_json:
        echo(
            json_text(
                {
                    "run_id": result.run_id,
                    "status": result.status.value,
                    "wall": result.wall,
                    "tasks": [
                        {"task_id": task, "state": state.value}
                        for task, state in result.states.items()
                    ],
                    "db": db,
                }
            )
        )
    else:
        reporter.summary(result, db)
    if signum is not None:
        return EXIT_FOR_SIGNAL[signum]
    return 0 if result.status is RunStatus.SUCCEEDED else 1


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        else:
            found.append(error)
    return found


async def _drive(
    spec: WorkflowSpec,
    store: Store,
    options: dict[str, Any],
    reporter: _Reporter,
    adopt_orphans: bool,
    dask: str | None,
) -> tuple[RunResult | None, signal.Signals | None]:
    """
    Run the workflow with SIGHUP/SIGINT/SIGTERM handled; the result is None when a
    signal came before the run began (while it was being prepared).

    With `adopt_orphans` (the ``uet`` program, which owns its process), this
    process becomes a child subreaper, so the tasks' daemons that called
    setsid are re-parented to it and stopped with their attempt. With
    `dask`, attempts run on that Dask cluster (`open_dask_runner`), and the
    run's workers default to four per thread of the cluster (`DaskRunner.workers`).
    """
    import trio

    from uet_trio import LocalRunner, become_subreaper, open_run

    if adopt_orphans:
        become_subreaper()
    runner: LocalRunner | DaskRunner = LocalRunner()
    received: list[signal.Signals] = []
    active: Run | None = None
    with trio.open_signal_receiver(*EXIT_FOR_SIGNAL) as signals:
        async with trio.open_nursery() as nursery:
            run_scope = trio.CancelScope()

            async def watch() -> None:
                async for signum in signals:
                    if received:
                        runner.kill_now()
                    else:
                        received.append(signal.Signals(signum))
                        run_scope.cancel()

            nursery.start_soon(watch)
            with run_scope:
                async with (
                    _open_runner(dask, spec, options) as runner,
                    open_run(spec, store=store, runner=runner, **options) as active,
                ):
                    reporter.started(active.run_id, len(spec.tasks))
                    if reporter.progress is not None:
                        nursery.start_soon(reporter.progress.animate)
                    # Quiet prints only the summary, which needs no events:
                    # not subscribing spares the run a channel hop per event.
                    # Leaving the block waits for the run either way.
                    if not reporter.quiet:
                        # Closed on the way out, so that after a signal the run's
                        # final events never wait for a reader that has stopped.
                        with active.events(kinds=reporter.kinds()) as events:
                            async for event in events:
                                reporter.event(event)
                                # What else has arrived is printed before the
                                # run's task gets the loop back: one pass of
                                # the loop per burst of events, not per event.
                                for later in _arrived(events):
                                    reporter.event(later)
            nursery.cancel_scope.cancel()
    result = active.result if active is not None else None
    return result, received[0] if received else None


def _arrived(events: trio.MemoryReceiveChannel[Event]) -> Iterator[Event]:
    """The events already waiting in `events`, taken without a checkpoint."""
    import trio

    while True:
        try:
            yield events.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return


@contextlib.asynccontextmanager
async def _open_runner(
    dask: str | None, spec: WorkflowSpec, options: dict[str, Any]
) -> AsyncIterator[LocalRunner | DaskRunner]:
    """
    The run's executor: this machine, or the Dask cluster `dask` for the block.

    On Dask the run's workers default to `DaskRunner.workers` (set in `options`).
    """
    if dask is None:
        from uet_trio import LocalRunner

        yield LocalRunner()
        return
    # Imported only for a run on Dask: every other run would pay for it.
    from uet_trio import open_dask_runner

    async with open_dask_runner(dask) as runner:
        # What matters (a lost scheduler or worker) is reported by the run;
        # Dask's own reconnection tracebacks would bury it.
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name.startswith("distributed"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        options["max_workers"] = options["max_workers"] or spec.max_workers or runner.workers
        yield runner


class _Reporter:
    """Prints one line per finished task (or every event with --verbose)."""

    def __init__(self, *, quiet: bool, verbose: bool, tail: int = 0) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.tails = FailureTails(tail)
        self.durations: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.started_at = time.monotonic()
        # The live status line: on a terminal only, and not with --quiet or --verbose.
        self.progress = ProgressLine.for_stdout() if not (quiet or verbose) else None
        self._echo = self.progress.echo if self.progress is not None else echo

    def kinds(self) -> frozenset[EventKind] | None:
        """
        The kinds of event this reporter reads (None: all): with --verbose
        or the progress line every event counts; otherwise those of the
        lines it prints and of the failures' output tails. A run then hands
        it none of the rest, such as a no-op's ``task_up_to_date`` events.
        """
        from uet_trio import EventKind

        if self.verbose or self.progress is not None:
            return None
        return frozenset(
            {
                EventKind.ATTEMPT_STARTED,
                EventKind.ATTEMPT_SPAWNED,
                EventKind.ATTEMPT_FINISHED,
                EventKind.TASK_SUCCEEDED,
                EventKind.TASK_FAILED,
                EventKind.TASK_SKIPPED,
                EventKind.TASK_RETRY_WAIT,
                EventKind.TASK_CANCELLED,
            }
        )

    def started(self, run_id: str, tasks: int) -> None:
        if not self.quiet:
            self._echo(f"run {run_id}: {plural(tasks, 'task')}")
        if self.progress is not None:
            self.progress.start(tasks)

    def event(self, event: Event) -> None:
        from uet_trio import DataField, EventKind

        kind = event.kind
        if kind is EventKind.ATTEMPT_FINISHED and event.task_id is not None:
            self.durations[event.task_id] = event.data.get(DataField.DURATION) or 0.0
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.event(event)
        self.tails.event(event)
        if self.verbose:
            details = " ".join(f"{k}={v}" for k, v in event.data.items() if v is not None)
            task = f" {event.task_id}" if event.task_id else ""
            attempt = f"#{event.attempt}" if event.attempt else ""
            echo(visible(f"{event.time:9.3f} {event.seq:>6} {kind.value}{task}{attempt} {details}"))
            return
        task = visible(event.task_id or "")
        if kind is EventKind.TASK_SUCCEEDED:
            took = seconds(self.durations.get(event.task_id or ""))
            self._echo(f"  {label('ok', 'green')} {task}  {took}")
        elif kind is EventKind.TASK_FAILED:
            data = event.data
            if data.get(DataField.TIMED_OUT):
                why = "timed out"
            elif data.get(DataField.ERROR):
                why = str(data[DataField.ERROR])
            elif data.get(DataField.SIGNAL):
                why = f"killed by signal {data[DataField.SIGNAL]}"
            else:
                why = f"exit {data.get(DataField.EXIT_CODE)}"
            attempts = event.attempt
            suffix = f" after {attempts} attempts" if attempts and attempts > 1 else ""
            self._echo(f"  {label('FAILED', 'red')} {task}  {visible(why)}{suffix}")
            for line in self.tails.lines(event.task_id or ""):
                self._echo(line)
        elif kind is EventKind.TASK_SKIPPED:
            upstream = event.data[DataField.UPSTREAM]
            self._echo(f"  {label('skipped', 'yellow')} {task}  (upstream {upstream} failed)")
        elif kind is EventKind.TASK_RETRY_WAIT:
            self._echo(
                f"  {label('retry', 'yellow')} {task}  attempt {event.attempt} failed; "
                f"retrying in {seconds(event.data[DataField.DELAY])}"
            )

    def summary(self, result: RunResult, db: str) -> None:
        from uet_trio import RunStatus, TaskState

        counts = ", ".join(
            f"{result.count(state)} {state.value.replace('_', ' ')}"
            for state in TaskState
            if result.count(state) or state is TaskState.SUCCEEDED
        )
        status = result.status
        shade = {RunStatus.SUCCEEDED: "green", RunStatus.FAILED: "red"}.get(status, "yellow")
        echo(
            f"run {result.run_id} {colour(status.value, shade)} in "
            f"{seconds(time.monotonic() - self.started_at)}: {counts}"
        )
        if status is not RunStatus.SUCCEEDED:
            where = store_hint(db)
            failed = [task for task, state in result.states.items() if state is TaskState.FAILED]
            for task in failed[:FAILED_LISTED]:
                echo(
                    f"  {colour('failed', 'red')} {visible(task)}: "
                    f"uet logs {result.run_id} {shlex.quote(visible(task))}{where} [--stderr]"
                )
            if len(failed) > FAILED_LISTED:
                more = plural(len(failed) - FAILED_LISTED, "more failed task")
                echo(f"  ... and {more}")
            echo(f"  details: uet show {result.run_id}{where} --failed")


COMMANDS = [run, resume]
