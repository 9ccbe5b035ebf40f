"""
Events have one schema: what real runs record matches `events.PAYLOAD`, and
the tables follow `events.TASK_STATE_AFTER`.

The runs are real: `uet_trio.run_workflow` on a SQLite file, with real
``true``, ``false`` and ``sleep`` commands (retries, a timeout, a skip, a
fallback between tools, a callable), then one run cancelled and resumed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import uet_trio
from uet_trio import (
    EventKind,
    RetryPolicy,
    RoutingRule,
    RunStatus,
    Store,
    TaskSpec,
    TaskState,
    ToolSpec,
    WorkflowSpec,
)
from uet_trio.recording.events import PAYLOAD, TASK_STATE_AFTER, DataField, Payload
from uet_trio.recording.records import EventRecord

QUICK_RETRY = RetryPolicy(retries=2, initial=0.01, jitter=0.0)


async def answer(value: int) -> dict[str, int]:
    """A callable task: its value is recorded with its attempt."""
    await trio.lowlevel.checkpoint()
    return {"answer": value}


async def raises() -> None:
    """A callable task that fails: its error is recorded with its attempt."""
    await trio.lowlevel.checkpoint()
    raise RuntimeError("no luck")


def mixed_spec(base: Path) -> WorkflowSpec:
    """Every way a task can end: success, retries, timeout, skip, fallback, calls."""
    return WorkflowSpec(
        name="mixed",
        base_dir=base,
        tools=[
            ToolSpec(name="broken", command=["false"], kinds=["k"]),
            ToolSpec(name="works", command=["true"], kinds=["k"]),
        ],
        routing=[RoutingRule(kind="k", strategy="first", tools=["broken", "works"])],
        tasks=[
            TaskSpec(id="ok", command=["true"]),
            TaskSpec(id="flaky", command=["false"], retry=QUICK_RETRY),
            TaskSpec(id="after_flaky", command=["true"], depends_on=["flaky"]),
            TaskSpec(id="slow", command=["sleep", "5"], timeout=0.2),
            TaskSpec(id="routed", kind="k", depends_on=["ok"]),
            TaskSpec(id="tolerated", command=["false"], continue_on_failure=True),
            TaskSpec(id="after_tolerated", command=["true"], depends_on=["tolerated"]),
            TaskSpec(id="call", call=answer, args=[42]),
            TaskSpec(id="raises", call=raises),
        ],
    )


def problems(events: list[EventRecord]) -> list[str]:
    """Each event whose data does not match its kind's declared payload, with why."""
    found = []
    for event in events:
        for problem in PAYLOAD[EventKind(event.kind)].problems(event.data):
            found.append(f"#{event.seq} {event.kind} ({event.task_id}): {problem}")
    return found


def state_by_mapping(events: list[EventRecord]) -> dict[str, TaskState]:
    """Each task's state after its last event that `TASK_STATE_AFTER` maps."""
    states: dict[str, TaskState] = {}
    for event in events:
        state = TASK_STATE_AFTER.get(EventKind(event.kind))
        if state is not None and event.task_id is not None:
            states[event.task_id] = state
    return states


class TestDeclaration:
    def test_every_kind_declares_its_payload(self) -> None:
        """Each kind has a payload; every declared key is a `DataField` or a task state."""
        assert set(PAYLOAD) == set(EventKind)
        names = {str(field) for field in DataField} | {str(state) for state in TaskState}
        for kind, payload in PAYLOAD.items():
            assert set(payload.fields) <= names, kind
            assert not set(payload.required) & set(payload.optional), kind

    def test_problems_names_what_is_wrong(self) -> None:
        """Undeclared, missing and mistyped keys are each reported."""
        payload = Payload({"a": int}, {"b": str})
        assert payload.problems({"a": 1}) == []
        assert payload.problems({"a": 1, "b": "x"}) == []
        assert payload.problems({"a": "1", "c": 0}) == [
            "'a' is str, declared <class 'int'>",
            "undeclared key 'c'",
        ]
        assert payload.problems({}) == ["missing key 'a'"]

    def test_every_task_state_but_pending_follows_some_kind(self) -> None:
        """The mapping reaches every state a task moves to by an event."""
        assert set(TASK_STATE_AFTER.values()) == set(TaskState) - {TaskState.PENDING}


class TestRealRuns:
    async def test_signatures_and_up_to_date_events_are_declared(self, tmp_path: Path) -> None:
        """A task with outputs records its signature; the next run finds it up to date."""
        (tmp_path / "in.txt").write_text("x")
        spec = uet_trio.WorkflowSpec(
            name="files",
            base_dir=tmp_path,
            tasks=[
                uet_trio.TaskSpec(
                    id="copy",
                    command=["cp", "in.txt", "out.txt"],
                    inputs=["in.txt"],
                    outputs=["out.txt"],
                )
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            first = await uet_trio.run_workflow(spec, store=store)
            second = await uet_trio.run_workflow(spec, store=store)
            events = store.events(first.run_id) + store.events(second.run_id)
        assert problems(events) == []
        (signed,) = [e for e in events if e.kind == EventKind.TASK_SUCCEEDED]
        (fresh,) = [e for e in events if e.kind == EventKind.TASK_UP_TO_DATE]
        assert signed.data[DataField.SIGNATURE] == fresh.data[DataField.SIGNATURE]
        assert set(signed.data[DataField.DETAIL]) == {"command", "inputs", "upstream", "outputs"}
        assert second.states == {"copy": TaskState.UP_TO_DATE}

    async def test_a_mixed_run_records_only_declared_data(self, tmp_path: Path) -> None:
        """Every event's data has the keys (and value types) its kind declares."""
        with Store.open(tmp_path / "u.db") as store:
            result = await uet_trio.run_workflow(
                mixed_spec(tmp_path), store=store, max_workers=4, kill_grace=0.5
            )
            events = store.events(result.run_id)
            tasks = {task.task_id: task.state for task in store.tasks(result.run_id)}
        assert result.status is RunStatus.FAILED
        assert result.states == {
            "ok": TaskState.SUCCEEDED,
            "flaky": TaskState.FAILED,
            "after_flaky": TaskState.SKIPPED,
            "slow": TaskState.FAILED,
            "routed": TaskState.SUCCEEDED,
            "tolerated": TaskState.FAILED,
            "after_tolerated": TaskState.SUCCEEDED,
            "call": TaskState.SUCCEEDED,
            "raises": TaskState.FAILED,
        }
        assert problems(events) == []
        kinds = {event.kind for event in events}
        assert kinds == set(EventKind) - {
            EventKind.RUN_RESUMED,
            EventKind.ATTEMPT_LOST,
            EventKind.TASK_CANCELLED,
            EventKind.TASK_UP_TO_DATE,
        }
        recorded = {
            field
            for event in events
            if event.kind == EventKind.ATTEMPT_FINISHED
            for field in event.data
        }
        assert recorded == set(PAYLOAD[EventKind.ATTEMPT_FINISHED].fields)
        assert any(DataField.FALLBACK_FROM in event.data for event in events)
        assert tasks == result.states == state_by_mapping(events)

    async def test_a_cancelled_and_resumed_run_records_only_declared_data(
        self, tmp_path: Path
    ) -> None:
        """Cancelling and resuming add their own kinds, with declared data too."""
        spec = WorkflowSpec(
            name="stopped",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(id="fails", command=["false"]),
                TaskSpec(id="long", command=["sleep", "30"]),
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            with trio.move_on_after(1.0):
                async with uet_trio.open_run(
                    spec, store=store, max_workers=2, kill_grace=0.5
                ) as run:
                    pass
            first = run.run_id
            assert store.get_run(first).status == RunStatus.CANCELLED
            fast = WorkflowSpec(
                name="stopped",
                base_dir=tmp_path,
                tasks=[
                    TaskSpec(id="fails", command=["false"]),
                    TaskSpec(id="long", command=["true"]),
                ],
            )
            result = await uet_trio.run_workflow(
                fast, store=store, resume=first, force=True, max_workers=2
            )
            events = store.events(first)
            tasks = {task.task_id: task.state for task in store.tasks(first)}
        assert problems(events) == []
        kinds = [event.kind for event in events]
        for kind in (EventKind.TASK_CANCELLED, EventKind.RUN_RESUMED):
            assert kind in kinds
        cancelled = [
            event.data
            for event in events
            if event.kind == EventKind.ATTEMPT_FINISHED and event.data["status"] == "cancelled"
        ]
        assert cancelled == [{"status": "cancelled"}]
        assert result.states == {"fails": TaskState.FAILED, "long": TaskState.SUCCEEDED}
        assert tasks == result.states == state_by_mapping(events)


@pytest.mark.parametrize("kind", list(EventKind))
def test_each_kind_is_read_by_name_through_the_declaration(kind: EventKind) -> None:
    """A declared key of every kind is a plain string, as stored in the JSON data."""
    for field in PAYLOAD[kind].fields:
        assert isinstance(field, str)
        assert field == str(field)
