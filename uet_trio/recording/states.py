"""
The states a run, its tasks and their attempts move through.

Run: ``pending -> running -> succeeded | failed | cancelled``.
Task: ``pending -> ready -> running -> succeeded | failed | skipped | cancelled``,
with ``running -> retry_wait -> ready`` between attempts. Attempt: ``running ->
succeeded | failed | timed_out | cancelled | lost``. Terminal states are final
(a resumed run starts its unfinished tasks again as new attempts).

Each enum is a `enum.StrEnum`, equal to the text the store holds, and its
``finished`` property is the one definition of which states are terminal:
the store's SQL and the CLI take their lists from it.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """Where a run stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the run has ended."""
        return self in _RUN_TERMINAL


class TaskState(enum.StrEnum):
    """Where one task of a run stands."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    UP_TO_DATE = "up_to_date"
    """Not run: its outputs exist and its signature is the one recorded at its last success."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the task has reached a terminal state."""
        return self in _TASK_TERMINAL


class AttemptStatus(enum.StrEnum):
    """How one attempt of a task stands: running, or how it ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    """Stopped because its run was cancelled."""
    LOST = "lost"
    """
    Its runner died (found still running when the run was resumed), or the
    remote worker running it died.
    """

    @property
    def finished(self) -> bool:
        """Whether the attempt has ended."""
        return self is not AttemptStatus.RUNNING


_RUN_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
_TASK_TERMINAL = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.UP_TO_DATE,
        TaskState.FAILED,
        TaskState.SKIPPED,
        TaskState.CANCELLED,
    }
)
