"""
Where log files live and how a deleted run's files go, with real files.

A run's log directory is one plain file name under the log root, whatever
its id; the default root is ``logs`` beside the database; deleting a run
removes the files its attempts recorded and any empty segment none recorded,
then the directory if that leaves it empty. A worker's
files are rotated to a new segment between attempts at a size limit, and a
failed attempt's log is checked for what kept its output out.
"""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uet_trio.recording.logs import (
    SEGMENT_BYTES,
    WorkerLogs,
    default_log_root,
    remove_run_logs,
    run_log_dir,
    segment_limit,
)

HOSTILE_IDS = [
    "..",
    ".",
    "../../etc/passwd",
    "/abs/path",
    ".hidden",
    "a/b",
    "a_b",
    "a\\b",
    "-rf",
    "x" * 500,
    "ünïcödé",
    "tab\there",
    "a_b-" + "0" * 16,
]

PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,99}")
ROOT = Path("/var/uet/logs")


class TestRunLogDir:
    @pytest.mark.parametrize("run_id", HOSTILE_IDS)
    def test_a_plain_bounded_name_directly_under_the_root(self, run_id: str) -> None:
        """No separator, no leading dot, only ASCII letters, digits and ``-_.``, at most 100."""
        directory = run_log_dir(ROOT, run_id)
        assert directory.parent == ROOT
        assert PLAIN_FILE_NAME.fullmatch(directory.name)

    def test_distinct_ids_never_share_a_directory(self) -> None:
        """Including an id crafted to look like another id's hashed form."""
        crafted = run_log_dir(ROOT, "a/b").name
        ids = [*HOSTILE_IDS, crafted, "20261127-083828.123-af0c"]
        assert len({run_log_dir(ROOT, run_id) for run_id in ids}) == len(ids)

    def test_ordinary_run_ids_keep_their_name(self) -> None:
        """Run ids made by uet-trio are their own directory names."""
        assert run_log_dir(ROOT, "20261127-083828.123-af0c") == ROOT / "20261127-083828.123-af0c"

    @given(st.text(max_size=300), st.text(max_size=300))
    def test_any_two_ids(self, first: str, second: str) -> None:
        """For any text: a bounded plain name under the root, and distinct ids map apart."""
        a, b = run_log_dir(ROOT, first), run_log_dir(ROOT, second)
        assert a.parent == ROOT
        assert PLAIN_FILE_NAME.fullmatch(a.name)
        assert (a == b) == (first == second)


class TestDefaultLogRoot:
    def test_beside_the_database_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``logs`` in the database's directory, made absolute from a relative path."""
        monkeypatch.chdir(tmp_path)
        assert default_log_root(".uet/uet.db") == tmp_path / ".uet" / "logs"
        assert default_log_root("/srv/x/uet.db") == Path("/srv/x/logs")

    def test_none_for_an_in_memory_store(self) -> None:
        assert default_log_root(":memory:") is None


def _written_logs(directory: Path, workers: int) -> list[str]:
    """Write a line to each log file of workers 0..`workers`-1 in `directory`; their paths."""
    paths = []
    for worker in range(workers):
        logs = WorkerLogs(directory, worker)
        for fd in logs.fds():
            os.write(fd, b"output\n")
        logs.close()
        paths += [logs.out_path, logs.err_path]
    return paths


class TestRemoveRunLogs:
    def test_removes_the_recorded_files_then_the_empty_directory(self, tmp_path: Path) -> None:
        directory = run_log_dir(tmp_path / "logs", "r1")
        paths = _written_logs(directory, 2)
        # Each worker's files are recorded by every attempt it ran.
        assert remove_run_logs(paths + paths, str(directory)) == 4
        assert not directory.exists()
        assert (tmp_path / "logs").is_dir()

    def test_files_already_gone_are_not_counted(self, tmp_path: Path) -> None:
        directory = tmp_path / "r1"
        paths = _written_logs(directory, 1)
        os.unlink(paths[0])
        assert remove_run_logs(paths, str(directory)) == 1
        assert not directory.exists()

    def test_a_directory_with_other_files_stays(self, tmp_path: Path) -> None:
        """Files the run did not record are not the run's to delete."""
        directory = tmp_path / "r1"
        paths = _written_logs(directory, 1)
        (directory / "notes.txt").write_text("mine\n")
        assert remove_run_logs(paths, str(directory)) == 2
        assert sorted(os.listdir(directory)) == ["notes.txt"]

    def test_empty_unrecorded_segments_go_too(self, tmp_path: Path) -> None:
        """
        A segment opened for an attempt that never started is recorded by no
        row: removed when empty; one with content, or a symlink, stays.
        """
        directory = tmp_path / "r1"
        paths = _written_logs(directory, 1)
        logs = WorkerLogs(directory, 0)
        logs.segment = 1
        logs.fds()
        logs.close()
        (directory / "w1.out").write_bytes(b"not empty")
        (tmp_path / "victim").write_bytes(b"")
        (directory / "w2.out").symlink_to(tmp_path / "victim")
        assert remove_run_logs(paths, str(directory)) == 4
        assert sorted(os.listdir(directory)) == ["w1.out", "w2.out"]
        assert (tmp_path / "victim").exists()

    def test_no_directory_or_a_missing_one_is_fine(self, tmp_path: Path) -> None:
        """A run without a log directory, or whose directory is already gone."""
        assert remove_run_logs([], None) == 0
        assert remove_run_logs([], "") == 0
        assert remove_run_logs([str(tmp_path / "gone" / "w0.out")], str(tmp_path / "gone")) == 0

    def test_a_file_that_cannot_be_removed_raises(self, tmp_path: Path) -> None:
        """Any error but "already gone" propagates, so the caller can roll the run's rows back."""
        directory = tmp_path / "r1"
        paths = _written_logs(directory, 1)
        (directory / "w9.out").mkdir()  # a directory where a log file was recorded
        with pytest.raises(IsADirectoryError):
            remove_run_logs([*paths, str(directory / "w9.out")], str(directory))
        assert (directory / "w9.out").is_dir()

    def test_the_null_device_of_a_run_without_log_files_is_never_removed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A run with no log directory records ``os.devnull`` as its files; it stays."""
        # A stand-in null device, so that a failure cannot remove the real one.
        null = tmp_path / "null"
        null.write_bytes(b"")
        monkeypatch.setattr(os, "devnull", str(null))
        logs = WorkerLogs(None, 0)
        assert remove_run_logs([logs.out_path, logs.err_path], None) == 0
        assert null.exists()


def _fake_file_size_limit(monkeypatch: pytest.MonkeyPatch, soft: int) -> None:
    """Make `resource.getrlimit` report `soft` as this process's RLIMIT_FSIZE."""
    real = resource.getrlimit

    def getrlimit(which: int) -> tuple[int, int]:
        if which == resource.RLIMIT_FSIZE:
            return soft, resource.RLIM_INFINITY
        return real(which)

    monkeypatch.setattr(resource, "getrlimit", getrlimit)


class TestSegments:
    """A worker's log files are rotated between attempts once one reaches the limit."""

    def test_below_the_limit_the_same_files_stay_open(self, tmp_path: Path) -> None:
        logs = WorkerLogs(tmp_path / "r1", 0)
        logs.limit = 10
        fds = logs.fds()
        os.write(fds[0], b"12345")
        logs.ended(5, 0)
        assert logs.fds() == fds
        assert Path(logs.out_path).name == "w0.out"
        logs.close()
        assert sorted(os.listdir(tmp_path / "r1")) == ["w0.err", "w0.out"]

    def test_at_the_limit_the_next_attempt_opens_the_next_segment(self, tmp_path: Path) -> None:
        """Either file at the limit rotates both; the old ones keep their bytes."""
        directory = tmp_path / "r1"
        logs = WorkerLogs(directory, 3)
        logs.limit = 10
        out, err = logs.fds()
        os.write(out, b"0123456789")
        logs.ended(10, 0)
        assert Path(logs.out_path).name == "w3.out"  # not opened until an attempt needs it
        assert sorted(os.listdir(directory)) == ["w3.err", "w3.out"]
        new_out, new_err = logs.fds()
        assert (Path(logs.out_path).name, Path(logs.err_path).name) == ("w3.1.out", "w3.1.err")
        os.write(new_err, b"e" * 12)
        logs.ended(0, 12)
        logs.fds()
        assert (Path(logs.out_path).name, Path(logs.err_path).name) == ("w3.2.out", "w3.2.err")
        logs.close()
        assert (directory / "w3.out").read_bytes() == b"0123456789"
        assert (directory / "w3.1.err").read_bytes() == b"e" * 12
        for name in os.listdir(directory):
            assert os.stat(directory / name).st_mode & 0o777 == 0o600
        for fd in (out, err, new_out, new_err):
            with pytest.raises(OSError, match="Bad file descriptor"):
                os.fstat(fd)

    def test_a_segment_already_at_the_limit_is_skipped_when_opened(self, tmp_path: Path) -> None:
        """A resumed run's worker does not append to a full segment of the earlier session."""
        directory = tmp_path / "r1"
        directory.mkdir(mode=0o700)
        (directory / "w0.out").write_bytes(b"x" * 10)
        (directory / "w0.1.err").write_bytes(b"y" * 10)
        logs = WorkerLogs(directory, 0)
        logs.limit = 10
        logs.fds()
        assert Path(logs.out_path).name == "w0.2.out"
        logs.close()

    def test_a_next_segment_that_cannot_be_opened_keeps_the_current_one(
        self, tmp_path: Path
    ) -> None:
        """A symlink planted at the next segment is not followed; output stays in the old file."""
        directory = tmp_path / "r1"
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        logs = WorkerLogs(directory, 0)
        logs.limit = 10
        fds = logs.fds()
        (directory / "w0.1.out").symlink_to(victim)
        logs.ended(10, 0)
        assert logs.fds() == fds
        assert Path(logs.out_path).name == "w0.out"
        os.unlink(directory / "w0.1.out")
        logs.ended(10, 0)  # tried again after the next attempt
        assert logs.fds() != fds
        assert Path(logs.out_path).name == "w0.1.out"
        logs.close()
        assert victim.read_text() == "precious\n"

    def test_no_directory_never_rotates(self) -> None:
        logs = WorkerLogs(None, 0)
        logs.limit = 1
        fds = logs.fds()
        logs.ended(0, 0)
        assert logs.fds() == fds
        assert logs.out_path == os.devnull
        logs.close()

    def test_the_limit_is_half_the_file_size_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """So a file below it has as much room again before writes fail (SIGXFSZ)."""
        _fake_file_size_limit(monkeypatch, 1 << 20)
        assert segment_limit() == 1 << 19
        assert WorkerLogs(None, 0).limit == 1 << 19
        _fake_file_size_limit(monkeypatch, resource.RLIM_INFINITY)
        assert segment_limit() == SEGMENT_BYTES
        _fake_file_size_limit(monkeypatch, 1 << 62)
        assert segment_limit() == SEGMENT_BYTES


class TestWriteFailure:
    """What a failed attempt's error says about its log files."""

    def test_a_healthy_log_says_nothing(self, tmp_path: Path) -> None:
        logs = WorkerLogs(tmp_path / "r1", 0)
        logs.fds()
        assert logs.write_failure(0, 0) is None
        logs.close()
        assert WorkerLogs(None, 0).write_failure(0, 0) is None

    def test_a_file_at_the_file_size_limit_is_too_large(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        logs = WorkerLogs(tmp_path / "r1", 0)
        logs.fds()
        _fake_file_size_limit(monkeypatch, 100)
        assert logs.write_failure(99, 0) is None
        assert logs.write_failure(0, 100) == "cannot write task log: File too large"
        logs.close()

    def test_a_read_only_file_system_is_named(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        As after an I/O error remounts it read-only (which cannot be staged
        for a test: Linux refuses a read-only remount while a file is open for
        writing), so `fstatvfs` is made to report it.
        """
        logs = WorkerLogs(tmp_path / "r1", 0)
        logs.fds()
        real = os.fstatvfs(logs.fds()[0])
        fields = list(real)
        fields[8] = real.f_flag | os.ST_RDONLY  # f_flag
        monkeypatch.setattr(os, "fstatvfs", lambda fd: os.statvfs_result(fields))
        assert logs.write_failure(0, 0) == "cannot write task log: Read-only file system"
        logs.close()
