"""
The messages between the scheduler and the executors that run its attempts.

The scheduler hands out an `AttemptRequest`; the executor answers with a
`Started` notice once the attempt runs somewhere (its location, recorded for
`uet logs` and for reclaiming it after a crash) and an `AttemptResult` when
it ends. The messages are plain slotted classes, not frozen ones: each is
built once per attempt and read by one task, and a frozen class's
constructor costs twice as much.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..workflow.spec import TaskCallable


@attrs.define(kw_only=True)
class AttemptRequest:
    """Everything needed to execute one attempt of one task."""

    run_id: str
    task_id: str
    index: int
    """The task's position in declaration order."""
    attempt: int
    """1 for the first attempt; numbering continues across resumes."""
    tool: str | None
    argv: tuple[str, ...] | None
    call: TaskCallable | None = attrs.field(default=None, eq=False)
    args: tuple[Any, ...] = attrs.field(default=(), eq=False)
    cwd: str | None
    base_env: Mapping[str, str] | None = attrs.field(default=None, eq=False)
    """The environment shared by the run's commands of this tool (None for callables)."""
    task_env: Mapping[str, str] = attrs.field(factory=dict)
    """The task's own variables, on top of `base_env`."""
    timeout: float | None
    kill_grace: float
    resources: Mapping[str, float] = attrs.field(factory=dict, eq=False)
    """The tool's Dask resources (`ToolSpec.resources`); empty for none."""
    outputs: tuple[str, ...] = ()
    """The task's declared outputs: checked after the attempt (`freshness`)."""
    ok_exit_codes: tuple[int, ...] = (0,)

    @property
    def idempotency_key(self) -> str:
        """``RUN/TASK/ATTEMPT``: names this attempt uniquely, across resumes too."""
        return f"{self.run_id}/{self.task_id}/{self.attempt}"

    @property
    def env(self) -> dict[str, str] | None:
        """
        The complete environment of the command (None for callables): the
        tool's, the task's, then ``UET_RUN_ID``, ``UET_TASK_ID``,
        ``UET_ATTEMPT`` and ``UET_IDEMPOTENCY_KEY``.

        Built when asked for (by an executor that starts a process), so an
        attempt that never does costs no copy of the environment.
        """
        if self.base_env is None:
            return None
        return {
            **self.base_env,
            **self.task_env,
            "UET_RUN_ID": self.run_id,
            "UET_TASK_ID": self.task_id,
            "UET_ATTEMPT": str(self.attempt),
            "UET_IDEMPOTENCY_KEY": self.idempotency_key,
        }


@attrs.define(kw_only=True)
class Started:
    """An executor's notice that an attempt runs, and where."""

    index: int
    attempt: int
    location: Mapping[str, Any]
    """
    Where the attempt runs, as the executor describes it; recorded as the
    data of the ``attempt_spawned`` event and read back only by the executor
    (to reclaim the attempt) and the log views. The local executor gives
    ``pid``, ``proc_start``, ``worker`` and the log files' paths and offsets
    (``out_path``, ``out_offset``, ``err_path``, ``err_offset``).
    """


@attrs.define(kw_only=True)
class AttemptResult:
    """How one attempt ended, as reported to the scheduler."""

    index: int
    attempt: int
    started: float
    """Run-clock time the attempt began executing."""
    ended: float
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    error: str | None = None
    result: Any = None
    """The return value of a callable task."""
    out_length: int = 0
    err_length: int = 0
    outputs: Mapping[str, str] | None = None
    """The digest of each declared output after a successful attempt."""
    lost: bool = False
    """The attempt's executor lost it (a remote worker died): recorded ``lost``, not ``failed``."""

    def ok(self, ok_exit_codes: tuple[int, ...] = (0,)) -> bool:
        """Whether the attempt succeeded: it ended by itself, with one of `ok_exit_codes`."""
        return (
            self.exit_code in ok_exit_codes
            and not self.timed_out
            and self.error is None
            and not self.lost
        )

    @property
    def duration(self) -> float:
        return self.ended - self.started


@attrs.define(kw_only=True)
class CheckRequest:
    """
    Compute a task's signature and whether it is up to date, before it runs.

    Asked for a task that declares outputs, or that a task declaring outputs
    depends on (whose signature then covers this one's).
    """

    index: int
    task_id: str
    argv: tuple[str, ...] | None
    env: Mapping[str, str]
    """The variables the task's tool and the task set (not the runner's own environment)."""
    cwd: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    upstream: tuple[tuple[str, tuple[str, ...]], ...]
    """Each task it depends on, with that task's declared outputs."""
    judged: bool
    """Whether it may be found up to date (it declares outputs, and the run does not run all)."""


@attrs.define(kw_only=True)
class Verdict:
    """The answer to a `CheckRequest`."""

    index: int
    fresh: bool
    reason: str
    """Why it must run ("never run", "input changed: a.c", ...); empty when fresh."""
    signature: str
    detail: Mapping[str, Any]
    """What the signature was computed from, recorded with the task's success."""
