"""
``uet trace``: a recorded run as Chrome trace-event JSON.

One real ``uet run`` fills the store: a task routed to a tool by kind, a task
that fails once and succeeds on its retry, a task that fails for good, and
two plain tasks, on two workers. Its trace must load as JSON and hold one
complete slice per attempt, on the lane of the worker the store recorded,
with the attempt's outcome and routing in its args, and the retry's wait.
An embedded run of callables (which record no worker) checks the packing of
attempts onto extra lanes.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from uet_trio import Store, TaskSpec, WorkflowSpec, chrome_trace, run_workflow
from uet_trio.recording.trace import NO_WORKER_LANE

from .conftest import run_uet

FLOW = """
    [workflow]
    name = "traced"
    max_workers = 2

    [tools.shouter]
    command = ["sh", "-c", "echo \\"$1\\"", "shout", "{word}"]
    kinds = ["shout"]

    [[tasks]]
    id = "routed"
    kind = "shout"
    params = { word = "hi" }

    [[tasks]]
    id = "flaky"
    command = ["sh", "-c", "if [ -e marker ]; then exit 0; fi; touch marker; echo once >&2; exit 1"]
    retries = 1
    backoff = { initial = 0.2, factor = 1.0, max = 0.2, jitter = 0.0 }

    [[tasks]]
    id = "boom"
    command = ["sh", "-c", "exit 4"]
    depends_on = ["routed"]

    [[tasks]]
    id = "plain-1"
    command = ["true"]

    [[tasks]]
    id = "plain-2"
    command = ["true"]
    depends_on = ["plain-1"]
"""


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(database path, the trace `uet trace --last` printed) of one real run."""
    directory = tmp_path_factory.mktemp("trace")
    (directory / "flow.toml").write_text(textwrap.dedent(FLOW))
    done = run_uet("run", "flow.toml", cwd=directory)
    assert done.returncode == 1, done.stderr
    db = directory / ".uet" / "uet.db"
    result = CliRunner().invoke(main, ["trace", "--last", "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db, json.loads(result.output)


def _slices(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in trace["traceEvents"] if event["ph"] == "X"]


class TestSlices:
    def test_every_attempt_has_one_complete_slice_on_its_workers_lane(
        self, traced: tuple[Path, dict[str, Any]]
    ) -> None:
        """Each recorded attempt appears once, as an "X" slice with tid = its worker."""
        db, trace = traced
        with Store.open(db) as store:
            attempts = store.attempts(store.last_run())
        slices = {(s["name"], s["args"]["attempt"]): s for s in _slices(trace)}
        assert len(slices) == len(_slices(trace)) == len(attempts) == 6
        for attempt in attempts:
            found = slices[(attempt.task_id, attempt.attempt)]
            assert attempt.worker is not None
            assert found["tid"] == attempt.worker
            assert found["pid"] == 1
            assert found["args"]["status"] == attempt.status.value
            assert found["args"]["exit_code"] == attempt.exit_code
            assert found["dur"] == pytest.approx(
                (attempt.finished_at - attempt.started_at) * 1e6, abs=1
            )

    def test_retries_failures_and_routing_are_in_the_args(
        self, traced: tuple[Path, dict[str, Any]]
    ) -> None:
        """The retried task has two slices; the failure its exit code; the routed one its tool."""
        _, trace = traced
        by_task = defaultdict(list)
        for found in _slices(trace):
            by_task[found["name"]].append(found)
        flaky = sorted(by_task["flaky"], key=lambda s: s["args"]["attempt"])
        assert [s["args"]["status"] for s in flaky] == ["failed", "succeeded"]
        assert flaky[1]["ts"] >= flaky[0]["ts"] + flaky[0]["dur"]
        (boom,) = by_task["boom"]
        assert (boom["args"]["status"], boom["args"]["exit_code"]) == ("failed", 4)
        (routed,) = by_task["routed"]
        assert routed["args"]["tool"] == "shouter"
        assert routed["args"]["routing"]["tool"] == "shouter"
        assert routed["args"]["routing"]["strategy"]

    def test_slices_on_one_lane_never_overlap(self, traced: tuple[Path, dict[str, Any]]) -> None:
        """A worker runs one attempt at a time, so its lane's slices follow each other."""
        _, trace = traced
        lanes = defaultdict(list)
        for found in _slices(trace):
            lanes[found["tid"]].append((found["ts"], found["ts"] + found["dur"]))
        assert set(lanes) <= {0, 1}
        for spans in lanes.values():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end - 1  # microsecond rounding

    def test_lanes_and_the_run_are_named(self, traced: tuple[Path, dict[str, Any]]) -> None:
        """Metadata events name the process after the run and each lane after its worker."""
        _, trace = traced
        names = {
            (e["name"], e["tid"]): e["args"]
            for e in trace["traceEvents"]
            if e["ph"] == "M" and e["name"] in ("process_name", "thread_name")
        }
        assert "traced" in names[("process_name", 0)]["name"]
        lanes = {s["tid"] for s in _slices(trace)}
        for lane in lanes:
            assert names[("thread_name", lane)] == {"name": f"worker {lane}"}
        assert trace["otherData"]["status"] == "failed"


class TestWaits:
    def test_the_retry_wait_and_queueing_are_async_slices(
        self, traced: tuple[Path, dict[str, Any]]
    ) -> None:
        """The retry's backoff is a "retry wait" span of the task, between its two attempts."""
        _, trace = traced
        spans: dict[int, dict[str, Any]] = {}
        for event in trace["traceEvents"]:
            if event.get("cat") == "wait":
                spans.setdefault(event["id"], {})[event["ph"]] = event
        assert all(set(pair) == {"b", "e"} for pair in spans.values())
        retry = [p for p in spans.values() if p["b"]["name"] == "retry wait"]
        assert len(retry) == 1
        (pair,) = retry
        assert pair["b"]["args"]["task_id"] == "flaky"
        flaky = sorted(
            (s for s in _slices(trace) if s["name"] == "flaky"), key=lambda s: s["args"]["attempt"]
        )
        assert pair["b"]["ts"] >= flaky[0]["ts"]
        assert pair["e"]["ts"] <= flaky[1]["ts"]
        # 0.2 s of backoff, in microseconds.
        assert pair["e"]["ts"] - pair["b"]["ts"] >= 150_000
        queued = {p["b"]["args"]["task_id"] for p in spans.values() if p["b"]["name"] == "queued"}
        assert queued == {"routed", "flaky", "boom", "plain-1", "plain-2"}


class TestCommand:
    def test_output_file_holds_the_same_trace(
        self, traced: tuple[Path, dict[str, Any]], tmp_path: Path
    ) -> None:
        """-o FILE writes the document there instead of standard output."""
        db, trace = traced
        target = tmp_path / "trace.json"
        with Store.open(db) as store:
            run_id = store.last_run()
        result = CliRunner().invoke(
            main, ["trace", run_id[:12], "-o", str(target), "--db", str(db)]
        )
        assert result.exit_code == 0, result.output
        assert result.output == ""
        written = json.loads(target.read_text())
        assert [e for e in written["traceEvents"] if e["ph"] == "X"] == _slices(trace)

    def test_an_output_file_that_cannot_be_written_is_named(
        self, traced: tuple[Path, dict[str, Any]], tmp_path: Path
    ) -> None:
        """-o into a missing directory fails with the file's name, exit 1, no traceback."""
        db, _ = traced
        target = tmp_path / "missing" / "trace.json"
        result = CliRunner().invoke(main, ["trace", "--last", "-o", str(target), "--db", str(db)])
        assert result.exit_code == 1
        assert str(target) in result.output
        assert "No such file or directory" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)

    def test_an_unknown_run_exits_3(self, traced: tuple[Path, dict[str, Any]]) -> None:
        """A RUN that matches nothing is refused with its name, exit code 3."""
        db, _ = traced
        result = CliRunner().invoke(main, ["trace", "nope", "--db", str(db)])
        assert result.exit_code == 3
        assert "nope" in result.output


async def _sleepy(seconds: float) -> None:
    import trio

    await trio.sleep(seconds)


class TestLanesWithoutWorkers:
    async def test_callables_are_packed_onto_extra_lanes_that_never_overlap(self) -> None:
        """Attempts that record no worker share extra lanes only when they do not overlap."""
        spec = WorkflowSpec(
            name="callables",
            tasks=[
                TaskSpec(id="long", call=_sleepy, args=[0.2]),
                TaskSpec(id="short-1", call=_sleepy, args=[0.05]),
                TaskSpec(id="short-2", call=_sleepy, args=[0.05], depends_on=["short-1"]),
            ],
            max_workers=2,
        )
        store = Store.memory()
        result = await run_workflow(spec, store=store)
        trace = chrome_trace(store, result.run_id)
        lanes = {s["name"]: s["tid"] for s in _slices(trace)}
        assert lanes["long"] != lanes["short-1"]
        assert lanes["short-1"] == lanes["short-2"]
        assert set(lanes.values()) == {NO_WORKER_LANE, NO_WORKER_LANE + 1}
