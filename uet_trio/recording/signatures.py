"""
What the store keeps for up-to-date checks: task signatures and a file stat cache.

A task's signature is recorded when it succeeds, from the data of its
``task_succeeded`` event, by the same transaction that records the event
(`SIGNATURE_UPSERT`, part of the projection): a task whose success was not
recorded has no signature, so a later run never trusts outputs that a
killed attempt may have left half written. Signatures are kept per
workflow directory and task id, the latest success winning.

The stat cache maps a file's path to its size, modification time and inode
when its content digest was computed, so an unchanged file is not read
again. It is only a cache: a lost row costs one more read of the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .events import DataField, EventKind

TABLES = """
CREATE TABLE signatures (
    base_dir  TEXT NOT NULL,
    task_id   TEXT NOT NULL,
    signature TEXT NOT NULL,
    detail    TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    PRIMARY KEY (base_dir, task_id)
) WITHOUT ROWID;
CREATE TABLE file_states (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    digest   TEXT NOT NULL
) WITHOUT ROWID
"""
"""The tables of schema 3 (`schema` creates them)."""

SIGNATURE_UPSERT = f"""
INSERT INTO signatures (base_dir, task_id, signature, detail, run_id)
SELECT runs.base_dir, e.task_id, e.data->>'{DataField.SIGNATURE}',
       e.data->'{DataField.DETAIL}', :run
FROM events AS e JOIN runs ON runs.run_id = :run
WHERE e.run_id = :run AND e.seq BETWEEN :first AND :last
  AND e.kind = '{EventKind.TASK_SUCCEEDED}' AND e.data->>'{DataField.SIGNATURE}' IS NOT NULL
ORDER BY e.seq
ON CONFLICT (base_dir, task_id) DO UPDATE SET
    signature = excluded.signature, detail = excluded.detail, run_id = excluded.run_id
"""
"""
The signature of each task whose success the batch records with one (a
``task_succeeded`` event carries data only then).
"""


@attrs.frozen
class Recorded:
    """A task's signature at its last recorded success, and what it was computed from."""

    signature: str
    detail: Mapping[str, Any]
    """``command``, ``inputs``, ``upstream`` and ``outputs`` (`uet_trio.running.freshness`)."""


@attrs.frozen
class FileState:
    """A file's digest, and the stat fields it was computed under."""

    size: int
    mtime_ns: int
    inode: int
    digest: str


def read_signatures(conn: sqlite3.Connection, base_dir: str) -> dict[str, Recorded]:
    """The recorded signature of every task of the workflows in `base_dir`."""
    rows = conn.execute(
        "SELECT task_id, signature, detail FROM signatures WHERE base_dir = ?", (base_dir,)
    )
    return {task: Recorded(signature, json.loads(detail)) for task, signature, detail in rows}


def read_file_states(conn: sqlite3.Connection) -> dict[str, FileState]:
    """The whole stat cache, by absolute path."""
    rows = conn.execute("SELECT path, size, mtime_ns, inode, digest FROM file_states")
    return {
        path: FileState(size, mtime, inode, digest) for path, size, mtime, inode, digest in rows
    }


def write_file_states(conn: sqlite3.Connection, states: Iterable[tuple[str, FileState]]) -> None:
    """Add or replace stat cache rows (in the caller's transaction)."""
    conn.executemany(
        "INSERT OR REPLACE INTO file_states (path, size, mtime_ns, inode, digest) "
        "VALUES (?, ?, ?, ?, ?)",
        [(path, s.size, s.mtime_ns, s.inode, s.digest) for path, s in states],
    )
