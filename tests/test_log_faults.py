"""
Task logs that cannot take a task's output, with the real `uet` program.

A log volume that is full (a small tmpfs mounted as the log root) and a
file-size limit (``ulimit -f`` in the shell that starts `uet`): the task
whose output did not fit fails and says why, in `uet run`'s output, in
`uet show` and in the store; an unrelated task still succeeds; a task that
exits 0 stays a success even if its writes failed. Under a file-size limit
a worker's log is rotated between attempts, so a small task after a huge one
on the same worker still has room, and `uet logs` and `uet gc` handle the
segments. After each run the database passes ``PRAGMA integrity_check``, no
process of the run is left, and every task recorded as done still is.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UET, run_uet
from tests.procs import stat_fields

NO_SPACE = "cannot write task log: No space left on device"
TOO_LARGE = "cannot write task log: File too large"


@pytest.fixture
def full_volume(tmp_path: Path) -> Iterator[Path]:
    """
    A 64 KiB tmpfs mounted at ``logs`` beside the database: the log root.

    The database (``uet.db`` in tmp_path) stays outside it, on the test's
    ordinary file system, so only the logs run out of space.
    """
    mount_point = tmp_path / "logs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs for the full log volume: {mounted.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def write_flow(directory: Path, text: str) -> Path:
    path = directory / "flow.toml"
    path.write_text(textwrap.dedent(text))
    return path


def rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of `query` on the database, read with a plain sqlite3 connection."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def assert_store_sound(db: Path, done: dict[str, str]) -> None:
    """Integrity ``ok``; tasks in `done` recorded with those states; no process group left."""
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    states = dict(rows(db, "SELECT task_id, state FROM tasks"))
    assert {task: states.get(task) for task in done} == done
    pgids = {pid for (pid,) in rows(db, "SELECT pid FROM attempts WHERE pid IS NOT NULL")}
    assert pgids
    left = []
    for entry in os.listdir("/proc"):
        fields = stat_fields(entry) if entry.isdigit() else None
        if fields is not None and fields[0] not in (b"Z", b"X") and int(fields[2]) in pgids:
            left.append(entry)
    assert left == []


def test_a_full_log_volume_fails_the_task_that_overflowed_it_and_says_why(
    tmp_path: Path, full_volume: Path
) -> None:
    """
    ``big`` writes more than the volume holds: it fails with the reason; the
    task after it that writes nothing succeeds, and so does one whose write
    was lost but that exits 0.
    """
    flow = write_flow(
        tmp_path,
        """
        [[tasks]]
        id = "big"
        command = ["head", "-c", "200000", "/dev/zero"]
        [[tasks]]
        id = "quiet"
        command = ["true"]
        [[tasks]]
        id = "shrugs"
        command = ["sh", "-c", "echo lost; exit 0"]
        """,
    )
    db = tmp_path / "uet.db"
    ran = run_uet("run", flow, "--db", db, "-j", "1", "--order", "declared", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    failed = [line for line in ran.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1
    assert "big" in failed[0]
    assert NO_SPACE in failed[0]
    assert any("ok" in line and "quiet" in line for line in ran.stdout.splitlines())

    shown = run_uet("show", "--last", "--db", db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"error: {NO_SPACE}" in shown.stdout

    attempts = {
        task: (status, exit_code, error)
        for task, status, exit_code, error in rows(
            db, "SELECT task_id, status, exit_code, error FROM attempts"
        )
    }
    assert attempts["big"][1:] == (1, NO_SPACE)
    assert attempts["quiet"][1:] == (0, None)
    assert attempts["shrugs"][1:] == (0, None)
    assert_store_sound(db, {"big": "failed", "quiet": "succeeded", "shrugs": "succeeded"})


def test_a_file_size_limit_rotates_the_log_so_a_small_task_after_a_huge_one_succeeds(
    tmp_path: Path,
) -> None:
    """
    ``ulimit -f`` and one worker: ``big`` hits the limit and fails with the
    reason; the 5-byte task after it writes to a new segment and succeeds;
    `uet logs` reads its 5 bytes; `uet gc` removes every segment.
    """
    flow = write_flow(
        tmp_path,
        """
        [[tasks]]
        id = "big"
        command = ["head", "-c", "8000000", "/dev/zero"]
        [[tasks]]
        id = "small"
        command = ["printf", "hello"]
        """,
    )
    db = tmp_path / "uet.db"
    command = shlex.join(
        [*UET, "run", str(flow), "--db", str(db), "-j", "1", "--order", "declared"]
    )
    # 2048 blocks: 1 MiB in sh's 512-byte blocks (2 MiB if they are 1024 bytes).
    ran = subprocess.run(
        ["sh", "-c", f"ulimit -f 2048 && exec {command}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    failed = [line for line in ran.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1
    assert "big" in failed[0]
    assert TOO_LARGE in failed[0]

    logged = run_uet("logs", "--last", "small", "--db", db, cwd=tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout == "hello"

    paths = dict(rows(db, "SELECT task_id, out_path FROM attempts"))
    assert Path(str(paths["big"])).name == "w0.out"
    assert Path(str(paths["small"])).name == "w0.1.out"
    run_dir = Path(str(paths["small"])).parent
    assert sorted(p.name for p in run_dir.iterdir()) == ["w0.1.err", "w0.1.out", "w0.err", "w0.out"]
    assert_store_sound(db, {"big": "failed", "small": "succeeded"})

    collected = run_uet("gc", "--keep", "0", "--db", db, cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert "4 log files" in collected.stdout
    assert not run_dir.exists()
    assert list((tmp_path / "logs").iterdir()) == []
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
