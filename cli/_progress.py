"""
The live progress line of ``uet run`` on a terminal.

One status line at the bottom of the terminal, rewritten in place::

    [#########-----------]  23/54 done  4 running  1 failed  12.3s  ETA 9.8s

It is fed the run's events in memory, through the same subscription every
embedding program gets, and never reads the store. Feeding it an event only
updates counters, so a busy run pays a few additions per event; drawing
happens in a separate Trio task that redraws at most `FRAME` times a second,
and only when something changed (or once a second, to advance the clock). It
is created only when stdout is a terminal; lines printed while it is shown go
through `ProgressLine.echo`, which clears it first so the two never mix. A
terminal that goes away (it hung up, or was closed) fails the next write: the
stream is silenced (`_common.silence`) and the line is neither drawn nor
printed again, while the run goes on.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

from ._common import seconds, silence

if TYPE_CHECKING:
    from uet_trio import Event

FRAME = 0.1
"""Seconds between redraws, at the most."""
IDLE_REDRAW = 1.0
"""Seconds after which the line is redrawn even if no event arrived (the clock moves)."""
BAR_WIDTH = 20


class ProgressLine:
    """Counters of a run in progress and the single terminal line that shows them."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self.running = 0
        self.failed = 0
        self.workers = 1
        self.busy = 0.0
        self.measured = 0
        self.started = time.monotonic()
        self._dirty = True
        self._shown = False
        self._drawn_at = 0.0
        self._gone = False

    @classmethod
    def for_stdout(cls) -> ProgressLine | None:
        """A progress line on stdout if stdout is a terminal, else None."""
        stdout = sys.stdout
        return cls(stdout) if stdout is not None and stdout.isatty() else None

    def start(self, total: int) -> None:
        """The run has `total` tasks and starts now."""
        self.total = total
        self.started = time.monotonic()
        self._dirty = True

    def event(self, event: Event) -> None:
        """Count one event of the run; cheap, never draws."""
        from uet_trio import DataField, EventKind

        kind = event.kind
        if kind is EventKind.ATTEMPT_STARTED:
            self.running += 1
        elif kind is EventKind.ATTEMPT_FINISHED:
            self.running = max(0, self.running - 1)
            duration = event.data.get(DataField.DURATION)
            if duration is not None:
                self.busy += duration
                self.measured += 1
        elif kind is EventKind.TASK_FAILED:
            self.failed += 1
            self.done += 1
        elif kind in (
            EventKind.TASK_SUCCEEDED,
            EventKind.TASK_UP_TO_DATE,
            EventKind.TASK_SKIPPED,
            EventKind.TASK_CANCELLED,
        ):
            self.done += 1
        elif kind is EventKind.RUN_STARTED or kind is EventKind.RUN_RESUMED:
            self.workers = max(1, int(event.data.get(DataField.WORKERS) or 1))
            self.done += int(event.data.get(DataField.KEPT) or 0)
        else:
            return
        self._dirty = True

    def eta(self) -> float | None:
        """
        Seconds until the run ends, estimated from the attempt durations seen so far.

        The remaining tasks at the mean duration, spread over the workers;
        None until an attempt has finished.
        """
        if not self.measured:
            return None
        remaining = max(0, self.total - self.done)
        return remaining * (self.busy / self.measured) / max(1, min(self.workers, remaining or 1))

    def render(self, width: int) -> str:
        """The status line, at most `width` characters."""
        filled = BAR_WIDTH * self.done // self.total if self.total else 0
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta = self.eta()
        parts = [
            f"[{bar}]",
            f"{self.done}/{self.total} done",
            f"{self.running} running",
            f"{self.failed} failed",
            seconds(time.monotonic() - self.started),
            f"ETA {seconds(eta)}" if eta is not None else "ETA -",
        ]
        return "  ".join(parts)[: max(1, width - 1)]

    def draw(self) -> None:
        """Rewrite the line in place now."""
        width = shutil.get_terminal_size((80, 24)).columns
        self._write("\r\x1b[K" + self.render(width))
        self._shown = True
        self._dirty = False
        self._drawn_at = time.monotonic()

    def refresh(self) -> None:
        """Redraw if something changed, or if the clock shown is a second stale."""
        if self._dirty or time.monotonic() - self._drawn_at >= IDLE_REDRAW:
            self.draw()

    def echo(self, text: str) -> None:
        """Print a line of output above the progress line (it is redrawn on the next frame)."""
        self.clear()
        self._write(text + "\n")

    def clear(self) -> None:
        """Remove the line from the terminal, if it is shown."""
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False
            self._dirty = True

    def _write(self, text: str) -> None:
        """Write and flush `text`, unless the terminal has gone away (then silence it)."""
        if self._gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            self._gone = True
            if self.stream is sys.stdout:
                silence(err=False)

    async def animate(self) -> None:
        """Redraw every `FRAME` seconds as needed, until cancelled (then clear the line)."""
        import trio

        try:
            while True:
                self.refresh()
                await trio.sleep(FRAME)
        finally:
            self.clear()
