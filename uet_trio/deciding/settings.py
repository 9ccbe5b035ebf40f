"""
A task's effective settings: task over tool over workflow, resolved in one place.

The scheduler builds each attempt's request from them, and `uet plan` and
simulations show and use the same values, so what a plan says is what a run
does. A task routed to another tool (a fallback) resolves again for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..workflow.spec import RetryPolicy, TaskSpec, ToolSpec, WorkflowSpec

NO_RETRY = RetryPolicy()
"""The policy of a task for which nothing sets one: never retry."""

SHOWN_ARG_BYTES = 4096
"""Most UTF-8 bytes of one argument as recorded or shown (`bounded_argv`)."""
SHOWN_ARGV_BYTES = 65536
"""Most UTF-8 bytes of all arguments as recorded or shown, markers aside (`bounded_argv`)."""


def bounded_argv(argv: tuple[str, ...]) -> tuple[tuple[str, ...], int | None]:
    """
    `argv` bounded for recording and showing, and its full size in bytes if it was cut.

    A command may be megabytes long (the kernel refuses one past its limit;
    the attempt then fails with 126), but every attempt's argv is stored
    twice (in its ``attempt_started`` event and its ``attempts`` row), so
    only a prefix is kept: each argument at most `SHOWN_ARG_BYTES`, cut
    ones ending in ``...[N bytes]`` (N its full size), and arguments after
    `SHOWN_ARGV_BYTES` in all replaced by one ``...[K more arguments]``.
    Returns (argv, None) when nothing was cut, which is the common case and
    is decided from the lengths alone. The executed command is never cut.
    """
    if sum(map(len, argv)) * 4 <= SHOWN_ARG_BYTES:
        return argv, None  # four bytes per character at most: nothing to cut
    encoded = [arg.encode("utf-8", "surrogateescape") for arg in argv]
    sizes = [len(arg) for arg in encoded]
    total = sum(sizes)
    if max(sizes) <= SHOWN_ARG_BYTES and total <= SHOWN_ARGV_BYTES:
        return argv, None
    shown: list[str] = []
    kept = 0
    for i, (arg, data) in enumerate(zip(argv, encoded, strict=True)):
        if kept >= SHOWN_ARGV_BYTES:
            shown.append(f"...[{len(argv) - i} more arguments]")
            break
        room = min(SHOWN_ARG_BYTES, SHOWN_ARGV_BYTES - kept)
        if len(data) <= room:
            shown.append(arg)
            kept += len(data)
        else:
            # A character cut in two decodes to escapes, as undecodable bytes do.
            prefix = data[:room].decode("utf-8", "surrogateescape")
            shown.append(f"{prefix}...[{len(data)} bytes]")
            kept += room
    return tuple(shown), total


@attrs.define(kw_only=True)
class TaskSettings:
    """
    What one attempt of a task runs with, on one tool.

    A plain slotted class, built once per attempt on the scheduler's path
    and only read after; treat it as immutable.
    """

    tool: str | None
    """The tool the task runs on (None for a task with its own command or callable)."""
    argv: tuple[str, ...] | None
    """The command (None for a callable task)."""
    shown_argv: tuple[str, ...] | None
    """
    The command as it may be recorded or shown: secret params appear as
    ``***``, and a huge command is cut to a prefix (`bounded_argv`).
    """
    argv_bytes: int | None
    """The full size in bytes of the shown command when `shown_argv` was cut, else None."""
    cwd: str
    """The working directory: the task's or tool's ``cwd``, relative to the workflow's directory."""
    tool_env: Mapping[str, str]
    """The tool's environment variables, on top of the runner's own environment."""
    task_env: Mapping[str, str]
    """The task's environment variables, on top of the tool's."""
    timeout: float | None
    """Seconds an attempt may take (None: no limit)."""


class Settings:
    """
    Resolves tasks' settings for one workflow.

    Keeps each working directory's text, so resolving costs no path
    arithmetic per attempt.
    """

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self._cwds: dict[str | None, str] = {}

    def of(self, task: TaskSpec, tool_name: str | None) -> TaskSettings:
        """The settings of `task` when it runs on `tool_name` (None: no tool)."""
        spec = self.spec
        tool: ToolSpec | None = spec.tools[tool_name] if tool_name is not None else None
        argv = task.argv(tool)
        timeout = task.timeout
        if timeout is None and tool is not None:
            timeout = tool.timeout
        if timeout is None:
            timeout = spec.timeout
        shown = task.argv(tool, redact=True) if task.secret_params else argv
        argv_bytes = None
        if shown is not None:
            shown, argv_bytes = bounded_argv(shown)
        return TaskSettings(
            tool=tool_name,
            argv=argv,
            shown_argv=shown,
            argv_bytes=argv_bytes,
            cwd=self._cwd(task.cwd or (tool.cwd if tool is not None else None)),
            tool_env=tool.env if tool is not None else {},
            task_env=task.env,
            timeout=timeout,
        )

    def retry(self, task: TaskSpec, tool_name: str | None) -> RetryPolicy:
        """
        When a failed attempt of `task` on `tool_name` is tried again.

        Apart from `of`: only a failure needs it, so an attempt that
        succeeds never resolves it.
        """
        tool = self.spec.tools[tool_name] if tool_name is not None else None
        return (
            task.retry or (tool.retry if tool is not None else None) or self.spec.retry or NO_RETRY
        )

    def _cwd(self, chosen: str | None) -> str:
        cwd = self._cwds.get(chosen)
        if cwd is None:
            base = self.spec.base_dir
            cwd = self._cwds[chosen] = str(base if chosen is None else base / chosen)
        return cwd
