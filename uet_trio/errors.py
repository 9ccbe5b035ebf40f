"""
The one exception hierarchy of uet-trio.

Every error the library raises on purpose derives from `UetError` and carries
the process exit status a command-line front end should use for it, so the CLI
converts errors to exit codes in exactly one place and the library never exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class UetError(Exception):
    """Base class of every error uet-trio raises deliberately."""

    exit_code = 1


class WorkflowError(UetError):
    """
    A workflow definition is invalid.

    The message names the file (when there is one), the task (when the problem
    belongs to one) and the field, so a user can go straight to the mistake.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.task = task
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.task is not None:
            where.append(f"task {self.task!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def in_file(self, path: Path | str) -> WorkflowError:
        """Return a copy of this error that also names the file it came from."""
        error = type(self).__new__(type(self))
        WorkflowError.__init__(error, self.message, path=path, task=self.task, field=self.field)
        if isinstance(self, CycleError):
            assert isinstance(error, CycleError)
            error.cycle = self.cycle
        return error


class CycleError(WorkflowError):
    """
    The task dependencies form a cycle.

    `cycle` lists it with the first task repeated last; each task depends on the next.
    """

    cycle: tuple[str, ...]

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            "dependency cycle: " + " -> ".join(self.cycle),
            task=self.cycle[0],
            field="depends_on",
        )


class StoreError(UetError):
    """
    The run database cannot be used; the message says which file and what to do.

    `transient` is true when the same write may succeed if tried again (the
    database was locked by another process past the busy timeout).
    """

    exit_code = 4

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class RunNotFound(UetError):
    """No run in the store matches the given id or prefix."""

    exit_code = 3


class RunConflict(UetError):
    """The run cannot be taken: another live process owns it, or it cannot be resumed."""

    exit_code = 3
