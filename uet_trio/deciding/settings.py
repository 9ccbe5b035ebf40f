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
    """The command as it may be recorded or shown: secret params appear as ``***``."""
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
        return TaskSettings(
            tool=tool_name,
            argv=argv,
            shown_argv=task.argv(tool, redact=True) if task.secret_params else argv,
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
