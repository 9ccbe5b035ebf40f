"""
What a failed task printed, shown where people look: under its ``FAILED`` line.

`uet run` feeds `FailureTails` the run's events as they happen. It keeps,
per task, where its latest attempt's output lies (the attempt's spawn event
names each stream's log file and offset, its finish event the lengths) and,
when the task fails, reads the last lines of both streams straight from
the log files: the attempt's row may not be committed yet, and the events
already say all that is needed. `uet show` renders the same lines from the
store (`tail_block`). Text from the task is made visible (`visible`) before
it reaches a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._common import visible

if TYPE_CHECKING:
    from uet_trio import Event

STREAMS = ("stdout", "stderr")


def tail_block(tails: dict[str, list[str]], unavailable: dict[str, str | None]) -> list[str]:
    """
    The lines shown for one failed task: each stream's name, then its last lines.

    `tails` maps a stream name to its last lines; `unavailable` to why it
    could not be read (or None). Streams with nothing to show are left out.
    """
    lines: list[str] = []
    for stream in STREAMS:
        why = unavailable.get(stream)
        shown = [f"({why})"] if why is not None else tails.get(stream, [])
        if shown:
            lines.append(f"    {stream}:")
            lines.extend(f"    | {visible(line)}" for line in shown)
    return lines


class FailureTails:
    """
    The output locations of the run's latest attempts, and the tails of failed tasks.

    Only the tasks that have not ended are held: a task's entry goes when
    it succeeds, so a run of 100,000 tasks keeps a handful.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        """Lines of each stream to show; 0 shows none (and records nothing)."""
        self._where: dict[str, dict[str, Any]] = {}

    def event(self, event: Event) -> None:
        """Note where an attempt's output lies, or drop a task that ended well."""
        from uet_trio import DataField, EventKind

        if not self.count or event.task_id is None:
            return
        kind = event.kind
        if kind is EventKind.ATTEMPT_SPAWNED:
            self._where[event.task_id] = dict(event.data)
        elif kind is EventKind.ATTEMPT_FINISHED:
            where = self._where.get(event.task_id)
            if where is not None:
                where[DataField.OUT_LENGTH] = event.data.get(DataField.OUT_LENGTH)
                where[DataField.ERR_LENGTH] = event.data.get(DataField.ERR_LENGTH)
        elif kind is EventKind.ATTEMPT_STARTED:
            # A new attempt that fails before spawning must not show the last one's output.
            self._where.pop(event.task_id, None)
        elif kind in (EventKind.TASK_SUCCEEDED, EventKind.TASK_CANCELLED):
            self._where.pop(event.task_id, None)

    def lines(self, task_id: str) -> list[str]:
        """The labelled last lines of the failed task's latest attempt (none if it spawned none)."""
        from uet_trio import DataField, LogUnavailable, slice_tail

        where = self._where.pop(task_id, None)
        if where is None:
            return []
        fields = (
            ("stdout", DataField.OUT_PATH, DataField.OUT_OFFSET, DataField.OUT_LENGTH),
            ("stderr", DataField.ERR_PATH, DataField.ERR_OFFSET, DataField.ERR_LENGTH),
        )
        tails: dict[str, list[str]] = {}
        unavailable: dict[str, str | None] = {}
        for stream, path, offset, length in fields:
            if where.get(path) is None or where.get(length) is None:
                continue
            try:
                tails[stream] = slice_tail(where[path], where[offset], where[length], self.count)
            except LogUnavailable as error:
                unavailable[stream] = str(error)
        return tail_block(tails, unavailable)
