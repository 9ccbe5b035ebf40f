"""
Scale: a 100,000-task workflow, a thousand real processes, memory that stays flat.

Speed is not asserted here (see docs/hardening.md for measured numbers);
these tests check that large inputs work end to end and that a long run
leaves nothing behind: no zombie, no file descriptor, no thread, and no
Python objects piling up as events flow.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from uet_trio_cli import main

from uet_trio import Store
from uet_trio.deciding.attempts import AttemptRequest, AttemptResult
from uet_trio.recording.events import Event
from uet_trio.recording.states import RunStatus
from uet_trio.running.engine import SUBSCRIBER_BUFFER, run_workflow
from uet_trio.running.executors.base import Report, StatelessRunner
from uet_trio.running.persister import DEFAULT_CAPACITY, DEFAULT_MAX_BATCH
from uet_trio.workflow.spec import TaskSpec, WorkflowSpec

from .procs import stat_fields

HUGE = 100_000


@pytest.fixture(scope="module")
def huge_flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100,000 tasks routed to one tool: chains of ten, so ten levels."""
    tasks = [
        {
            "id": f"t{i}",
            "kind": "echo",
            "params": {"n": str(i)},
            **({"depends_on": [f"t{i - 1}"]} if i % 10 else {}),
        }
        for i in range(HUGE)
    ]
    document = {
        "workflow": {"name": "huge"},
        "tools": {"echoer": {"command": ["echo", "{n}"], "kinds": ["echo"]}},
        "tasks": tasks,
    }
    path = tmp_path_factory.mktemp("huge") / "huge.json"
    path.write_text(json.dumps(document))
    return path


class TestHugeWorkflow:
    def test_validate_and_plan_a_100k_task_workflow(self, huge_flow: Path) -> None:
        """`uet validate` and `uet plan` handle 100,000 tasks and show every one of them."""
        runner = CliRunner()
        validated = runner.invoke(main, ["validate", str(huge_flow)])
        assert validated.exit_code == 0, validated.output
        assert f"{HUGE} tasks in 10 levels" in validated.output
        planned = runner.invoke(main, ["plan", str(huge_flow)])
        assert planned.exit_code == 0, planned.output
        lines = planned.output.splitlines()
        assert f"{HUGE} tasks in 10 levels" in lines[0]
        shown = [line.split()[0] for line in lines if line.startswith("  t")]
        assert sorted(shown) == sorted(f"t{i}" for i in range(HUGE))
        assert lines[-1].split()[0] == f"t{HUGE - 1}"
        assert lines[-1].endswith(f"echo {HUGE - 1}")


def _children(pid: int) -> list[int]:
    """Live or zombie child processes of `pid`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _threads() -> set[str]:
    """Running threads other than Trio's idle worker-thread cache (which expires on its own)."""
    return {
        thread.name for thread in threading.enumerate() if not thread.name.startswith("Trio thread")
    }


class TestThousandProcesses:
    async def test_no_zombie_no_fd_no_thread_left(self, tmp_path: Path) -> None:
        """1,000 real processes in one run: afterwards the same fds, threads and no children."""
        spec = WorkflowSpec(
            name="thousand",
            tasks=[TaskSpec(id=f"p{i}", command=("true",)) for i in range(1000)],
            max_workers=8,
            base_dir=tmp_path,
        )
        with Store.open(tmp_path / "uet.db") as store:
            fds_before = sorted(os.listdir("/proc/self/fd"))
            threads_before = _threads()
            result = await run_workflow(spec, store=store)
            assert result.status is RunStatus.SUCCEEDED
            assert result.count(result.states["p0"]) == 1000
            assert sorted(os.listdir("/proc/self/fd")) == fds_before
            assert _threads() == threads_before
            assert _children(os.getpid()) == []
            assert store.task_counts(result.run_id) == {"succeeded": 1000}


class InstantRunner(StatelessRunner):
    """An in-process runner whose attempts end at once; counts live events on the way."""

    def __init__(self, sample_at: tuple[int, ...]) -> None:
        self.sample_at = sample_at
        self.calls = 0
        self.live_events: list[int] = []

    async def settle(self) -> None:
        await trio.lowlevel.checkpoint()

    async def run(self, request: AttemptRequest, report: Report) -> AttemptResult:
        self.calls += 1
        if self.calls in self.sample_at:
            gc.collect()
            self.live_events.append(sum(isinstance(o, Event) for o in gc.get_objects()))
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        return AttemptResult(
            index=request.index, attempt=request.attempt, started=now, ended=now, exit_code=0
        )


class TestFlatMemory:
    async def test_events_in_memory_stay_within_the_channel_bounds(self, tmp_path: Path) -> None:
        """However many events a run has sent, only the bounded channels hold any in memory."""
        tasks = 6_000
        spec = WorkflowSpec(
            name="flat",
            tasks=[TaskSpec(id=f"t{i}", command=("true",)) for i in range(tasks)],
            max_workers=4,
            base_dir=tmp_path,
        )
        runner = InstantRunner(sample_at=(1_000, 3_000, 5_900))
        with Store.open(tmp_path / "uet.db") as store:
            result = await run_workflow(spec, store=store, runner=runner)
            assert result.status is RunStatus.SUCCEEDED
            sent = store.get_run(result.run_id).last_seq
        # Four events per task (ready, started, finished, succeeded): by the
        # last sample more than 20,000 had been sent.
        assert sent >= 4 * tasks
        # Queued for the persister, in the batch it is writing, or in a subscriber's buffer.
        bound = DEFAULT_CAPACITY + DEFAULT_MAX_BATCH + SUBSCRIBER_BUFFER
        assert len(runner.live_events) == 3
        assert max(runner.live_events) <= bound, runner.live_events
