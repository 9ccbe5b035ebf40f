"""
The embedding API: workflows built in Python, callables as tasks, `run_workflow`
and `open_run` inside a Trio program, in-memory and file stores, cancellation
from the enclosing scope, and the library's manners (no printing, no signal
handlers). Real processes, a real SQLite file, the real clock for processes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

import uet_trio
import uet_trio.testing
from uet_trio import (
    EventKind,
    RetryPolicy,
    RunStatus,
    Store,
    TaskSpec,
    TaskState,
    ToolSpec,
    WorkflowError,
    WorkflowSpec,
    load_workflow,
    open_run,
    run_workflow,
)
from uet_trio.testing import FakeRunner, Outcome, simulate, simulate_async

from .procs import alive

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "embed.py"
WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT)


async def double(value: int) -> int:
    await trio.lowlevel.checkpoint()
    return 2 * value


async def returns_unstorable() -> object:
    await trio.lowlevel.checkpoint()
    return object()


async def returns_nan() -> object:
    await trio.lowlevel.checkpoint()
    return {"score": float("nan")}


async def raises() -> None:
    await trio.lowlevel.checkpoint()
    raise RuntimeError("no luck")


async def sleeps_long() -> None:
    await trio.sleep(100)


async def wait_for_text(path: Path) -> None:
    """Poll (real clock, generous bound) until `path` holds some text."""
    for _ in range(3000):
        if path.exists() and path.read_text().strip():
            return
        await trio.sleep(0.01)
    raise AssertionError(f"{path} was never written")


async def dies_within(pid: int, *, seconds: float) -> bool:
    """Whether `pid` is gone (or a zombie) within `seconds` of real time."""
    for _ in range(int(seconds / 0.01)):
        if not alive(pid):
            return True
        await trio.sleep(0.01)
    return not alive(pid)


class TestPublicFace:
    def test_testing_helpers_are_public(self) -> None:
        """`uet_trio.testing` exposes the scripted runner and the simulators, documented."""
        for name in ("Outcome", "FakeRunner", "Simulation", "simulate", "simulate_async"):
            assert getattr(uet_trio.testing, name).__doc__, name
        for name in ("run_workflow", "open_run", "Store", "WorkflowSpec", "TaskSpec", "Event"):
            assert name in uet_trio.__all__

    def test_script_entries_are_checked(self) -> None:
        """An empty outcome list or a negative duration is refused when the script is built."""
        with pytest.raises(ValueError, match="'a'"):
            FakeRunner({"a": []})
        with pytest.raises(ValueError, match="duration"):
            Outcome(-1.0)


class TestSpecInPython:
    def test_python_spec_equals_loaded_spec(
        self, write_flow: Callable[[str], Path], tmp_path: Path
    ) -> None:
        """A workflow built in Python is the workflow the same TOML file describes."""
        flow = write_flow(
            """
            [workflow]
            name = "same"
            timeout = 5
            [tools.echo]
            command = ["echo", "{word}"]
            kinds = ["say"]
            [[tasks]]
            id = "a"
            kind = "say"
            params = { word = "hi" }
            retries = 2
            [[tasks]]
            id = "b"
            command = ["true"]
            depends_on = ["a"]
            """
        )
        loaded = load_workflow(flow)
        built = WorkflowSpec(
            name="same",
            timeout=5,
            tools=[ToolSpec(name="echo", command=["echo", "{word}"], kinds=["say"])],
            tasks=[
                TaskSpec(id="a", kind="say", params={"word": "hi"}, retry=loaded.tasks[0].retry),
                TaskSpec(id="b", command=["true"], depends_on=["a"]),
            ],
            base_dir=tmp_path,
        )
        assert loaded.tasks[0].retry is not None and loaded.tasks[0].retry.retries == 2
        assert built.fingerprint() == loaded.fingerprint()

    def test_python_spec_is_validated_like_a_file(self, write_flow: Callable[[str], Path]) -> None:
        """The same mistake gives the same task, field and message from Python and from a file."""
        with pytest.raises(WorkflowError) as from_python:
            TaskSpec(id="a", command=["true"], timeout=-1)
        flow = write_flow(
            '[workflow]\nname = "x"\n[[tasks]]\nid = "a"\ncommand = ["true"]\ntimeout = -1\n'
        )
        with pytest.raises(WorkflowError) as from_file:
            load_workflow(flow)
        assert (from_python.value.task, from_python.value.field) == ("a", "timeout")
        assert (from_file.value.task, from_file.value.field) == ("a", "timeout")
        assert from_file.value.message == from_python.value.message
        with pytest.raises(WorkflowError, match="depends on unknown task 'nope'"):
            WorkflowSpec(name="x", tasks=[TaskSpec(id="a", call=double, depends_on=["nope"])])


class TestRunWorkflow:
    async def test_commands_tools_and_callables_in_a_file_store(self, store: Store) -> None:
        """Every kind of task runs; a callable's return value is recorded in its attempt."""
        spec = WorkflowSpec(
            name="mixed",
            tools=[ToolSpec(name="echo", command=["echo", "{word}"], kinds=["say"])],
            tasks=[
                TaskSpec(id="say", kind="say", params={"word": "hello"}),
                TaskSpec(id="cmd", command=["sh", "-c", "exit 0"]),
                TaskSpec(id="double", call=double, args=[21], depends_on=["say", "cmd"]),
                TaskSpec(id="odd", call=returns_unstorable),
                TaskSpec(id="nan", call=returns_nan),
            ],
            timeout=30,
        )
        result = await run_workflow(spec, store=store, max_workers=2)
        assert result.status is RunStatus.SUCCEEDED
        assert set(result.states.values()) == {TaskState.SUCCEEDED}
        attempts = {a.task_id: a for a in store.attempts(result.run_id)}
        assert attempts["double"].result == 42
        assert attempts["odd"].result is None
        assert attempts["nan"].result is None  # NaN is not JSON
        assert attempts["say"].argv == ["echo", "hello"]
        assert store.get_run(result.run_id).status == "succeeded"

    async def test_memory_store_runs_commands_without_files(self, tmp_path: Path) -> None:
        """With `Store.memory()` and no log root, commands run and no file is written."""
        spec = WorkflowSpec(
            name="nofiles",
            tasks=[TaskSpec(id="a", command=["sh", "-c", "echo out; echo err >&2"])],
            base_dir=tmp_path,
        )
        with Store.memory() as memory:
            result = await run_workflow(spec, store=memory, max_workers=1)
            assert result.status is RunStatus.SUCCEEDED
            assert memory.tasks(result.run_id)[0].state == "succeeded"
        assert list(tmp_path.iterdir()) == []

    async def test_callable_failures_timeouts_and_retries(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A callable that raises fails with its error; one that overruns times out, retried."""
        spec = WorkflowSpec(
            name="rules",
            tasks=[
                TaskSpec(id="raises", call=raises),
                TaskSpec(
                    id="slow",
                    call=sleeps_long,
                    timeout=2,
                    retry=RetryPolicy(retries=1, initial=1, jitter=0, retry_on=["timeout"]),
                ),
            ],
        )
        with Store.memory() as memory:
            result = await run_workflow(spec, store=memory, max_workers=2)
            assert result.states == {"raises": TaskState.FAILED, "slow": TaskState.FAILED}
            raised = memory.attempts(result.run_id, "raises")
            assert [a.error for a in raised] == ["RuntimeError: no luck"]
            slow = memory.attempts(result.run_id, "slow")
            assert [(a.status, a.timed_out) for a in slow] == [("timed_out", True)] * 2
            assert slow[1].started_at - slow[0].started_at == pytest.approx(3.0)


class TestOpenRun:
    async def test_subscribers_status_and_wait(self, store: Store) -> None:
        """Each subscriber sees every event in order; status follows the run; wait() returns."""
        spec = WorkflowSpec(
            name="watched",
            tasks=[
                TaskSpec(id="a", command=["true"]),
                TaskSpec(id="b", call=double, args=[1], depends_on=["a"]),
            ],
        )
        seen: dict[str, list[uet_trio.Event]] = {"first": [], "second": []}
        statuses = set()
        async with open_run(spec, store=store, max_workers=1) as run:
            channels = {"first": run.events(), "second": run.events(buffer=1)}

            async def collect(name: str) -> None:
                async for event in channels[name]:
                    statuses.add(run.status)
                    seen[name].append(event)

            async with trio.open_nursery() as nursery:
                for name in channels:
                    nursery.start_soon(collect, name)
            result = await run.wait()
        assert seen["first"] == seen["second"]
        assert [e.seq for e in seen["first"]] == list(range(1, len(seen["first"]) + 1))
        assert seen["first"][0].kind is EventKind.RUN_STARTED
        assert seen["first"][-1].kind is EventKind.RUN_FINISHED
        assert RunStatus.RUNNING in statuses
        assert run.status is RunStatus.SUCCEEDED
        assert result == run.result
        assert [e.seq for e in seen["first"]] == [r.seq for r in store.events(run.run_id)]
        late = run.events()
        assert [event async for event in late] == []

    async def test_a_subscriber_may_read_only_some_kinds(self, store: Store) -> None:
        """With `kinds`, a subscriber gets those events, in order; the store and others get all."""
        spec = WorkflowSpec(
            name="some",
            tasks=[
                TaskSpec(id="a", command=["true"]),
                TaskSpec(id="b", command=["false"], depends_on=["a"]),
                TaskSpec(id="c", command=["true"], depends_on=["b"]),
            ],
        )
        wanted = {EventKind.TASK_SUCCEEDED, EventKind.TASK_FAILED, EventKind.TASK_SKIPPED}
        async with open_run(spec, store=store, max_workers=1) as run:
            some, every = run.events(kinds=wanted), run.events()
            seen: dict[str, list[uet_trio.Event]] = {"some": [], "every": []}

            async def collect(
                name: str, channel: trio.MemoryReceiveChannel[uet_trio.Event]
            ) -> None:
                async for event in channel:
                    seen[name].append(event)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, "some", some)
                nursery.start_soon(collect, "every", every)
        assert [(e.kind, e.task_id) for e in seen["some"]] == [
            (EventKind.TASK_SUCCEEDED, "a"),
            (EventKind.TASK_FAILED, "b"),
            (EventKind.TASK_SKIPPED, "c"),
        ]
        assert seen["some"] == [e for e in seen["every"] if e.kind in wanted]
        assert [e.seq for e in seen["every"]] == [r.seq for r in store.events(run.run_id)]

    async def test_cancelling_the_scope_stops_processes_and_records_cancelled(
        self, store: Store, tmp_path: Path
    ) -> None:
        """Cancelling the embedding scope kills the process group and records the run cancelled."""
        pidfile = tmp_path / "grandchild.pid"
        spec = WorkflowSpec(
            name="cancelled",
            tasks=[
                TaskSpec(
                    id="sleeper",
                    command=["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"],
                ),
                TaskSpec(id="after", command=["true"], depends_on=["sleeper"]),
            ],
            kill_grace=1.0,
        )
        leader: int | None = None
        with trio.move_on_after(60) as scope:
            async with open_run(spec, store=store, max_workers=2) as run:
                async for event in run.events():
                    if event.kind is EventKind.ATTEMPT_SPAWNED:
                        leader = event.data["pid"]
                        await wait_for_text(pidfile)
                        scope.cancel()
        assert scope.cancelled_caught
        assert leader is not None
        grandchild = int(pidfile.read_text())
        # Signals are delivered at once but a process takes a moment to exit.
        assert await dies_within(leader, seconds=10)
        assert await dies_within(grandchild, seconds=10)
        assert run.status is RunStatus.CANCELLED
        assert run.result is not None and run.result.status is RunStatus.CANCELLED
        record = store.get_run(run.run_id)
        assert record.status == "cancelled"
        assert {t.task_id: t.state for t in store.tasks(run.run_id)} == {
            "sleeper": "cancelled",
            "after": "cancelled",
        }
        assert store.events(run.run_id)[-1].kind == "run_finished"


class TestManners:
    async def test_no_signal_handlers_and_no_output(
        self, store: Store, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """A run installs no signal handler and writes nothing to stdout or stderr."""
        before = {signum: signal.getsignal(signum) for signum in WATCHED_SIGNALS}
        during = {}
        spec = WorkflowSpec(
            name="quiet",
            tasks=[
                TaskSpec(id="loud", command=["sh", "-c", "echo to-stdout; echo to-stderr >&2"]),
                TaskSpec(id="call", call=double, args=[2]),
                TaskSpec(id="broken", call=raises),
            ],
        )
        async with open_run(spec, store=store, max_workers=2) as run:
            async for event in run.events():
                if event.kind is EventKind.ATTEMPT_STARTED:
                    during = {signum: signal.getsignal(signum) for signum in WATCHED_SIGNALS}
        assert run.status is RunStatus.FAILED
        assert during == before
        assert {signum: signal.getsignal(signum) for signum in WATCHED_SIGNALS} == before
        captured = capfd.readouterr()
        assert (captured.out, captured.err) == ("", "")


class TestSimulateAsync:
    async def test_matches_simulate(self, autojump_clock: trio.testing.MockClock) -> None:
        """The async variant under pytest-trio's autojump clock matches the plain function."""
        spec = WorkflowSpec(
            name="both",
            tasks=[
                TaskSpec(id="a", command=["true"]),
                TaskSpec(id="b", command=["true"], depends_on=["a"]),
                TaskSpec(id="c", command=["true"], depends_on=["a"]),
            ],
        )

        def script(task_id: str, attempt: int) -> Outcome:
            return Outcome(1.5 if task_id == "b" else 1.0)

        inside = await simulate_async(spec, FakeRunner(script), max_workers=2)
        outside = await trio.to_thread.run_sync(
            lambda: simulate(spec, FakeRunner(script), max_workers=2)
        )
        assert inside.events == outside.events
        assert inside.wall == 2.5


class TestExampleProgram:
    @pytest.mark.parametrize("with_file", [False, True], ids=["memory", "file"])
    def test_embed_example_runs(self, tmp_path: Path, with_file: bool) -> None:
        """examples/embed.py (the program in docs/embedding.md) runs and reports its results."""
        args = [str(tmp_path / "embed.db")] if with_file else []
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "succeeded: 4 tasks" in done.stdout
        assert "count returned 4" in done.stdout
        assert "summary returned {'summary': 'greet and count are done'}" in done.stdout
        assert (tmp_path / "embed.db").exists() is with_file


def python_blocks(markdown: Path) -> list[str]:
    """The ```python code blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown.read_text(), flags=re.M | re.S)


class TestDocs:
    def test_embedding_doc_shows_the_tested_example(self) -> None:
        """docs/embedding.md's complete program is examples/embed.py, byte for byte."""
        assert python_blocks(ROOT / "docs" / "embedding.md")[-1] == EXAMPLE.read_text()

    def test_testing_doc_example_passes(self, tmp_path: Path) -> None:
        """Every test in the module shown in docs/testing.md passes."""
        (block,) = [b for b in python_blocks(ROOT / "docs" / "testing.md") if "def test_" in b]
        path = tmp_path / "test_from_docs.py"
        path.write_text(block)
        spec = importlib.util.spec_from_file_location("test_from_docs", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tests = [getattr(module, name) for name in dir(module) if name.startswith("test_")]
        assert len(tests) == 4
        for test in tests:
            test()
