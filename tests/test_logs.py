"""
Where log files live and how a deleted run's files go, with real files.

A run's log directory is one plain file name under the log root, whatever
its id; the default root is ``logs`` beside the database; deleting a run
removes exactly the files its attempts recorded, then the directory if that
leaves it empty.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uet_trio.recording.logs import (
    WorkerLogs,
    default_log_root,
    remove_run_logs,
    run_log_dir,
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
