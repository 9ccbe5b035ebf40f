"""
Terminal states are final in the tables: late events do not reopen a task or a run.

The events are written through `Store.write_batch`, on a SQLite file and in
memory, either in a later batch than the task's end or in the same one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from uet_trio import Event, EventKind, Store
from uet_trio.recording.events import TASK_STATE_AFTER
from uet_trio.recording.records import NewRun

Row = tuple[EventKind, str | None, int | None, dict[str, Any]]

ENDS: dict[EventKind, list[Row]] = {
    EventKind.TASK_SUCCEEDED: [
        (EventKind.ATTEMPT_STARTED, "t0", 1, {"tool": "a", "argv": ["true"]}),
        (EventKind.ATTEMPT_FINISHED, "t0", 1, {"status": "succeeded", "exit_code": 0}),
        (EventKind.TASK_SUCCEEDED, "t0", 1, {}),
    ],
    EventKind.TASK_FAILED: [
        (EventKind.ATTEMPT_STARTED, "t0", 1, {"tool": "a", "argv": ["false"]}),
        (EventKind.ATTEMPT_FINISHED, "t0", 1, {"status": "failed", "exit_code": 3}),
        (EventKind.TASK_FAILED, "t0", 1, {"exit_code": 3}),
    ],
    EventKind.TASK_SKIPPED: [(EventKind.TASK_SKIPPED, "t0", None, {"upstream": "x"})],
    EventKind.TASK_CANCELLED: [(EventKind.TASK_CANCELLED, "t0", None, {})],
}
"""How t0 reaches each terminal state, after it is ready."""

LATE: dict[str, list[Row]] = {
    "attempt_started": [(EventKind.ATTEMPT_STARTED, "t0", 2, {"tool": "b", "argv": ["x"]})],
    "task_failed": [(EventKind.TASK_FAILED, "t0", 2, {"exit_code": 9})],
    "task_succeeded": [(EventKind.TASK_SUCCEEDED, "t0", 2, {})],
    "task_ready": [(EventKind.TASK_READY, "t0", None, {})],
    "retry": [
        (EventKind.TASK_RETRY_WAIT, "t0", 1, {"delay": 1.0, "retry": 1}),
        (EventKind.TASK_READY, "t0", None, {}),
    ],
    "every kind": [(kind, "t0", 2, {"exit_code": 9}) for kind in TASK_STATE_AFTER],
}
"""Events that come for t0 after it has ended."""


def events_of(rows: Sequence[Row], first: int = 1) -> list[Event]:
    """(kind, task id, attempt, data) rows as events of run r1 from seq `first`."""
    return [
        Event(
            run_id="r1",
            seq=first + i,
            kind=k,
            time=(first + i) * 0.25,
            task_id=t,
            attempt=a,
            data=d,
        )
        for i, (k, t, a, d) in enumerate(rows)
    ]


def prefix(end: EventKind) -> list[Row]:
    """The run's start, t0 readied and ended by `end`."""
    return [
        (EventKind.RUN_STARTED, None, None, {}),
        (EventKind.TASK_READY, "t0", None, {}),
        *ENDS[end],
    ]


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "u.db") if request.param == "file" else Store.memory()
    with opened:
        opened.create_run(
            NewRun(run_id="r1", workflow="wf", task_ids=["t0", "t1"], task_kinds=["k", None])
        )
        yield opened


def task_row(store: Store) -> tuple[Any, ...]:
    t0 = store.tasks("r1")[0]
    return (t0.state, t0.attempts, t0.tool, t0.started_at, t0.finished_at, t0.exit_code)


class TestTasks:
    @pytest.mark.parametrize("late", list(LATE))
    @pytest.mark.parametrize("end", list(ENDS))
    def test_late_events_in_a_later_batch_change_nothing(
        self, store: Store, end: EventKind, late: str
    ) -> None:
        """A task that ended keeps its row whatever arrives in a later batch."""
        rows = prefix(end)
        store.write_batch(events_of(rows), wall_start=100.0)
        before = task_row(store)
        assert before[0] == TASK_STATE_AFTER[end]
        store.write_batch(events_of(LATE[late], len(rows) + 1), wall_start=100.0)
        assert task_row(store) == before
        assert store.get_run("r1").last_seq == len(rows) + len(LATE[late])

    @pytest.mark.parametrize("late", list(LATE))
    @pytest.mark.parametrize("end", list(ENDS))
    def test_late_events_in_the_same_batch_change_nothing(
        self, store: Store, tmp_path: Path, end: EventKind, late: str
    ) -> None:
        """The events after a task's end in its own batch are ignored too."""
        rows = prefix(end)
        with Store.open(tmp_path / "alone.db") as alone:
            alone.create_run(
                NewRun(run_id="r1", workflow="wf", task_ids=["t0", "t1"], task_kinds=["k", None])
            )
            alone.write_batch(events_of(rows), wall_start=100.0)
            expected = task_row(alone)
        store.write_batch(events_of(rows + LATE[late]), wall_start=100.0)
        assert task_row(store) == expected

    def test_the_attempts_up_to_the_end_still_count(self, store: Store) -> None:
        """In one batch: two attempts, the end, a late third: the row counts two."""
        rows: list[Row] = [
            (EventKind.RUN_STARTED, None, None, {}),
            (EventKind.TASK_READY, "t0", None, {}),
            (EventKind.ATTEMPT_STARTED, "t0", 1, {"tool": "a", "argv": []}),
            (EventKind.ATTEMPT_FINISHED, "t0", 1, {"status": "failed", "exit_code": 1}),
            (EventKind.TASK_RETRY_WAIT, "t0", 1, {"delay": 0.0, "retry": 1}),
            (EventKind.TASK_READY, "t0", None, {}),
            (EventKind.ATTEMPT_STARTED, "t0", 2, {"tool": "b", "argv": []}),
            (EventKind.ATTEMPT_FINISHED, "t0", 2, {"status": "succeeded", "exit_code": 0}),
            (EventKind.TASK_SUCCEEDED, "t0", 2, {}),
            (EventKind.ATTEMPT_STARTED, "t0", 3, {"tool": "c", "argv": []}),
            (EventKind.TASK_FAILED, "t0", 3, {"exit_code": 5}),
        ]
        store.write_batch(events_of(rows), wall_start=100.0)
        assert task_row(store) == ("succeeded", 2, "b", 100.75, 102.25, 0)

    def test_a_finished_attempt_keeps_its_process(self, store: Store) -> None:
        """A late ``attempt_spawned`` does not rewrite an attempt that has ended."""
        rows = prefix(EventKind.TASK_SUCCEEDED)
        store.write_batch(events_of(rows), wall_start=0.0)
        spawned = {
            "pid": 7,
            "proc_start": 1,
            "worker": 0,
            "out_path": "w0.out",
            "out_offset": 0,
            "err_path": "w0.err",
            "err_offset": 0,
        }
        late = [(EventKind.ATTEMPT_SPAWNED, "t0", 1, spawned)]
        store.write_batch(events_of(late, len(rows) + 1), wall_start=0.0)
        (attempt,) = store.attempts("r1")
        assert (attempt.status, attempt.pid, attempt.out_path) == ("succeeded", None, None)


RUN_END: list[Row] = [
    (EventKind.RUN_STARTED, None, None, {}),
    (EventKind.TASK_READY, "t0", None, {}),
    *ENDS[EventKind.TASK_SUCCEEDED],
    (EventKind.TASK_FAILED, "t1", None, {"exit_code": 2}),
    (EventKind.RUN_FINISHED, None, None, {"status": "failed"}),
]

LATE_RUN: dict[str, list[Row]] = {
    "run_started": [(EventKind.RUN_STARTED, None, None, {})],
    "run_finished": [(EventKind.RUN_FINISHED, None, None, {"status": "succeeded"})],
    "both": [
        (EventKind.RUN_STARTED, None, None, {}),
        (EventKind.RUN_FINISHED, None, None, {"status": "cancelled"}),
    ],
}


def run_row(store: Store) -> tuple[Any, ...]:
    run = store.get_run("r1")
    return (run.status, run.started_at, run.finished_at, run.owner_pid)


class TestRuns:
    @pytest.mark.parametrize("late", list(LATE_RUN))
    def test_a_finished_run_is_not_reopened_by_a_later_batch(self, store: Store, late: str) -> None:
        """Only the sequence number moves: a resume numbers its events after it."""
        store.write_batch(events_of(RUN_END), wall_start=100.0)
        before = run_row(store)
        assert before[0] == "failed"
        store.write_batch(events_of(LATE_RUN[late], len(RUN_END) + 1), wall_start=500.0)
        assert run_row(store) == before
        assert store.get_run("r1").last_seq == len(RUN_END) + len(LATE_RUN[late])

    @pytest.mark.parametrize("late", list(LATE_RUN))
    def test_a_finished_run_is_not_reopened_in_its_own_batch(self, store: Store, late: str) -> None:
        """The first end in a batch counts, not the run-level events after it."""
        store.write_batch(events_of(RUN_END + LATE_RUN[late]), wall_start=100.0)
        assert run_row(store) == ("failed", 100.25, 101.75, None)

    def test_a_resume_starts_the_run_and_its_unfinished_tasks_again(self, store: Store) -> None:
        """``run_resumed`` reopens the run; tasks not succeeded are pending, then move again."""
        store.write_batch(events_of(RUN_END), wall_start=100.0)
        resumed: list[Row] = [
            (EventKind.RUN_RESUMED, None, None, {"kept": 1, "workers": 1}),
            (EventKind.TASK_READY, "t1", None, {}),
            (EventKind.TASK_READY, "t0", None, {}),
        ]
        store.write_batch(events_of(resumed[:1], len(RUN_END) + 1), wall_start=200.0)
        assert run_row(store)[0::2] == ("running", None)
        states = [(t.state, t.finished_at, t.exit_code) for t in store.tasks("r1")]
        assert states == [("succeeded", 101.25, 0), ("pending", None, None)]
        store.write_batch(events_of(resumed[1:], len(RUN_END) + 2), wall_start=200.0)
        assert [t.state for t in store.tasks("r1")] == ["succeeded", "ready"]
        end = [(EventKind.RUN_FINISHED, None, None, {"status": "succeeded"})]
        store.write_batch(events_of(end, len(RUN_END) + 4), wall_start=200.0)
        assert run_row(store)[0] == "succeeded"

    def test_a_resume_after_an_end_in_one_batch_counts(self, store: Store) -> None:
        """An end, a resumption and a new end in one batch: the new end counts."""
        rows = [
            *RUN_END,
            (EventKind.RUN_RESUMED, None, None, {"kept": 1, "workers": 1}),
            (EventKind.RUN_FINISHED, None, None, {"status": "succeeded"}),
        ]
        store.write_batch(events_of(rows), wall_start=100.0)
        assert run_row(store)[0::2] == ("succeeded", 102.25)
