"""
Reading an attempt's captured output back from its worker's log files.

A worker appends the stdout and stderr of every attempt it runs to one pair of
files per run, and each attempt row records the file, the offset where its
output starts and (once it has ended) its length. An attempt's output is
exactly that byte range; while the attempt still runs, its worker writes
nothing else, so its output so far is everything from the offset to the end of
the file. Plain file I/O, no Trio.
"""

from __future__ import annotations

import os

from .records import AttemptRecord

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


def read_output(
    attempt: AttemptRecord, *, stderr: bool = False, skip: int = 0, limit: int | None = None
) -> bytes:
    """
    The attempt's captured stdout (or stderr), from byte `skip` of it on.

    Reads at most `limit` bytes (all when None). An attempt with no log file
    or a log file that is gone reads as empty.
    """
    location = stream_location(attempt, stderr=stderr)
    if location is None:
        return b""
    path, offset, length = location
    try:
        with open(path, "rb") as file:
            file.seek(offset + skip)
            wanted = -1 if length is None else max(0, length - skip)
            if limit is not None:
                wanted = limit if wanted < 0 else min(wanted, limit)
            return file.read(wanted)
    except FileNotFoundError:
        return b""


def output_size(attempt: AttemptRecord, *, stderr: bool = False) -> int:
    """How many bytes the stream holds: its recorded length, or so far while it runs."""
    location = stream_location(attempt, stderr=stderr)
    if location is None:
        return 0
    path, offset, length = location
    if length is not None:
        return length
    try:
        return max(0, os.stat(path).st_size - offset)
    except FileNotFoundError:
        return 0


def tail_lines(attempt: AttemptRecord, count: int, *, stderr: bool = True) -> list[str]:
    """The last `count` lines of a stream, decoded for display (bad bytes replaced)."""
    size = output_size(attempt, stderr=stderr)
    skip = max(0, size - TAIL_BYTES)
    data = read_output(attempt, stderr=stderr, skip=skip, limit=size - skip)
    lines = data.decode("utf-8", errors="replace").splitlines()
    if skip and lines:
        lines = lines[1:]
    return lines[-count:] if count > 0 else []
