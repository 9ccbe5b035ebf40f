"""
Where an attempt's output lives: the worker log files, from creation to deletion.

A worker appends the stdout and stderr of every attempt it runs to one pair of
files per run (`WorkerLogs`; a new pair, the next segment, once one reaches
`segment_limit`), in the run's directory under the log root
(`run_log_dir`, `default_log_root`), and each attempt row records the file,
the offset where its output starts and (once it has ended) its length. An
attempt's output is exactly that byte range; while the attempt still runs,
its worker writes nothing else, so its output so far is everything from the
offset to the end of the file (`read_output`, `output_size`, `tail_lines`).
A file deleted or truncated since is reported (`LogUnavailable`, with the
bytes recorded and still available), never read as empty output.
Deleting a run removes the files its attempts recorded (`remove_run_logs`).
A failed attempt whose output the files could not take is told apart where
the cause is visible afterwards (`WorkerLogs.write_failure`). Plain file I/O, no Trio.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import resource
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import UetError
from .records import AttemptRecord


def default_log_root(db_path: str) -> Path | None:
    """``logs`` beside the database file; None for an in-memory store (path ``:memory:``)."""
    if db_path == ":memory:":
        return None
    return Path(os.path.abspath(db_path)).parent / "logs"


def run_log_dir(log_root: Path, run_id: str) -> Path:
    """
    The directory of run `run_id`'s log files: one plain file name under `log_root`.

    The run id goes through `_safe_name`, so a hostile id (``../x``, a
    separator, a leading dot) cannot place files outside the log root, and
    two runs never share a directory.
    """
    return log_root / _safe_name(run_id)


_HASHED_NAME = re.compile(r"-[0-9a-f]{16}\Z")


def _safe_name(name: str) -> str:
    """
    A file-name-safe form of `name`, different for different names.

    A plain name (ASCII letters, digits, ``-_.``, no leading dot, at most 100
    characters) is its own file name. Any other name becomes its cleaned
    prefix plus 16 hex digits of its SHA-256; a plain name that already ends
    like such a result is hashed too, so no two names share a file name.
    """
    cleaned = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in name)
    cleaned = cleaned.lstrip(".")
    if cleaned == name and 0 < len(name) <= 100 and not _HASHED_NAME.search(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{cleaned[:80] or '_'}-{digest}"


SEGMENT_BYTES = 1 << 30
"""
Size at which a worker's log file is closed and its next segment started.

Checked between attempts, so one attempt's output is never split across
files; a file can exceed it by the output of the attempt that crossed it.
When the process has a file-size limit (``RLIMIT_FSIZE``, ``ulimit -f``)
the threshold is half that limit (`segment_limit`): an attempt that starts
in a file below it still has at least as many bytes of room, so a task with
small output is not killed (SIGXFSZ) because an earlier task of the same
worker filled the shared file.
"""


def segment_limit() -> int:
    """The size at which `WorkerLogs` starts a new segment, given this process's limits."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return SEGMENT_BYTES
    return max(1, min(SEGMENT_BYTES, soft // 2))


class WorkerLogs:
    """
    The append-only stdout/stderr files of one worker in one run.

    Opened on first use (a worker that runs only in-process tasks creates no
    files), with mode 0600 and the directory created 0700. A symlink planted
    at a file's path or at the run directory itself is not followed: the
    directory is opened with ``O_NOFOLLOW`` and the files are created relative
    to it, also with ``O_NOFOLLOW``. Without a directory (a run recorded in
    an in-memory store and given no log root) output goes to ``/dev/null``.
    `close()` closes both.

    Segments: the files are ``w<N>.out``/``w<N>.err``, then
    ``w<N>.1.out``/``w<N>.1.err``, ``w<N>.2.out``... Once either file of the
    pair has reached `segment_limit()` at the end of an attempt (`ended`),
    the next attempt opens the next pair; the old pair stays open until the
    new one is, and is kept when the new one cannot be created. A segment
    is created only when an attempt is about to write to it, so every file
    is one an attempt recorded (`out_path`, `err_path` name the segment in
    use), and `remove_run_logs` finds them all. A pair already at the limit
    when first opened (a resumed run) is skipped the same way.
    """

    def __init__(self, directory: Path | None, worker: int) -> None:
        self.directory = directory
        self.worker = worker
        self.segment = 0
        """The number of the segment in use (0: ``w<N>.out``), or the next one to open."""
        self.limit = segment_limit()
        self._fds: tuple[int, int] | None = None
        # Kept open while the next segment is being opened: used again if it cannot be.
        self._previous: tuple[int, int, int] | None = None
        # Reported with every spawn: built once per segment, not per attempt.
        self._out_path, self._err_path = self._paths(0)

    def _paths(self, segment: int) -> tuple[str, str]:
        """The (stdout, stderr) paths of `segment`; names made of digits only, never input."""
        if self.directory is None:
            return os.devnull, os.devnull
        stem = f"w{self.worker}" if segment == 0 else f"w{self.worker}.{segment}"
        return str(self.directory / f"{stem}.out"), str(self.directory / f"{stem}.err")

    @property
    def out_path(self) -> str:
        return self._out_path

    @property
    def err_path(self) -> str:
        return self._err_path

    def fds(self) -> tuple[int, int]:
        """
        The (stdout, stderr) descriptors, opening the files if needed.

        Raises:
            OSError: the directory or files cannot be created or opened
                (and there is no earlier segment to keep writing to).
        """
        fds = self._fds
        if fds is None:
            fds = self._fds = self._open()
        return fds

    def _open(self) -> tuple[int, int]:
        """Open the segment in use, or the first after it below the limit."""
        if self.directory is None:
            out = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            return out, os.dup(out)
        try:
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            directory = os.open(
                self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
            try:
                fds = self._open_segment(directory)
            finally:
                os.close(directory)
        except OSError:
            if self._previous is None:
                raise
            # The old segment is over the limit but still takes output.
            segment, out, err = self._previous
            self._previous = None
            self.segment = segment
            return out, err
        if self._previous is not None:
            _, old_out, old_err = self._previous
            self._previous = None
            os.close(old_out)
            os.close(old_err)
        return fds

    def _open_segment(self, directory: int) -> tuple[int, int]:
        """Open the first pair from `self.segment` on whose files are below the limit."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            out_path, err_path = self._paths(self.segment)
            out = os.open(Path(out_path).name, flags, 0o600, dir_fd=directory)
            try:
                err = os.open(Path(err_path).name, flags, 0o600, dir_fd=directory)
            except BaseException:
                os.close(out)
                raise
            if os.fstat(out).st_size < self.limit and os.fstat(err).st_size < self.limit:
                self._out_path, self._err_path = out_path, err_path
                return out, err
            os.close(out)
            os.close(err)
            self.segment += 1

    def ended(self, out_size: int, err_size: int) -> None:
        """
        An attempt has ended and left the files at these sizes: rotate if one is at the limit.

        The sizes are the ones the caller already read to measure the
        attempt's output, so the check costs no system call.
        """
        if (out_size >= self.limit or err_size >= self.limit) and self._fds is not None:
            out, err = self._fds
            self._previous = (self.segment, out, err)
            self._fds = None
            self.segment += 1

    def write_failure(self, out_size: int, err_size: int) -> str | None:
        """
        Why a failed attempt's output may not have reached its log files, if a reason is visible.

        The child writes straight to these descriptors, so its failed writes
        are never seen here; this looks, after the attempt, for the state
        that makes them fail. Call it only for an attempt that failed, with
        the files' sizes after it:

        - a file at or past this process's ``RLIMIT_FSIZE`` (the child
          inherits it): writes fail with ``EFBIG`` or the child is killed by
          SIGXFSZ: "File too large";
        - the file system holding the files read-only (``ST_RDONLY``, e.g.
          remounted so after an I/O error): "Read-only file system";
        - no space available to unprivileged users on that file system
          (``f_bavail`` 0, one ``fstatvfs``): "No space left on device".

        Not detected: an ``EIO`` or ``EDQUOT`` (quota) the child met on a
        file system that looks healthy afterwards, space freed again before
        the check, and limits the child set on itself. A task that failed
        for a reason of its own while the volume was also full is reported
        as above: its output may be missing, which is what the message says.
        """
        if self.directory is None or self._fds is None:
            return None
        code: int | None = None
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY and max(out_size, err_size) >= soft >= 0:
            code = errno.EFBIG
        else:
            try:
                stats = os.fstatvfs(self._fds[0])
            except OSError:
                return None
            if stats.f_flag & os.ST_RDONLY:
                code = errno.EROFS
            elif stats.f_bavail == 0:
                code = errno.ENOSPC
        return None if code is None else f"cannot write task log: {os.strerror(code)}"

    def close(self) -> None:
        """Close the files if they were opened (and a previous segment still held open)."""
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None
        if self._previous is not None:
            _, out, err = self._previous
            self._previous = None
            os.close(out)
            os.close(err)


def remove_run_logs(paths: Iterable[str], log_dir: str | None) -> int:
    """
    Remove a deleted run's log files, then its log directory if that leaves it empty.

    `paths` are the files the run's attempts recorded; returns how many were
    removed. A file already gone is skipped. ``/dev/null``, which
    `WorkerLogs` records when a run has no log directory, is never removed.
    Empty worker log files in `log_dir` that no attempt recorded go too
    (`_remove_unrecorded_logs`). The directory stays when it still holds
    other files the run did not record, or cannot be removed.

    Raises:
        OSError: a file exists but cannot be removed; the caller, which
            deletes the run's rows in the same transaction, rolls them back
            so that the run stays whole.
    """
    removed = 0
    for path in sorted(set(paths)):
        if path == os.devnull:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed += 1
    if log_dir:
        removed += _remove_unrecorded_logs(log_dir)
        with contextlib.suppress(OSError):
            os.rmdir(log_dir)
    return removed


_WORKER_LOG_NAME = re.compile(r"w[0-9]+(?:\.[0-9]+)?\.(?:out|err)\Z")


def _remove_unrecorded_logs(log_dir: str) -> int:
    """
    Remove the empty regular files named like `WorkerLogs` segments in `log_dir`.

    A worker creates a segment just before an attempt spawns; an attempt
    whose command cannot start records no file, so the segment it opened
    (empty, unless a later attempt wrote to it and recorded it) is known to
    no row. The directory is opened with ``O_NOFOLLOW`` and names are
    examined and removed relative to it without following symlinks, so a
    planted link is never followed; files with content are left alone.
    Returns how many were removed; a directory that cannot be read counts 0.
    """
    try:
        directory = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    removed = 0
    try:
        for name in os.listdir(directory):
            if not _WORKER_LOG_NAME.match(name):
                continue
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_size == 0:
                    os.unlink(name, dir_fd=directory)
                    removed += 1
    finally:
        os.close(directory)
    return removed


TAIL_BYTES = 64 * 1024
"""How much of the end of an output `tail_lines` reads at most."""


def stream_location(attempt: AttemptRecord, *, stderr: bool) -> tuple[str, int, int | None] | None:
    """
    (path, offset, length) of one of the attempt's streams; length is None while it runs.

    None when the attempt has no log file (it never spawned a process, or ran in-process).
    """
    if stderr:
        path, offset, length = attempt.err_path, attempt.err_offset, attempt.err_length
    else:
        path, offset, length = attempt.out_path, attempt.out_offset, attempt.out_length
    if path is None or offset is None:
        return None
    return path, offset, length


class LogUnavailable(UetError):
    """
    An attempt's recorded output is no longer in its log file.

    The store recorded where the output lies (file, offset, length), but the
    file is gone (`missing`) or now ends before the recorded range does
    (truncated). `recorded` is the length the store holds (None while the
    attempt runs, before its length is known) and `available` how many of
    those bytes the file still holds (0 when it is missing). Reading on
    would show wrong or no bytes as the attempt's output, so readers raise
    this instead; it is a storage problem, exit status 4.
    """

    exit_code = 4

    def __init__(self, path: str, *, recorded: int | None, available: int, missing: bool) -> None:
        self.path = path
        self.recorded = recorded
        self.available = available
        self.missing = missing
        super().__init__(self._format())

    def _format(self) -> str:
        if self.missing:
            recorded = "" if self.recorded is None else f" ({self.recorded} bytes recorded)"
            return f"log missing: {self.path}{recorded}"
        if self.recorded is None:
            return f"log truncated: {self.path} now ends before the output it held"
        return (
            f"log truncated: {self.recorded} bytes recorded, {self.available} available "
            f"in {self.path}"
        )


def read_output(
    attempt: AttemptRecord, *, stderr: bool = False, skip: int = 0, limit: int | None = None
) -> bytes:
    """
    The attempt's captured stdout (or stderr), from byte `skip` of it on.

    Reads at most `limit` bytes (all when None). An attempt with no log file
    (it never spawned, or ran in-process) or that recorded no output reads
    as empty.

    Raises:
        LogUnavailable: the log file is gone, or holds fewer bytes than the
            store recorded (of a running attempt: fewer than already read).
    """
    location = stream_location(attempt, stderr=stderr)
    if location is None:
        return b""
    path, offset, length = location
    if length == 0:
        return b""
    try:
        with open(path, "rb") as file:
            _check_size(path, offset, length, os.fstat(file.fileno()).st_size, skip)
            file.seek(offset + skip)
            wanted = -1 if length is None else max(0, length - skip)
            if limit is not None:
                wanted = limit if wanted < 0 else min(wanted, limit)
            return file.read(wanted)
    except FileNotFoundError:
        raise LogUnavailable(path, recorded=length, available=0, missing=True) from None


def _check_size(path: str, offset: int, length: int | None, size: int, skip: int) -> None:
    """Raise `LogUnavailable` if a file of `size` bytes cannot hold the recorded range."""
    needed = offset + (skip if length is None else max(length, skip))
    if size < needed:
        raise LogUnavailable(path, recorded=length, available=max(0, size - offset), missing=False)


def output_size(attempt: AttemptRecord, *, stderr: bool = False) -> int:
    """
    How many bytes the stream holds: its recorded length, or so far while it runs.

    Raises:
        LogUnavailable: the attempt still runs and its log file is gone or
            ends before its output starts.
    """
    location = stream_location(attempt, stderr=stderr)
    if location is None:
        return 0
    path, offset, length = location
    if length is not None:
        return length
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise LogUnavailable(path, recorded=None, available=0, missing=True) from None
    _check_size(path, offset, None, size, 0)
    return size - offset


def tail_lines(attempt: AttemptRecord, count: int, *, stderr: bool = True) -> list[str]:
    """
    The last `count` lines of a stream, decoded for display (bad bytes replaced).

    Raises:
        LogUnavailable: as `read_output`.
    """
    size = output_size(attempt, stderr=stderr)
    skip = max(0, size - TAIL_BYTES)
    data = read_output(attempt, stderr=stderr, skip=skip, limit=size - skip)
    return _last_lines(data, count, cut=skip > 0)


def slice_tail(path: str, offset: int, length: int, count: int) -> list[str]:
    """
    The last `count` lines of the finished output at (`path`, `offset`, `length`).

    For a reader that knows where an attempt's output lies without its
    store row: ``uet run`` learns it from the attempt's events and shows a
    failed task's tail as the failure happens, before the row is committed.

    Raises:
        LogUnavailable: the file is gone, or ends before the slice does.
    """
    if count <= 0 or length <= 0:
        return []
    skip = max(0, length - TAIL_BYTES)
    try:
        with open(path, "rb") as file:
            _check_size(path, offset, length, os.fstat(file.fileno()).st_size, skip)
            file.seek(offset + skip)
            data = file.read(length - skip)
    except FileNotFoundError:
        raise LogUnavailable(path, recorded=length, available=0, missing=True) from None
    return _last_lines(data, count, cut=skip > 0)


def _last_lines(data: bytes, count: int, *, cut: bool) -> list[str]:
    """
    The last `count` lines of `data`, decoded for display (bad bytes replaced);
    `cut`: `data` starts mid-output, so its first line may be partial and is dropped.
    """
    lines = data.decode("utf-8", errors="replace").splitlines()
    if cut and lines:
        lines = lines[1:]
    return lines[-count:] if count > 0 else []
