"""
Opening a store's SQLite file, SQLite's errors as `StoreError`, and the retry policy of writes.

Errors are mapped by ``sqlite_errorname``, never by message text, into a
`StoreError` naming the file and what to do next. Which errors are worth
trying again (`transient`) and how often and after what waits
(`RETRY_DELAYS`, `retrying`) is decided here once, for every write of the
store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import StoreError

DEFAULT_BUSY_TIMEOUT = 5.0

T = TypeVar("T")

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


RETRY_DELAYS = (0.05, 0.2, 0.5, 1.5)
"""
Seconds to wait before each new try of a write that failed transiently.

Four more tries over 2.25 s of waiting (plus the busy timeout of each try
that waited for a lock): enough for a lock holder to finish or a device
hiccup to pass, short enough that a fault that stays ends the run soon.
"""

_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR")
"""Error name prefixes after which the same transaction may succeed when tried again."""

_PERMANENT = frozenset(
    {
        "SQLITE_IOERR_ACCESS",
        "SQLITE_IOERR_AUTH",
        "SQLITE_IOERR_CONVPATH",
        "SQLITE_IOERR_CORRUPTFS",
        "SQLITE_IOERR_DATA",
        "SQLITE_IOERR_GETTEMPPATH",
        "SQLITE_IOERR_VNODE",
    }
)
"""
I/O errors that name a lasting condition: no permission, a path that cannot
be converted, a damaged file system or page, a file replaced underneath.
Trying again gives the same answer, so they fail at once.
"""


def transient(error: sqlite3.Error) -> bool:
    """
    Whether the transaction that raised `error` may succeed when tried again.

    Locks (SQLITE_BUSY*, SQLITE_LOCKED*) go away when their holder is done,
    and most I/O errors (SQLITE_IOERR*: a failed read, write, fsync or lock
    call) can be a passing fault of the device or the file system. Disk
    full, read-only, damaged or not-a-database files, and the I/O errors in
    `_PERMANENT`, stay: they are not retried.
    """
    name = getattr(error, "sqlite_errorname", "") or ""
    return name.startswith(_TRANSIENT) and name not in _PERMANENT


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
            transient=transient(error),
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


def retrying(step: Callable[[], T], *, on_retry: Callable[[], object] | None = None) -> T:
    """
    Run `step` (one whole transaction), again after each transient error, up to `RETRY_DELAYS`.

    The one retry policy of every write: between tries it sleeps in the
    calling thread, which is never a Trio thread (the engine writes from
    worker threads; the CLI's own writes run without an event loop). A
    retried transaction is safe: the failed try was rolled back (or, if its
    COMMIT landed after all, its rows are there and every insert has a
    natural key, so the new try changes nothing). `on_retry` is called
    before each wait, to count them. The last error is raised as is.
    """
    for delay in RETRY_DELAYS:
        try:
            return step()
        except sqlite3.Error as error:
            if not transient(error):
                raise
        if on_retry is not None:
            on_retry()
        time.sleep(delay)
    return step()


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
