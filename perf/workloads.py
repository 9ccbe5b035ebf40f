"""
Benchmark workloads: one task graph for every tool, and a runner that spawns nothing.

A workload is `tasks` tasks of `true`, either flat (no dependencies) or a
layered DAG of ten layers: task ``j`` of layer ``k`` depends on tasks ``j``
and ``j + 1`` (wrapping) of layer ``k - 1``, so every layer waits for the one
before it without a full barrier. The writers below express that one graph as
a uet workflow, a Makefile and a doit ``dodo.py``, so every tool runs the
same commands in the same order constraints.

`NoopRunner` is an `AttemptRunner` for benchmarks of the engine itself: it
starts no process and answers every attempt at once, so what is measured is
the scheduler, the channels and the persister.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyperf
import trio

from uet_trio.deciding.attempts import AttemptRequest, AttemptResult
from uet_trio.running.executors.base import Report, StatelessRunner
from uet_trio.workflow.spec import RetryPolicy, TaskSpec, WorkflowSpec

LAYERS = 10
SHAPES = ("flat", "dag")
UET = str(Path(sys.executable).with_name("uet"))
DOIT = str(Path(sys.executable).with_name("doit"))


def graph(tasks: int, shape: str) -> list[tuple[str, list[str]]]:
    """(task name, dependencies) in declaration order for a workload."""
    if shape == "flat":
        return [(f"t{i}", []) for i in range(tasks)]
    if shape != "dag" or tasks % LAYERS:
        raise ValueError(f"unknown shape {shape!r} or {tasks} tasks not divisible by {LAYERS}")
    width = tasks // LAYERS
    nodes = []
    for layer in range(LAYERS):
        for j in range(width):
            deps = []
            if layer:
                deps = sorted({f"l{layer - 1}_{j}", f"l{layer - 1}_{(j + 1) % width}"})
            nodes.append((f"l{layer}_{j}", deps))
    return nodes


def write_uet_flow(path: Path, tasks: int, shape: str, workers: int, command: str = "true") -> Path:
    """A uet workflow file of the workload; `command` is run with no arguments."""
    lines = ["[workflow]", f'name = "{shape}-{tasks}"', f"max_workers = {workers}", ""]
    for name, deps in graph(tasks, shape):
        lines += ["[[tasks]]", f'id = "{name}"', f'command = ["{command}"]']
        if deps:
            lines.append("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def write_makefile(path: Path, tasks: int, shape: str) -> Path:
    """A Makefile whose phony targets run ``true`` in the workload's order."""
    nodes = graph(tasks, shape)
    names = " ".join(name for name, _ in nodes)
    lines = [f".PHONY: all {names}", f"all: {names}"]
    for name, deps in nodes:
        lines += [f"{name}: {' '.join(deps)}".rstrip(), "\t@true"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_dodo(path: Path, tasks: int, shape: str) -> Path:
    """A doit ``dodo.py`` with one always-run task per node and task_dep edges."""
    nodes = graph(tasks, shape)
    path.write_text(
        f"NODES = {nodes!r}\n\n\n"
        "def task_bench():\n"
        "    for name, deps in NODES:\n"
        "        yield {'name': name, 'actions': ['true'], 'uptodate': [False],\n"
        "               'task_dep': ['bench:' + d for d in deps], 'verbosity': 0}\n"
    )
    return path


def fresh_dir(path: Path) -> Path:
    """Empty `path` (the database, logs and tool state of the previous value)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def time_command(
    loops: int,
    argv: Sequence[str],
    cwd: Path,
    reset: Callable[[], object] | None = None,
    stdin: Path | None = None,
) -> float:
    """
    Seconds `argv` took over `loops` runs, each from a clean state.

    `reset` runs before each run and is not timed; `stdin` names a file fed
    to the command. A failed run raises, so a broken tool never yields a number.
    """
    total = 0.0
    for _ in range(loops):
        if reset is not None:
            reset()
        with open(stdin or os.devnull, "rb") as source:
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, check=True, stdin=source, stdout=subprocess.DEVNULL)
            total += time.perf_counter() - start
    return total


def noop_spec(tasks: int, workers: int, failures: int = 0) -> WorkflowSpec:
    """
    A flat workflow of `tasks` tasks for `NoopRunner`.

    With `failures` > 0 every task fails that many attempts first and is
    retried at once, which multiplies the events per task. The retry policy
    is the workflow's default, so the tasks themselves are the same either way.
    """
    return WorkflowSpec(
        name=f"noop-{tasks}",
        tasks=[TaskSpec(id=f"t{i}", command=["true"]) for i in range(tasks)],
        max_workers=workers,
        retry=RetryPolicy(retries=failures, initial=0.0) if failures else None,
    )


class NoopRunner(StatelessRunner):
    """
    An attempt runner that starts nothing: each attempt ends at once.

    Attempts numbered up to `failures` exit 1, later ones 0. One checkpoint
    per attempt keeps workers taking turns as real ones do.
    """

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    async def settle(self) -> None:
        await trio.lowlevel.checkpoint()

    async def run(self, request: AttemptRequest, report: Report) -> AttemptResult:
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        return AttemptResult(
            index=request.index,
            attempt=request.attempt,
            started=now,
            ended=now,
            exit_code=1 if request.attempt <= self.failures else 0,
        )


def scratch(name: str) -> Path:
    """An empty scratch directory under $TMPDIR, removed when the process exits."""
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"uet-perf-{os.getpid()}"
    if not root.exists():
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    return fresh_dir(root / name)


def whole_run_runner(default_tasks: int) -> tuple[pyperf.Runner, Any]:
    """
    A pyperf runner whose every value is one whole run of ``--tasks`` tasks.

    3 processes x 1 value, no warm-up; ``--tasks`` is passed on to the worker
    processes. Returns the runner and its parsed arguments.
    """

    def add_args(cmd: list[str], args: Any) -> None:
        cmd.extend(["--tasks", str(args.tasks)])

    runner = pyperf.Runner(processes=3, values=1, warmups=0, loops=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--tasks", type=int, default=default_tasks)
    return runner, runner.parse_args()
