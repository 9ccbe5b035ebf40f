"""
The store's tables, and how a file of an older schema is brought up to date.

The schema's version is SQLite's ``user_version``: 0 in a new (empty) file,
`SCHEMA_VERSION` once `migrate` has run. A file of a newer version is refused
(`check_version`), so an older uet-trio never writes to a layout it does not
know; a file with tables but version 0 is another program's, and refused too.
"""

from __future__ import annotations

import sqlite3

from ..errors import StoreError
from . import signatures

SCHEMA_VERSION = 4

RESUMED_INDEX = (
    "CREATE INDEX IF NOT EXISTS events_resumed ON events (run_id, seq, at) "
    "WHERE kind = 'run_resumed'"
)
"""
Schema 4: the few ``run_resumed`` events of each run, so that a view's idle
time (`Queries.idle_seconds`) reads them without scanning every event of a
large run. Partial, so an insert of any other event pays nothing for it.
"""

_SCHEMA = """
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    source      TEXT,
    base_dir    TEXT,
    spec_hash   TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    max_workers INTEGER,
    task_count  INTEGER NOT NULL,
    log_dir     TEXT,
    owner_pid   INTEGER,
    owner_start INTEGER,
    last_seq    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE TABLE tasks (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    kind        TEXT,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    tool        TEXT,
    started_at  REAL,
    finished_at REAL,
    exit_code   INTEGER,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    tool        TEXT,
    argv        TEXT,
    status      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    duration    REAL,
    exit_code   INTEGER,
    signal      INTEGER,
    timed_out   INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    result      TEXT,
    pid         INTEGER,
    proc_start  INTEGER,
    worker      INTEGER,
    out_path    TEXT,
    out_offset  INTEGER,
    out_length  INTEGER,
    err_path    TEXT,
    err_offset  INTEGER,
    err_length  INTEGER,
    PRIMARY KEY (run_id, task_id, attempt)
) WITHOUT ROWID;
CREATE TABLE events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    task_id TEXT,
    attempt INTEGER,
    t       REAL NOT NULL,
    at      REAL NOT NULL,
    data    TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE router_state (
    workflow   TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""


def check_version(conn: sqlite3.Connection, path: str, *, check: bool) -> int:
    """
    The file's schema version, after checking that this uet-trio may use it.

    `check` also runs ``PRAGMA quick_check`` (O(size)).

    Raises:
        StoreError: the file is newer, is another program's, or is damaged.
    """
    # One statement, so one snapshot: read apart, a process creating
    # the schema at the same moment could commit in between, and its
    # new tables would look like a foreign file's.
    version, tables = conn.execute(
        "SELECT (SELECT user_version FROM pragma_user_version), "
        "(SELECT count(*) FROM sqlite_master)"
    ).fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: written by a newer uet-trio (schema {version}, this one "
            f"knows {SCHEMA_VERSION}); upgrade uet-trio"
        )
    if version == 0 and tables:
        raise StoreError(
            f"{path}: this SQLite file holds other tables and is not a uet-trio "
            "database; point --db at another path"
        )
    if check:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise StoreError(
                f"{path}: the database is damaged ({verdict}); move it aside and start a new one"
            )
    return int(version)


def migrate(conn: sqlite3.Connection) -> None:
    """Create the schema in a new file, or bring an older one up to date, in one transaction."""

    def _create(script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)

    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            _create(_SCHEMA)
        if version == 1:
            # Schema 2 drops the index on event kinds: every insert paid
            # for it, and the queries it served scan one run's events.
            conn.execute("DROP INDEX IF EXISTS events_by_kind")
        if version < 3:
            # Schema 3 adds what up-to-date checks read: signatures, stat cache.
            _create(signatures.TABLES)
        if version < 4:
            conn.execute(RESUMED_INDEX)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
