"""
The states a run and its tasks move through.

Run: ``pending -> running -> succeeded | failed | cancelled``.
Task: ``pending -> ready -> running -> succeeded | failed | skipped | cancelled``,
with ``running -> retry_wait -> ready`` between attempts. Terminal states are final.
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
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class TaskState(enum.StrEnum):
    """Where one task of a run stands."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the task has reached a terminal state."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)
