"""
The scripted executor: attempts that end by script, on the Trio clock, starting no process.

`FakeRunner` plugs into the engine through the same executor seam
(`AttemptRunner`) as the real `LocalRunner`: each attempt sleeps for its
scripted duration on the Trio clock and ends with its scripted outcome,
under the same timeout, retry and cancellation rules. Under a
`trio.testing.MockClock` virtual time passes instantly and the event
sequence is identical run after run (`uet_trio.running.simulation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import trio
import trio.testing

from ...deciding.attempts import AttemptRequest, AttemptResult
from .base import Report, StatelessRunner


def _non_negative(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"Outcome.{attribute.name} must be a number >= 0, got {value!r}")


@attrs.frozen
class Outcome:
    """The scripted end of one attempt."""

    duration: float = attrs.field(validator=_non_negative)
    """Seconds on the run clock the attempt takes."""
    exit_code: int = 0
    """0 for success; anything else is a failed attempt (retried if the policy allows)."""
    timed_out: bool = False
    """End as a timeout (after `duration`, or earlier at the task's timeout)."""


_INSTANT = Outcome(0.0)

Script = Mapping[str, Outcome | Sequence[Outcome]] | Callable[[str, int], Outcome]


class FakeRunner(StatelessRunner):
    """
    Executes attempts by script instead of by process.

    The script maps a task id to one `Outcome` (every attempt), or a list
    (attempt 1, 2, ...; the last repeats), or is a callable
    ``(task_id, attempt) -> Outcome``. Tasks the script does not name take
    `default`. No process is started: a callable task's function is not
    called either. Raises `ValueError` for a script entry that is not an
    `Outcome` or a non-empty list of them.
    """

    def __init__(self, script: Script | None = None, *, default: Outcome = _INSTANT) -> None:
        if script is not None and not callable(script):
            for task_id, entry in script.items():
                outcomes = [entry] if isinstance(entry, Outcome) else list(entry)
                if not outcomes or not all(isinstance(o, Outcome) for o in outcomes):
                    raise ValueError(
                        f"script entry for task {task_id!r} must be an Outcome or a non-empty "
                        f"list of Outcomes, got {entry!r}"
                    )
        self._script = script if script is not None else {}
        self._default = default
        self.calls: list[tuple[str, int, float]] = []
        """(task id, attempt, start time on the Trio clock) of every attempt, in start order."""

    def outcome(self, task_id: str, attempt: int) -> Outcome:
        """The scripted outcome of `attempt` of `task_id`."""
        if callable(self._script):
            return self._script(task_id, attempt)
        entry = self._script.get(task_id, self._default)
        if isinstance(entry, Outcome):
            return entry
        return entry[min(attempt, len(entry)) - 1]

    async def settle(self) -> None:
        """
        Return once every other task is blocked.

        Under a `MockClock` every attempt ending at the current virtual
        instant has then delivered its result, so the scheduler sees ties
        together and orders them canonically. (It also means a simulated run
        must not share its Trio run with a task that never blocks.)
        """
        await trio.testing.wait_all_tasks_blocked()

    async def run(self, request: AttemptRequest, report: Report) -> AttemptResult:
        """Sleep the scripted duration (bounded by the attempt's timeout), then report it."""
        outcome = self.outcome(request.task_id, request.attempt)
        started = trio.current_time()
        self.calls.append((request.task_id, request.attempt, started))
        timeout = request.timeout if request.timeout is not None else float("inf")
        with trio.move_on_after(timeout) as deadline:
            await trio.sleep(outcome.duration)
        timed_out = deadline.cancelled_caught or outcome.timed_out
        return AttemptResult(
            index=request.index,
            attempt=request.attempt,
            started=started,
            ended=trio.current_time(),
            exit_code=None if timed_out else outcome.exit_code,
            timed_out=timed_out,
        )
