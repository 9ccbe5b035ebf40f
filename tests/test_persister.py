"""The persister: group commits, backpressure, shutdown flush, errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from uet_trio import Event, EventKind, Store, StoreError
from uet_trio.recording.projection import EventRows
from uet_trio.running.persister import (
    PROMPT_HANDOFF_BATCH,
    WRITER_SWITCH_INTERVAL,
    _PromptHandoffs,
    open_persister,
)

from .test_store import new_run


def event(seq: int) -> Event:
    return Event(run_id="r1", seq=seq, kind=EventKind.TASK_READY, time=seq * 0.001, task_id="t0")


async def test_every_event_is_written_under_backpressure(store: Store) -> None:
    """A tiny channel makes the sender wait; nothing is dropped and batches grow."""
    store.create_run(new_run())
    async with open_persister(store, wall_start=0.0, capacity=8, max_batch=64) as persister:
        for seq in range(1, 2001):
            await persister.send(event(seq))
    stats = persister.statistics()
    assert stats.events_written == 2000
    assert stats.batches_written < 2000
    assert stats.largest_batch <= 64
    assert [e.seq for e in store.events("r1")] == list(range(1, 2001))


async def test_cancellation_still_flushes_queued_events(store: Store) -> None:
    """Cancelling the owner flushes everything queued, inside the shielded scope."""
    store.create_run(new_run())
    with trio.CancelScope() as scope:
        async with open_persister(store, wall_start=0.0, capacity=1000) as persister:
            for seq in range(1, 501):
                persister.send_nowait(event(seq))
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert len(store.events("r1")) == 500


async def test_a_write_error_surfaces_as_store_error(store: Store) -> None:
    """When the store refuses a batch, the owner sees StoreError (not a bare group)."""
    store.create_run(new_run())
    store._conn.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError, match="record events"):
        async with open_persister(store, wall_start=0.0) as persister:
            await persister.send(event(1))
            await trio.sleep_forever()


def test_unbounded_channel_is_refused(store: Store) -> None:
    """The persister channel must apply backpressure; math.inf is rejected."""

    async def main() -> None:
        async with open_persister(store, wall_start=0.0, capacity=float("inf")):  # type: ignore[arg-type]
            pass

    with pytest.raises(ValueError, match="bounded"):
        trio.run(main)


async def test_a_batch_refused_by_a_lock_is_written_again_once(db_path: Path) -> None:
    """A lock held past the busy timeout makes the persister retry; no event is lost or doubled."""
    import sqlite3
    import threading

    with Store.open(db_path, busy_timeout=0.05) as store:
        store.create_run(new_run())
        store.write_batch([event(1), event(2)], wall_start=0.0)
        blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.25, lambda: blocker.execute("COMMIT"))
        release.start()
        try:
            async with open_persister(store, wall_start=0.0) as persister:
                # Events 1 and 2 were committed before: writing them again is harmless.
                for seq in range(1, 11):
                    await persister.send(event(seq))
        finally:
            release.join()
            blocker.close()
        assert persister.statistics().retries >= 1
        assert [e.seq for e in store.events("r1")] == list(range(1, 11))


async def test_a_lock_that_outlasts_the_retries_is_a_clear_error(db_path: Path) -> None:
    """When the lock never goes, the owner gets a StoreError naming the lock."""
    import sqlite3

    with Store.open(db_path, busy_timeout=0.01) as store:
        store.create_run(new_run())
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="SQLITE_BUSY") as caught:
                async with open_persister(store, wall_start=0.0) as persister:
                    await persister.send(event(1))
            assert caught.value.transient
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.events("r1") == []


async def test_the_channel_keeps_a_memory_channels_contract(store: Store) -> None:
    """Full: WouldBlock, and a cancelled send queues nothing; stopped: BrokenResourceError."""
    store.create_run(new_run())
    async with open_persister(store, wall_start=0.0, capacity=2) as persister:
        persister.send_nowait(event(1))
        persister.send_nowait(event(2))
        with pytest.raises(trio.WouldBlock):
            persister.send_nowait(event(3))
        assert persister.statistics().queued == 2
        with trio.move_on_after(0) as scope:
            await persister.send(event(3))
        assert scope.cancelled_caught
        await persister.send(event(3))
    assert [e.seq for e in store.events("r1")] == [1, 2, 3]
    assert persister.statistics().events_written == 3
    with pytest.raises(trio.BrokenResourceError):
        persister.send_nowait(event(4))


class TestPromptHandoffs:
    """
    With `short_switch_interval`, the GIL switch interval is short while a batch
    is written during a busy loop; without it, it is never touched.
    """

    async def test_untouched_unless_asked_for(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.create_run(new_run())
        seen: list[float] = []
        write_rows = store.write_rows

        def observed(*args: Any, **kwargs: Any) -> None:
            seen.append(sys.getswitchinterval())
            write_rows(*args, **kwargs)

        monkeypatch.setattr(store, "write_rows", observed)
        before = sys.getswitchinterval()
        with trio.fail_after(30):
            async with open_persister(store, wall_start=0.0) as persister:
                for seq in range(1, PROMPT_HANDOFF_BATCH + 1):
                    persister.send_nowait(event(seq))
        assert seen
        assert all(interval == before for interval in seen)
        assert len(store.events("r1")) == PROMPT_HANDOFF_BATCH

    async def test_short_for_the_first_and_large_batches_only_and_restored_after(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.create_run(new_run())
        seen: list[tuple[int, float]] = []
        written = trio.Semaphore(0)
        write_rows = store.write_rows

        def observed(rows: list[EventRows], **kwargs: Any) -> None:
            seen.append((sum(chunk.count for chunk in rows), sys.getswitchinterval()))
            write_rows(rows, **kwargs)
            trio.from_thread.run_sync(written.release)

        monkeypatch.setattr(store, "write_rows", observed)
        before = sys.getswitchinterval()
        large = PROMPT_HANDOFF_BATCH
        with trio.fail_after(30):
            async with open_persister(
                store, wall_start=0.0, capacity=2 * large, short_switch_interval=True
            ) as persister:
                persister.send_nowait(event(1))
                await written.acquire()
                for seq in range(2, large + 2):
                    persister.send_nowait(event(seq))
                await written.acquire()
                persister.send_nowait(event(large + 2))
        assert seen == [
            (1, pytest.approx(WRITER_SWITCH_INTERVAL)),  # the first batch
            (large, pytest.approx(WRITER_SWITCH_INTERVAL)),
            (1, pytest.approx(before)),
        ]
        assert sys.getswitchinterval() == before
        assert len(store.events("r1")) == large + 2

    def test_overlapping_writers_share_it_and_a_shorter_setting_is_kept(self) -> None:
        before = sys.getswitchinterval()
        handoffs = _PromptHandoffs(0.001)
        try:
            with handoffs:
                with handoffs:
                    assert sys.getswitchinterval() == pytest.approx(0.001)
                assert sys.getswitchinterval() == pytest.approx(0.001)  # one is still writing
            assert sys.getswitchinterval() == before
            sys.setswitchinterval(0.0005)
            with handoffs:
                assert sys.getswitchinterval() == pytest.approx(0.0005)
            assert sys.getswitchinterval() == pytest.approx(0.0005)
        finally:
            sys.setswitchinterval(before)

    async def test_restored_when_a_write_fails(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.create_run(new_run())
        store._conn.execute("PRAGMA query_only = ON")
        seen: list[float] = []
        write_rows = store.write_rows

        def observed(*args: Any, **kwargs: Any) -> None:
            seen.append(sys.getswitchinterval())
            write_rows(*args, **kwargs)

        monkeypatch.setattr(store, "write_rows", observed)
        before = sys.getswitchinterval()
        with pytest.raises(StoreError):
            async with open_persister(
                store, wall_start=0.0, short_switch_interval=True
            ) as persister:
                for seq in range(1, PROMPT_HANDOFF_BATCH + 1):
                    persister.send_nowait(event(seq))
                await trio.sleep_forever()
        assert seen == [pytest.approx(WRITER_SWITCH_INTERVAL)]
        assert sys.getswitchinterval() == before
