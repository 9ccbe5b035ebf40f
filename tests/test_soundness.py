"""
The whole-file check of a store is skipped only for a file exactly as a sound close left it.

Every check here is observed on real files: the stamp beside the database,
the file's own stat, and `check_version` as the store calls it (wrapped, so
the real check still runs) to see whether ``quick_check`` was asked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uet_trio import Store, StoreError
from uet_trio.recording import schema
from uet_trio.recording import store as store_module
from uet_trio.recording.soundness import STAMP_SUFFIX, consume_stamp, write_stamp

from .conftest import run_uet


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each open of a store asked `check_version` for the whole check, in order."""
    asked: list[bool] = []

    def spy(conn: sqlite3.Connection, path: str, *, check: bool) -> int:
        asked.append(check)
        return schema.check_version(conn, path, check=check)

    monkeypatch.setattr(store_module, "check_version", spy)
    return asked


def stamp_of(db: Path) -> Path:
    return db.with_name(db.name + STAMP_SUFFIX)


def test_a_store_left_normally_is_stamped_and_its_next_check_skipped(
    tmp_path: Path, checks: list[bool]
) -> None:
    db = tmp_path / "u.db"
    with Store.open(db, check=True):
        pass
    assert stamp_of(db).exists()
    with Store.open(db, check=True):
        pass
    with Store.open(db, check=True):
        pass
    assert checks == [True, False, False]


def test_views_neither_check_nor_consume_the_stamp(tmp_path: Path, checks: list[bool]) -> None:
    db = tmp_path / "u.db"
    with Store.open(db, check=True):
        pass
    stamped = stamp_of(db).read_text()
    with Store.open(db) as store:
        store.list_runs()
    assert stamp_of(db).read_text() == stamped
    assert checks == [True, False]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda db: sqlite3.connect(db).execute("PRAGMA user_version=4"), id="write"),
        pytest.param(lambda db: db.write_bytes(db.read_bytes()), id="rewritten-same-bytes"),
        pytest.param(lambda db: db.touch(), id="touched"),
    ],
)
def test_any_change_after_the_stamp_brings_the_whole_check_back(
    tmp_path: Path, checks: list[bool], change: Callable[[Path], Any]
) -> None:
    db = tmp_path / "u.db"
    with Store.open(db, check=True):
        pass
    change(db)
    with Store.open(db, check=True):
        pass
    assert checks == [True, True]


def test_a_pending_log_brings_the_whole_check_back(tmp_path: Path) -> None:
    """Another writer's uncheckpointed log (a crashed writer leaves one) is not vouched for."""
    db = tmp_path / "u.db"
    with Store.open(db, check=True):
        pass
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE scratch (x)")
        assert (tmp_path / "u.db-wal").stat().st_size > 0
        assert not consume_stamp(str(db))
    finally:
        writer.close()


def test_a_damaged_file_is_refused_even_with_a_stamp(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    with Store.open(db, check=True) as store:
        store.create_run(
            store_module.NewRun(run_id="r1", workflow="w", task_ids=[f"t{i}" for i in range(3000)])
        )
    size = db.stat().st_size
    with open(db, "r+b") as handle:
        handle.seek(size - 3 * 4096)
        handle.write(b"\xde\xad\xbe\xef" * 1024)
    with pytest.raises(StoreError, match="damaged"):
        Store.open(db, check=True)


def test_a_store_error_leaving_the_block_leaves_no_stamp(tmp_path: Path) -> None:
    """Opening consumes the stamp; only a normal exit writes it again."""
    db = tmp_path / "u.db"
    with Store.open(db, check=True):
        pass
    with pytest.raises(ExceptionGroup), Store.open(db, check=True):
        raise ExceptionGroup("run", [StoreError("disk I/O error")])
    assert not stamp_of(db).exists()
    with pytest.raises(KeyError), Store.open(db, check=True):
        raise KeyError("not the store's")
    assert stamp_of(db).exists()


def test_a_stamp_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    with Store.open(db):
        pass
    stamp_of(db).mkdir()
    write_stamp(str(db))
    assert stamp_of(db).is_dir()
    assert not consume_stamp(str(db))
    assert [p.name for p in tmp_path.iterdir() if ".checked." in p.name] == []


def test_uet_run_refuses_a_store_damaged_after_its_last_run(
    tmp_path: Path, write_flow: Callable[..., Path]
) -> None:
    """A real `uet` run stamps the store; damage planted after it is still refused, exit 4."""
    marker = tmp_path / "ran"
    flow = write_flow(
        f"""
        [[tasks]]
        id = "t"
        command = ["touch", "{marker}"]
        """
    )
    db = tmp_path / "u.db"
    with Store.open(db) as store:
        store.create_run(
            store_module.NewRun(run_id="r0", workflow="w", task_ids=[f"t{i}" for i in range(3000)])
        )
    first = run_uet("run", flow, "--db", db, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert stamp_of(db).exists()
    marker.unlink()
    second = run_uet("run", flow, "--db", db, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert marker.exists()
    marker.unlink()
    with open(db, "r+b") as handle:
        handle.seek(4 * 4096)
        handle.write(b"\xde\xad\xbe\xef" * 1024)
    third = run_uet("run", flow, "--db", db, cwd=tmp_path)
    assert third.returncode == 4, (third.stdout, third.stderr)
    assert "damaged" in third.stderr
    assert not marker.exists()
