"""
How events are recorded: encoded rows in, then their projection onto the
``runs``, ``tasks`` and ``attempts`` tables, in SQL.

Encoding (`EventBuffer.add`) happens as each event is sent: its fields and
its data, through the C JSON encoder, are appended to one flat list of
statement parameters. Nothing per event stays alive in the meantime (only
strings and numbers, which the garbage collector does not track, so a queue
of thousands of events costs no collections). `EventBuffer.take` cuts the
list into a few cached multi-row ``INSERT`` statements. Writing
(`Store.write_rows`) then runs only SQLite: the inserts, and the projection
statements below, which read the batch back from the ``events`` table by its
sequence range: a row per attempt started, then its process and how it
ended, then one row change per task (its last state) and for the run. The
kinds of event in a batch choose the statements (`projection_for`): each
runs only when the batch holds a kind it reads, only a batch with a
run-level event is scanned for the run's status, and a batch in which
``task_ready`` is the only kind they read (a first level, ready at once)
just readies its tasks, without grouping by task. A writer thread holds the
GIL only to start each statement, so the event loop keeps running while a
batch is written.

The tables can never disagree with the event log: they are written in the
same transaction, from the same rows. Writing a batch again changes nothing
(``INSERT OR IGNORE`` on the natural keys; a terminal attempt is final).
Projection parameters: ``:run`` (run id), ``:first`` and ``:last`` (the
batch's sequence range).
"""

from __future__ import annotations

import functools
import json.encoder
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

from .events import (
    PAYLOAD,
    RUN_STATUS_AFTER,
    TASK_STATE_AFTER,
    DataField,
    Event,
    EventFields,
    EventKind,
)
from .signatures import SIGNATURE_UPSERT
from .states import AttemptStatus, RunStatus, TaskState

CHUNK_SIZES = (4096, 1024, 256, 64, 16, 4, 1)
"""Rows per ``INSERT`` statement: a batch is cut into the largest that fit,
so a handful of cached statements serve every batch size. 4096 rows of 6
parameters stay under SQLite's limit of 32,766."""


def chunks(count: int) -> Iterator[tuple[int, int]]:
    """(start, size) of the statements that insert `count` rows, by `CHUNK_SIZES`."""
    start = 0
    for size in CHUNK_SIZES:
        while count - start >= size:
            yield start, size
            start += size


_WIDTH = 6
"""Parameters per event row: seq, kind, time, task_id, attempt, data (the run
id is one parameter per statement)."""


@attrs.frozen
class EventRows:
    """A batch of events of one run, encoded as statements for `Store.write_rows`."""

    run_id: str
    first: int
    """The lowest sequence number in the batch."""
    last: int
    """The highest sequence number in the batch."""
    statements: list[tuple[str, list[Any]]]
    count: int
    """How many events."""
    kinds: frozenset[EventKind]
    """The kinds of event in the batch (they choose its projection: `projection_for`)."""


def _plain(value: object) -> object:
    """What the JSON encoder writes for a value it has no rule for."""
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


# The C encoder itself (a private CPython function), called once per event's
# data: 1.19 us for an attempt_finished's data against 2.49 us through the
# public json.JSONEncoder.encode (3.08 us for json.dumps), about 2.6 us per
# task, 9% of an in-process task of perf/bench_inprocess.py.
_encode_data = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _plain, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
)
_KIND_CODE = {kind: code for code, kind in enumerate(EventKind)}
"""Each kind's number in the insert statements (an int binds in a third of a string's time)."""
_KIND_OF_CODE = list(EventKind)
"""Each number's kind (the inverse of `_KIND_CODE`)."""
_KIND_NAME = " ".join(f"WHEN {code} THEN '{kind.value}'" for kind, code in _KIND_CODE.items())


@functools.cache
def _insert(rows: int) -> str:
    """
    ``INSERT`` of `rows` events. Parameters: per event its row (see
    `_WIDTH`), then the run id and the wall-clock start, so a statement's
    parameters are one slice of the buffer plus two.

    The writer thread holds the GIL while the sqlite3 module binds
    parameters, so they are bound in the cheapest types: the kind as its
    number (`_KIND_CODE`), and a missing task id, attempt or data as ``''``,
    ``0`` and ``''`` (no task id is empty and attempts count from 1), stored
    as NULL, since ``None`` goes through the module's adaptation lookup and
    costs ten times an int. The rows' parameters are plain ``?``: numbered
    ones make SQLite's parse time grow with the square of their count; the
    last two are numbered, and come after the rows in the text so that the
    plain ones are numbered first.
    """
    values = ",".join(("(?,?,?,?,?,?)",) * rows)
    run, wall = rows * _WIDTH + 1, rows * _WIDTH + 2
    return (
        f"WITH batch AS (VALUES {values}) "
        "INSERT OR IGNORE INTO events (run_id, seq, kind, t, task_id, attempt, at, data) "
        f"SELECT ?{run}, column1, CASE column2 {_KIND_NAME} END, column3, "
        f"nullif(column4, ''), nullif(column5, 0), column3 + ?{wall}, nullif(column6, '') "
        "FROM batch"
    )


class EventBuffer:
    """Events of one run, encoded as they are added, taken as insert statements."""

    def __init__(self) -> None:
        self._params: list[Any] = []
        self._run_id = ""

    def __len__(self) -> int:
        return len(self._params) // _WIDTH

    def add(self, event: EventFields) -> None:
        """
        Encode `event` (its kind must be an `EventKind`) at the end of the buffer.

        Events of a run are added in sequence order, as the scheduler numbers them.
        """
        self._run_id = event[0]
        self._params += (
            event[1],
            _KIND_CODE[event[2]],
            event[3],
            event[4] or "",
            event[5] or 0,
            "".join(_encode_data(event[6], 0)) if event[6] else "",
        )

    def take(self, limit: int, wall_start: float) -> EventRows:
        """
        The first `limit` events (or all, if fewer; at least one) as insert
        statements, removed from the buffer.

        `wall_start` is the Unix time at which the run clock read zero; each
        row records both the run-clock time and the wall-clock time.
        """
        count = min(limit, len(self))
        params = self._params
        statements: list[tuple[str, list[Any]]] = []
        for start, size in chunks(count):
            chunk = params[start * _WIDTH : (start + size) * _WIDTH]
            chunk += (self._run_id, wall_start)
            statements.append((_insert(size), chunk))
        # Events are added in sequence order, so the range is the first and last row's.
        rows = EventRows(
            run_id=self._run_id,
            first=params[0],
            last=params[(count - 1) * _WIDTH],
            statements=statements,
            count=count,
            kinds=frozenset(
                _KIND_OF_CODE[code] for code in set(params[1 : count * _WIDTH : _WIDTH])
            ),
        )
        del params[: count * _WIDTH]
        return rows


def encode_events(events: Sequence[Event], wall_start: float) -> EventRows:
    """`events` (of one run, non-empty) as insert statements."""
    buffer = EventBuffer()
    for event in events:
        buffer.add(event)
    return buffer.take(len(events), wall_start)


_BATCH = "run_id = :run AND seq BETWEEN :first AND :last"


def _listed(values: Iterable[str]) -> str:
    """`values` (kinds or states, which need no escaping) as an SQL list: ``('a', 'b')``."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def _value(field: DataField) -> str:
    """The SQL that reads `field` of an event's data as an SQL value."""
    return f"e.data->>'{field}'"


def _copied(fields: Iterable[DataField]) -> str:
    """``SET`` clauses copying each of `fields` into the column of the same name."""
    return ",\n    ".join(f"{field} = {_value(field)}" for field in fields)


_F = DataField
_RUNNING = AttemptStatus.RUNNING
_TASK_MOVES = tuple(TASK_STATE_AFTER)
_TASK_ENDS = tuple(kind for kind, state in TASK_STATE_AFTER.items() if state.finished)
_TASK_SUCCESSES = tuple(
    kind for kind, state in TASK_STATE_AFTER.items() if state is TaskState.SUCCEEDED
)
_RUN_FINISHED = _listed(status for status in RunStatus if status.finished)
_KEPT_ON_RESUME = (TaskState.SUCCEEDED, TaskState.UP_TO_DATE)
"""The task states a resumed run keeps: the tasks that need not run again."""
_RUN_REOPENS = (EventKind.RUN_RESUMED,)
"""The run-level events that start a new part of a finished run (`RUN_STATUS_AFTER`)."""
_RUN_ENDS = tuple(kind for kind, status in RUN_STATUS_AFTER.items() if status is None)

ATTEMPT_INSERT = f"""
INSERT OR IGNORE INTO attempts (run_id, task_id, attempt, tool, argv, status, started_at)
SELECT :run, task_id, attempt, data->>'{_F.TOOL}', data->'{_F.ARGV}', '{_RUNNING}', at
FROM events
WHERE {_BATCH} AND kind = '{EventKind.ATTEMPT_STARTED}'
"""
"""A row per attempt started in the batch."""

ATTEMPT_SPAWN = f"""
UPDATE attempts SET
    {_copied(DataField(field) for field in PAYLOAD[EventKind.ATTEMPT_SPAWNED].required)}
FROM (
    SELECT task_id, attempt, data FROM events
    WHERE {_BATCH} AND kind = '{EventKind.ATTEMPT_SPAWNED}'
) AS e
WHERE attempts.run_id = :run AND attempts.task_id = e.task_id AND attempts.attempt = e.attempt
  AND attempts.status = '{_RUNNING}'
"""
"""
Where each attempt spawned in the batch runs: every required field of
``attempt_spawned`` is a column of the same name (an optional one, such as a
remote worker's address, stays in the event). A terminal attempt is final.
"""

ATTEMPT_FINISH = f"""
UPDATE attempts SET
    status = coalesce({_value(_F.STATUS)}, '{AttemptStatus.LOST}'),
    finished_at = e.at,
    {_copied((_F.DURATION, _F.EXIT_CODE, _F.SIGNAL, _F.ERROR, _F.OUT_LENGTH, _F.ERR_LENGTH))},
    timed_out = coalesce({_value(_F.TIMED_OUT)}, 0),
    result = nullif(e.data->'{_F.RESULT}', 'null')
FROM (
    SELECT task_id, attempt, data, at FROM events
    WHERE {_BATCH} AND kind IN {_listed((EventKind.ATTEMPT_FINISHED, EventKind.ATTEMPT_LOST))}
) AS e
WHERE attempts.run_id = :run AND attempts.task_id = e.task_id AND attempts.attempt = e.attempt
  AND attempts.status = '{_RUNNING}'
"""
"""How each attempt that ended in the batch ended; a terminal attempt is final."""


_END_SEQ = "CASE kind " + " ".join(f"WHEN '{kind}' THEN seq" for kind in _TASK_ENDS) + " END"
"""An event's sequence number if it ends its task, else NULL (cheaper per row than ``IN``)."""


def _started_before_end(column: str, condition: str = "") -> str:
    """
    `column` of the task's ``attempt_started`` events in the batch up to its
    end (``t.seq``), for a task with events after its end.
    """
    return (
        f"(SELECT {column} FROM events AS s WHERE s.run_id = :run "
        "AND s.seq BETWEEN :first AND t.seq AND s.task_id = t.task_id "
        f"AND s.kind = '{EventKind.ATTEMPT_STARTED}'{condition})"
    )


TASK_UPDATE = f"""
UPDATE tasks SET
    state = CASE last.kind {
    " ".join(f"WHEN '{kind}' THEN '{state}'" for kind, state in TASK_STATE_AFTER.items())
} END,
    attempts = coalesce(g.started, attempts),
    tool = CASE WHEN g.started IS NULL OR tasks.kind IS NULL THEN tool ELSE (
        SELECT a.tool FROM attempts AS a
        WHERE a.run_id = :run AND a.task_id = g.task_id AND a.attempt = g.started) END,
    started_at = coalesce(g.first_start, started_at),
    finished_at = CASE WHEN last.kind IN {_listed(_TASK_ENDS)} THEN last.at ELSE finished_at END,
    exit_code = CASE WHEN last.kind IN {_listed(_TASK_SUCCESSES)}
                     THEN coalesce(last.data->>'{_F.EXIT_CODE}', 0)
                     WHEN last.kind IN {_listed(_TASK_ENDS)}
                     THEN last.data->>'{_F.EXIT_CODE}'
                     ELSE exit_code END
FROM (
    SELECT task_id, seq,
           CASE WHEN seq = latest THEN started
                ELSE {_started_before_end("max(s.attempt)")} END AS started,
           CASE WHEN seq = latest THEN first_start
                ELSE {_started_before_end("min(s.at)", " AND s.attempt = 1")} END AS first_start
    FROM (
        SELECT task_id,
               coalesce(min({_END_SEQ}), max(seq)) AS seq,
               max(seq) AS latest,
               max(CASE WHEN kind = '{EventKind.ATTEMPT_STARTED}' THEN attempt END) AS started,
               min(CASE WHEN kind = '{EventKind.ATTEMPT_STARTED}' AND attempt = 1 THEN at END)
                   AS first_start
        FROM events
        WHERE {_BATCH} AND kind IN {_listed(_TASK_MOVES)}
        GROUP BY task_id
    ) AS t
) AS g
JOIN events AS last ON last.run_id = :run AND last.seq = g.seq
WHERE tasks.run_id = :run AND tasks.task_id = g.task_id AND tasks.finished_at IS NULL
"""
"""
One row change per task in the batch, from `TASK_STATE_AFTER`: its state is
that of its first event that ends it, or else of its last event; the first
attempt's start sets ``started_at``, the last attempt's tool sets ``tool``
(looked up only for a task with a kind: no other has a tool); an ending
event sets the finish time and exit code (0 for a success, which carries no
data). A finished task's row is final: neither a later batch nor the
events after its end in the same batch change it (those are read again,
only for such a task, to count its attempts up to its end). A task has a
finish time exactly when its state is a finished one (this statement sets
both, `RESUME_UPDATE` clears both), and the row is tested by its finish
time, which costs less per row than comparing its state with each finished one.
"""

RESUME_UPDATE = f"""
UPDATE tasks SET state = '{TaskState.PENDING}', finished_at = NULL, exit_code = NULL
WHERE run_id = :run AND state NOT IN {_listed(_KEPT_ON_RESUME)}
"""
"""
The tasks of a run that is resumed (a batch with ``run_resumed``): every task
not succeeded nor up to date is pending again, as the scheduler resumes it, so that the new
part of the run can move the tasks that had ended.
"""

RUN_UPDATE = f"""
UPDATE runs SET
    last_seq = max(last_seq, :last),
    status = CASE WHEN NOT r.moves THEN status {
    " ".join(
        f"WHEN r.kind = '{kind}' THEN "
        + (f"r.data->>'{_F.STATUS}'" if status is None else f"'{status}'")
        for kind, status in RUN_STATUS_AFTER.items()
    )
} END,
    started_at = coalesce(started_at, (
        SELECT at FROM events WHERE {_BATCH} AND kind = '{EventKind.RUN_STARTED}')),
    finished_at = CASE WHEN NOT r.moves THEN finished_at
                       WHEN r.kind IN {_listed(_RUN_ENDS)} THEN r.at ELSE NULL END,
    owner_pid = CASE WHEN r.moves AND r.kind IN {_listed(_RUN_ENDS)} THEN NULL
                     ELSE owner_pid END,
    owner_start = CASE WHEN r.moves AND r.kind IN {_listed(_RUN_ENDS)} THEN NULL
                       ELSE owner_start END
FROM (
    SELECT e.kind, e.data, e.at,
           b.reopened IS NOT NULL
           OR (SELECT status FROM runs WHERE run_id = :run) NOT IN {_RUN_FINISHED} AS moves
    FROM (
        SELECT max(CASE WHEN kind IN {_listed(_RUN_REOPENS)} THEN seq END) AS reopened,
               max(seq) AS latest
        FROM events
        WHERE {_BATCH} AND kind IN {_listed(RUN_STATUS_AFTER)}
    ) AS b
    JOIN events AS e ON e.run_id = :run AND e.seq = coalesce((
        SELECT min(seq) FROM events
        WHERE {_BATCH} AND kind IN {_listed(_RUN_ENDS)} AND seq > coalesce(b.reopened, 0)
    ), b.latest)
) AS r
WHERE runs.run_id = :run
"""
"""
The run row, from `RUN_STATUS_AFTER`: the highest sequence number recorded
(always: a resumed run numbers its events from it), and the status that the
batch's first run-ending event gives, or else its last run-level event. A
finished run's row is final, except that ``run_resumed`` starts it again
(then the first end after the last resumption counts).
"""

RUN_LAST_SEQ = "UPDATE runs SET last_seq = max(last_seq, :last) WHERE run_id = :run"
"""The run row for a batch without a run-level event: only the highest
sequence number changes, and the batch is not scanned for run events."""

READY_UPDATE = f"""
UPDATE tasks SET state = '{TASK_STATE_AFTER[EventKind.TASK_READY]}'
WHERE run_id = :run AND finished_at IS NULL AND task_id IN (
    SELECT task_id FROM events WHERE {_BATCH} AND kind = '{EventKind.TASK_READY}'
)
"""
"""
The tasks of a batch in which ``task_ready`` is the only kind the task
projection reads (a run's first level, all ready at once, with the routes
chosen for it): each becomes ready, as `TASK_UPDATE` would make it
(a finished task, one with a finish time, stays as it is), without
grouping the batch by task (half the cost).
"""

TASK_PROJECTION: tuple[tuple[str, frozenset[EventKind]], ...] = (
    (ATTEMPT_INSERT, frozenset({EventKind.ATTEMPT_STARTED})),
    (ATTEMPT_SPAWN, frozenset({EventKind.ATTEMPT_SPAWNED})),
    (ATTEMPT_FINISH, frozenset({EventKind.ATTEMPT_FINISHED, EventKind.ATTEMPT_LOST})),
    (TASK_UPDATE, frozenset(TASK_STATE_AFTER)),
    (SIGNATURE_UPSERT, frozenset({EventKind.TASK_SUCCEEDED})),
)
"""
The projection onto attempts and tasks, in order (the attempts before the
tasks that read them), each statement with the kinds of event it reads.
"""

_RUN_LEVEL = frozenset(RUN_STATUS_AFTER)
_TASK_READS = frozenset().union(*(reads for _, reads in TASK_PROJECTION))
_READY_ONLY = frozenset({EventKind.TASK_READY})


def projection_for(kinds: AbstractSet[EventKind]) -> tuple[str, ...]:
    """
    The statements that project a batch holding events of `kinds`, in order.

    Onto tasks, first: `RESUME_UPDATE` when the batch resumes the run. Onto
    attempts and tasks: each statement of `TASK_PROJECTION` that reads one
    of `kinds`, or `READY_UPDATE` alone when ``task_ready`` is the only kind
    among them that any of those statements reads. Onto the run:
    `RUN_UPDATE` when the batch holds a run-level event, otherwise
    `RUN_LAST_SEQ`.
    """
    resume = (RESUME_UPDATE,) if EventKind.RUN_RESUMED in kinds else ()
    run = RUN_UPDATE if kinds & _RUN_LEVEL else RUN_LAST_SEQ
    if kinds & _TASK_READS == _READY_ONLY:
        return (*resume, READY_UPDATE, run)
    return (*resume, *(statement for statement, reads in TASK_PROJECTION if kinds & reads), run)
