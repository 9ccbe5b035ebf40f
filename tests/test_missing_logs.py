"""
A log file truncated or deleted after its run: the views say so instead of showing nothing.

A real ``uet run`` records a failed task's output; the test then truncates
and deletes its stderr log file on disk and checks that ``uet show`` (human
and ``--json``) names the problem in place of the stderr tail and that
``uet logs`` reports it with exit 4 (a storage problem: the store and the
disk disagree), while the untouched stdout log still reads. The library's
`LogUnavailable` carries the numbers. The store must pass
``PRAGMA integrity_check`` throughout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import attrs
import pytest

from uet_trio import AttemptRecord, LogUnavailable, Store, read_output, tail_lines

from .conftest import run_uet

FLOW = """
[workflow]
name = "noisy"

[[tasks]]
id = "broken"
command = ["sh", "-c", "echo hello; echo oops >&2; exit 3"]
"""


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` through a fresh connection."""
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.fixture
def failed_run(tmp_path: Path) -> tuple[Path, AttemptRecord]:
    """A finished run whose task `broken` wrote ``oops\\n`` (5 bytes) to stderr: (db, attempt)."""
    (tmp_path / "flow.toml").write_text(FLOW)
    result = run_uet("run", "flow.toml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    db = tmp_path / ".uet" / "uet.db"
    with Store.open(db, readonly=True) as store:
        (attempt,) = store.attempts(store.last_run(), "broken")
    assert (attempt.err_length, attempt.out_length) == (5, 6)
    return db, attempt


def uet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_uet(*args, cwd=cwd)


class TestTheViewsSaySo:
    def test_truncated_then_deleted_stderr_log(
        self, failed_run: tuple[Path, AttemptRecord], tmp_path: Path
    ) -> None:
        """show names the problem in the tail; logs exits 4 with it; stdout still reads."""
        db, attempt = failed_run
        assert attempt.err_path is not None
        assert "    | oops" in uet("show", "--last", cwd=tmp_path).stdout

        os.truncate(attempt.err_path, 0)
        truncated = "log truncated: 5 bytes recorded, 0 available"
        shown = uet("show", "--last", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert f"    | ({truncated} in {attempt.err_path})" in shown.stdout
        assert "(no stderr)" not in shown.stdout
        (failure,) = json.loads(uet("show", "--last", "--json", cwd=tmp_path).stdout)["failures"]
        assert failure["stderr_tail"] == []
        assert failure["stderr_unavailable"].startswith(truncated)
        logs = uet("logs", "--last", "broken", "--stderr", cwd=tmp_path)
        assert (logs.returncode, logs.stdout) == (4, "")
        assert truncated in logs.stderr

        os.unlink(attempt.err_path)
        missing = f"log missing: {attempt.err_path} (5 bytes recorded)"
        shown = uet("show", "--last", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert f"    | ({missing})" in shown.stdout
        logs = uet("logs", "--last", "broken", "--stderr", cwd=tmp_path)
        assert (logs.returncode, logs.stdout) == (4, "")
        assert missing in logs.stderr
        followed = uet("logs", "--last", "broken", "--stderr", "--follow", cwd=tmp_path)
        assert (followed.returncode, followed.stdout) == (4, "")

        stdout = uet("logs", "--last", "broken", cwd=tmp_path)
        assert (stdout.returncode, stdout.stdout) == (0, "hello\n")
        assert integrity(db) == "ok"


class TestLogUnavailable:
    def test_partly_truncated_log_reports_what_is_left(
        self, failed_run: tuple[Path, AttemptRecord]
    ) -> None:
        """Three of five recorded bytes left: read_output and tail_lines raise with both numbers."""
        _, attempt = failed_run
        assert attempt.err_path is not None
        os.truncate(attempt.err_path, 3)
        for read in (lambda: read_output(attempt, stderr=True), lambda: tail_lines(attempt, 5)):
            with pytest.raises(LogUnavailable) as caught:
                read()
            assert (caught.value.recorded, caught.value.available) == (5, 3)
            assert not caught.value.missing
            assert caught.value.exit_code == 4

    def test_running_attempts_log_gone_or_cut_before_its_start(
        self, failed_run: tuple[Path, AttemptRecord]
    ) -> None:
        """An attempt still running (no length yet): a cut or missing file raises too."""
        _, attempt = failed_run
        assert attempt.out_path is not None
        running = attrs.evolve(attempt, out_length=None, out_offset=2)
        assert read_output(running) == b"llo\n"
        os.truncate(attempt.out_path, 1)
        with pytest.raises(LogUnavailable, match="log truncated") as caught:
            read_output(running)
        assert (caught.value.recorded, caught.value.available) == (None, 0)
        os.unlink(attempt.out_path)
        with pytest.raises(LogUnavailable, match="log missing") as caught:
            tail_lines(running, 5, stderr=False)
        assert caught.value.missing

    def test_an_attempt_that_wrote_nothing_needs_no_file(
        self, failed_run: tuple[Path, AttemptRecord]
    ) -> None:
        """Zero bytes recorded: nothing is lost when the file is gone."""
        _, attempt = failed_run
        assert attempt.err_path is not None
        os.unlink(attempt.err_path)
        assert read_output(attrs.evolve(attempt, err_length=0), stderr=True) == b""
