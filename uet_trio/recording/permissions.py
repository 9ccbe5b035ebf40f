"""
Whether other users could tamper with a store's files through its directories.

Anyone who may write to the directory of the database or of its logs could
swap the database, or plant a symlink where a log file or the database's
``-wal`` file is about to be created, and so make a run write elsewhere.
`writable_by_others` names such directories; the library never prints, so
the ``uet`` commands that write warn about them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .logs import default_log_root


def writable_by_others(db_path: str | os.PathLike[str], log_root: Path | None = None) -> list[Path]:
    """
    The directories through which users other than the owner could tamper with the store.

    Checked, after resolving symlinks: the database's directory and the log
    root (`log_root`, by default ``logs`` beside the database) with each of
    its directories up to the database's, flagged when writable by others
    even with the sticky bit (a sticky directory still lets anyone create a
    new entry, such as a ``-wal`` file or a run's log directory, before uet
    does); and every directory above those up to ``/``, flagged when
    writable by others without the sticky bit (anyone could rename the
    store's directory away and put another in its place; ``/tmp``, mode
    1777, is fine). Group write is taken as a deliberate choice and not
    flagged. Directories that do not exist yet are skipped: they will be
    created 0700. Returns them nearest first, each once.
    """
    store_dir = Path(os.path.realpath(os.path.dirname(os.path.abspath(db_path))))
    root = log_root if log_root is not None else default_log_root(os.fspath(db_path))
    inner = [store_dir]
    if root is not None:
        logs = Path(os.path.realpath(root))
        inner += [logs, *(p for p in logs.parents if p.is_relative_to(store_dir))]
    outer = [parent for directory in inner for parent in directory.parents]
    found: list[Path] = []
    seen: set[Path] = set()
    for directory, sticky_is_enough in [(d, False) for d in inner] + [(d, True) for d in outer]:
        if directory in seen:
            continue
        seen.add(directory)
        try:
            mode = os.stat(directory).st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode) or not mode & stat.S_IWOTH:
            continue
        if sticky_is_enough and mode & stat.S_ISVTX:
            continue
        found.append(directory)
    return found
