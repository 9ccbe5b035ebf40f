"""
Opening a store's SQLite file, and SQLite's errors as `StoreError`.

Errors are mapped by ``sqlite_errorname``, never by message text, into a
`StoreError` naming the file and what to do next.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import StoreError

DEFAULT_BUSY_TIMEOUT = 5.0

_ADVICE = {
    "SQLITE_BUSY": "another process holds the database locked; retry when it is done, "
    "or raise the busy timeout",
    "SQLITE_LOCKED": "the database is locked; retry when the other user is done",
    "SQLITE_FULL": "the disk (or the database's size limit) is full; free space, then "
    "`uet resume` the run",
    "SQLITE_READONLY": "the database or its directory is read-only; use a writable --db path",
    "SQLITE_NOTADB": "the file is not a uet-trio database; point --db at another path",
    "SQLITE_CORRUPT": "the database is damaged; move it aside and start a new one "
    "(keep the copy for recovery)",
    "SQLITE_IOERR": "the operating system reported an I/O error (disk full, file size "
    "limit or failing device); fix the disk, then `uet resume` the run",
    "SQLITE_CANTOPEN": "the file cannot be opened; check that its directory exists and is writable",
}


_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED")
"""Errors after which the same transaction may succeed when tried again."""


def _advice(error: sqlite3.Error) -> str:
    name = getattr(error, "sqlite_errorname", "") or ""
    for prefix, text in _ADVICE.items():
        if name.startswith(prefix):
            return text
    return "see the SQLite error above"


@contextlib.contextmanager
def translated(path: str, action: str) -> Iterator[None]:
    """Turn sqlite3 and OS errors into `StoreError` naming the file and a next step."""
    try:
        yield
    except sqlite3.Error as error:
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        raise StoreError(
            f"{path}: cannot {action}: {error} ({name}); {_advice(error)}",
            transient=name.startswith(_TRANSIENT),
        ) from error
    except OSError as error:
        raise StoreError(f"{path}: cannot {action}: {error}") from error


def create_private(path: Path) -> None:
    """Create the database file (0600) and its directory (0700) if they do not exist."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def retry_busy(step: Callable[[], object], attempts: int = 50) -> None:
    """
    Run `step`, retrying on SQLITE_BUSY with a short bounded backoff.

    Two processes opening a new database together race on the switch to WAL,
    which fails at once with SQLITE_BUSY without honouring the busy timeout.
    """
    for attempt in range(attempts):
        try:
            step()
        except sqlite3.OperationalError as error:
            busy = (getattr(error, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
            if not busy or attempt == attempts - 1:
                raise
            time.sleep(min(0.2, 0.005 * 2**attempt))
        else:
            return
