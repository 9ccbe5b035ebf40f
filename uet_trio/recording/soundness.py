"""
Whether a store file must be checked whole again: a stamp of the file as uet-trio last left it.

A run checks the whole store (``PRAGMA quick_check``) before any task
starts, so that a damaged file is refused before anything runs. That reads
every page: about 0.9 s per 100,000 tasks of history, paid again by every
run. But a file that checked sound and was then written only through SQLite
is still sound when its writer leaves it normally. So a store opened with
the check and closed by leaving its ``with`` block without an error writes
the file's identity (device, inode, size, modification and change times)
beside it, in ``<db>-checked``; the next check is skipped when the file
still has that identity and no write-ahead log is pending.

Anything else runs the whole check: another program's write, a truncation,
a copy, a crashed writer (its log is left, or its checkpoint changed the
file), or a run that ended with an error (opening consumes the stamp, and
only a normal exit writes it again). What none of these catches is damage
that changes no stat field (a disk's silent corruption); SQLite still
refuses such a page when it reads it, as a store error.
"""

from __future__ import annotations

import contextlib
import os

STAMP_SUFFIX = "-checked"
"""The stamp's file name is the database's with this appended, as SQLite names its ``-wal``."""


def _identity(path: str) -> str:
    """What changes whenever anything writes, truncates or replaces the file."""
    info = os.stat(path)
    return f"{info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}"


def consume_stamp(path: str) -> bool:
    """
    Whether the file at `path` is as a sound close left it; the stamp is removed either way.

    Removed so that a session that does not end normally (an error, a kill)
    leaves the next one to check the whole file.
    """
    stamp = path + STAMP_SUFFIX
    try:
        with open(stamp, encoding="ascii") as file:
            recorded = file.read()
        os.unlink(stamp)
    except (OSError, ValueError):
        return False
    try:
        if os.stat(path + "-wal").st_size:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        return recorded == _identity(path)
    except OSError:
        return False


def write_stamp(path: str) -> None:
    """
    Record that the file at `path` is sound as it is now (its writer left it normally).

    Written whole or not at all (a temporary file renamed over it); a stamp
    that cannot be written only means the next run checks the whole file.
    """
    stamp = path + STAMP_SUFFIX
    partial = f"{stamp}.{os.getpid()}"
    try:
        identity = _identity(path)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(identity)
        os.replace(partial, stamp)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(partial)
