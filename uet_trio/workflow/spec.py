"""
What a workflow is: frozen attrs classes and their validation.

A `WorkflowSpec` is valid once constructed: every check that needs no running
(ids, references, kinds, tools, template placeholders, value ranges) happens in
the constructors, so a spec built in Python is held to exactly the rules a
loaded file is. Cycle detection lives in `graph`, which compiles the spec.
This module does no I/O.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import WorkflowError
from .templates import placeholders, render

REDACTED = "***"
STRATEGIES = ("first", "round_robin", "least_loaded", "fastest")
TIMEOUT = "timeout"


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _any_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _str_frozenset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _freeze_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


def _check_number(value: object, *, task: str | None, field: str, minimum: float = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise WorkflowError(f"expected a number, got {value!r}", task=task, field=field)
    if value < minimum:
        raise WorkflowError(f"must be at least {minimum}, got {value!r}", task=task, field=field)


def _check_text(value: str, *, task: str | None, field: str) -> None:
    """
    Names (ids, kinds, tool and workflow names) are stored and shown as text.

    A JSON file can spell a lone surrogate (``"\\udc80"``), which is no
    Unicode text and which SQLite cannot store, so it is refused here.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise WorkflowError(
            f"not valid Unicode text (lone surrogate at position {error.start})",
            task=task,
            field=field,
        ) from None


def _check_os_string(value: str, *, task: str | None, field: str) -> None:
    """
    A value handed to a command (argv, environment, cwd) must become bytes.

    NUL cannot be in argv or the environment. Non-UTF-8 bytes, spelled as
    surrogate escapes, pass through unchanged; other lone surrogates have no
    byte form and are refused.
    """
    if "\0" in value:
        raise WorkflowError(f"NUL byte in {value!r}", task=task, field=field)
    try:
        os.fsencode(value)
    except UnicodeEncodeError as error:
        raise WorkflowError(
            f"{value!r} cannot be passed to a command (lone surrogate at position {error.start})",
            task=task,
            field=field,
        ) from None


def _check_str_map(value: Mapping[str, Any], *, task: str | None, field: str) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise WorkflowError(
                f"expected string keys and values, got {key!r} = {item!r}", task=task, field=field
            )
        _check_os_string(key, task=task, field=field)
        _check_os_string(item, task=task, field=f"{field}.{key}")


def _check_env(value: Mapping[str, Any], *, task: str | None, field: str) -> None:
    _check_str_map(value, task=task, field=field)
    for key in value:
        if not key or "=" in key:
            raise WorkflowError(
                f"{key!r} is not an environment variable name (empty or has '=')",
                task=task,
                field=field,
            )


def _check_argv(value: tuple[str, ...], *, task: str | None, field: str) -> None:
    if not value:
        raise WorkflowError("must be a non-empty list of strings", task=task, field=field)
    for item in value:
        if not isinstance(item, str):
            raise WorkflowError(f"expected strings, got {item!r}", task=task, field=field)
        _check_os_string(item, task=task, field=field)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how often a failed attempt is tried again."""

    retries: int = 0
    """Extra attempts after the first (0: never retry)."""
    initial: float = 1.0
    """Delay before the first retry, in seconds."""
    factor: float = 2.0
    """Multiplier applied to the delay after each retry."""
    max: float = 60.0
    """Upper bound on any delay, in seconds."""
    jitter: float = 0.1
    """Random spread as a fraction of the delay (0.1: +/-10%), from the run's seeded RNG."""
    retry_on: tuple[int | str, ...] = attrs.field(default=(), converter=_any_tuple)
    """Exit codes and/or ``"timeout"`` that allow a retry; empty means any failure."""

    def validate(self, *, task: str | None, prefix: str) -> None:
        """
        Raise `WorkflowError` naming `task` and the field if a value is off.

        Fields are named as in a workflow file: ``<prefix>retries``,
        ``<prefix>backoff.initial``, ``<prefix>retry_on``.
        """
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise WorkflowError(
                f"retries must be a non-negative integer, got {self.retries!r}",
                task=task,
                field=f"{prefix}retries",
            )
        for name in ("initial", "factor", "max", "jitter"):
            _check_number(getattr(self, name), task=task, field=f"{prefix}backoff.{name}")
        if self.jitter > 1:
            raise WorkflowError(
                "jitter is a fraction between 0 and 1", task=task, field=f"{prefix}backoff.jitter"
            )
        for item in self.retry_on:
            if item != TIMEOUT and (isinstance(item, bool) or not isinstance(item, int)):
                raise WorkflowError(
                    f'retry_on takes exit codes and "timeout", got {item!r}',
                    task=task,
                    field=f"{prefix}retry_on",
                )

    def delay(self, retry_number: int, unit_random: float) -> float:
        """
        Seconds to wait before retry number `retry_number` (1 for the first).

        `unit_random` is a draw from [0, 1) supplied by the caller's seeded RNG,
        so the same seed gives the same schedule.
        """
        base = min(self.max, self.initial * self.factor ** (retry_number - 1))
        spread = base * self.jitter * (2 * unit_random - 1)
        return max(0.0, min(self.max, base + spread))

    def allows(self, *, exit_code: int | None, timed_out: bool) -> bool:
        """Whether a failure with this exit code (or timeout) may be retried."""
        if not self.retry_on:
            return True
        if timed_out:
            return TIMEOUT in self.retry_on
        return exit_code is not None and exit_code in self.retry_on


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A command template that serves one or more task kinds."""

    name: str
    command: tuple[str, ...] = attrs.field(converter=_str_tuple)
    """argv template; ``{param}`` placeholders are filled from the task's params."""
    kinds: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    timeout: float | None = None
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_map)
    cwd: str | None = None
    shell: bool = False
    """Run the rendered command through ``/bin/sh -c`` (params are shell-quoted)."""
    retry: RetryPolicy | None = None
    max_concurrency: int | None = None
    """At most this many attempts of this tool run at once (None: no limit)."""

    def __attrs_post_init__(self) -> None:
        where = f"tools.{self.name}"
        if not isinstance(self.name, str) or not self.name:
            raise WorkflowError("a tool needs a non-empty name", field="tools")
        _check_text(self.name, task=None, field=where)
        for kind in self.kinds:
            _check_text(kind, task=None, field=f"{where}.kinds")
        _check_argv(self.command, task=None, field=f"{where}.command")
        if self.shell and len(self.command) != 1:
            raise WorkflowError(
                "a shell tool takes its command as one string", field=f"{where}.command"
            )
        if self.timeout is not None:
            _check_number(self.timeout, task=None, field=f"{where}.timeout")
        _check_env(self.env, task=None, field=f"{where}.env")
        if self.cwd is not None:
            _check_os_string(self.cwd, task=None, field=f"{where}.cwd")
        if self.retry is not None:
            self.retry.validate(task=None, prefix=f"{where}.retry.")
        if self.max_concurrency is not None and (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or self.max_concurrency < 1
        ):
            raise WorkflowError(
                f"must be a positive integer, got {self.max_concurrency!r}",
                field=f"{where}.max_concurrency",
            )

    @property
    def placeholders(self) -> frozenset[str]:
        """The parameter names the command template needs."""
        return placeholders(self.command)


@attrs.frozen(kw_only=True)
class RoutingRule:
    """How a task kind picks among the tools that serve it."""

    kind: str
    strategy: str = "first"
    tools: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    """The candidate tools in order; empty means every tool serving the kind, in file order."""

    def __attrs_post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise WorkflowError(
                f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})",
                field=f"routing.{self.kind}.strategy",
            )


TaskCallable = Callable[..., Awaitable[Any]]


@attrs.frozen(kw_only=True)
class TaskSpec:
    """One node of the workflow: a command, a kind routed to a tool, or a Python callable."""

    id: str
    command: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_str_tuple)
    )
    kind: str | None = None
    params: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_map)
    secret_params: frozenset[str] = attrs.field(default=frozenset(), converter=_str_frozenset)
    """Params whose values are redacted in events, the store and plans."""
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    priority: int = 0
    """Higher runs first among ready tasks."""
    timeout: float | None = None
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_map)
    cwd: str | None = None
    retry: RetryPolicy | None = None
    tool: str | None = None
    """Pin this task to one tool instead of routing it."""
    continue_on_failure: bool = False
    """When this task fails its dependents still run."""
    call: TaskCallable | None = attrs.field(default=None, eq=False)
    """An async callable run in-process instead of a command (embedding only)."""
    args: tuple[Any, ...] = attrs.field(default=(), converter=_any_tuple, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise WorkflowError("every task needs a non-empty string id", field="id")
        if "\0" in self.id or any(ch in self.id for ch in "\n\r"):
            raise WorkflowError("an id may not contain NUL or line breaks", field="id")
        _check_text(self.id, task=None, field="id")
        task = self.id
        given = [name for name in ("command", "kind", "call") if getattr(self, name) is not None]
        if len(given) != 1:
            raise WorkflowError(
                "give exactly one of command, kind (with params) or call"
                + (f"; got {', '.join(given)}" if given else ""),
                task=task,
                field="command",
            )
        if self.command is not None:
            _check_argv(self.command, task=task, field="command")
        if self.kind is not None and (not isinstance(self.kind, str) or not self.kind):
            raise WorkflowError("must be a non-empty string", task=task, field="kind")
        if self.kind is not None:
            _check_text(self.kind, task=task, field="kind")
        if self.call is not None and not callable(self.call):
            raise WorkflowError("must be an async callable", task=task, field="call")
        _check_str_map(self.params, task=task, field="params")
        _check_env(self.env, task=task, field="env")
        if self.cwd is not None:
            _check_os_string(self.cwd, task=task, field="cwd")
        unknown_secrets = self.secret_params - set(self.params)
        if unknown_secrets:
            raise WorkflowError(
                f"secret params not in params: {', '.join(sorted(unknown_secrets))}",
                task=task,
                field="params",
            )
        for dep in self.depends_on:
            if not isinstance(dep, str):
                raise WorkflowError(
                    f"expected task ids, got {dep!r}", task=task, field="depends_on"
                )
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise WorkflowError(
                f"expected an integer, got {self.priority!r}", task=task, field="priority"
            )
        if self.timeout is not None:
            _check_number(self.timeout, task=task, field="timeout")
        if self.retry is not None:
            self.retry.validate(task=task, prefix="retry.")

    def argv(self, tool: ToolSpec | None, *, redact: bool = False) -> tuple[str, ...] | None:
        """
        The command this task runs with `tool` (None for a callable task).

        With `redact`, secret params appear as ``***``: the form that may be
        recorded or shown.
        """
        if self.command is not None:
            return self.command
        if tool is None:
            return None
        params = self.params
        if redact and self.secret_params:
            params = {
                name: REDACTED if name in self.secret_params else value
                for name, value in params.items()
            }
        return render(tool.command, params, shell=tool.shell)


def _task_tuple(value: Any) -> tuple[TaskSpec, ...]:
    return tuple(value)


def _tool_map(value: Any) -> Mapping[str, ToolSpec]:
    if isinstance(value, Mapping):
        return dict(value)
    return {tool.name: tool for tool in value}


def _rule_map(value: Any) -> Mapping[str, RoutingRule]:
    if isinstance(value, Mapping):
        return dict(value)
    return {rule.kind: rule for rule in value}


@attrs.frozen(kw_only=True)
class WorkflowSpec:
    """A whole workflow: tasks, the tools they route to, and run-wide settings."""

    name: str
    tasks: tuple[TaskSpec, ...] = attrs.field(converter=_task_tuple)
    tools: Mapping[str, ToolSpec] = attrs.field(factory=dict, converter=_tool_map)
    routing: Mapping[str, RoutingRule] = attrs.field(factory=dict, converter=_rule_map)
    max_workers: int | None = None
    """Worker tasks per run (None: the number of CPUs)."""
    timeout: float | None = None
    """Default per-attempt timeout in seconds for tasks and tools that set none."""
    retry: RetryPolicy | None = None
    """Default retry policy for tasks and tools that set none."""
    fail_fast: bool = False
    kill_grace: float = 5.0
    """Seconds between SIGTERM and SIGKILL when an attempt is stopped."""
    base_dir: Path = attrs.field(factory=Path.cwd, converter=Path)
    """Directory commands run in (and relative cwd values start from)."""
    source: str | None = None
    """The file the spec was loaded from, if any."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise WorkflowError("the workflow needs a non-empty name", field="workflow.name")
        _check_text(self.name, task=None, field="workflow.name")
        if not self.tasks:
            raise WorkflowError("the workflow has no tasks", field="tasks")
        if self.max_workers is not None and (
            isinstance(self.max_workers, bool)
            or not isinstance(self.max_workers, int)
            or self.max_workers < 1
        ):
            raise WorkflowError(
                f"must be a positive integer, got {self.max_workers!r}",
                field="workflow.max_workers",
            )
        if self.timeout is not None:
            _check_number(self.timeout, task=None, field="workflow.timeout")
        _check_number(self.kill_grace, task=None, field="workflow.kill_grace")
        if self.retry is not None:
            self.retry.validate(task=None, prefix="workflow.retry.")
        for name, tool in self.tools.items():
            if name != tool.name:
                raise WorkflowError(f"tool registered as {name!r}", field=f"tools.{tool.name}")
        for kind, rule in self.routing.items():
            for tool_name in rule.tools:
                served = self.tools.get(tool_name)
                if served is None:
                    raise WorkflowError(
                        f"unknown tool {tool_name!r}", field=f"routing.{kind}.tools"
                    )
                if kind not in served.kinds:
                    raise WorkflowError(
                        f"tool {tool_name!r} does not serve kind {kind!r}",
                        field=f"routing.{kind}.tools",
                    )
        self._check_tasks()

    def _check_tasks(self) -> None:
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise WorkflowError("duplicate task id", task=task.id, field="id")
            seen.add(task.id)
        for task in self.tasks:
            for dep in task.depends_on:
                if dep not in seen:
                    raise WorkflowError(
                        f"depends on unknown task {dep!r}", task=task.id, field="depends_on"
                    )
                if dep == task.id:
                    raise WorkflowError(
                        f"dependency cycle: {task.id} -> {task.id}",
                        task=task.id,
                        field="depends_on",
                    )
            if task.kind is not None:
                candidates = self.candidate_tools(task)
                if not candidates:
                    raise WorkflowError(
                        f"no tool serves kind {task.kind!r}", task=task.id, field="kind"
                    )
                for tool in candidates:
                    missing = tool.placeholders - set(task.params)
                    if missing:
                        raise WorkflowError(
                            f"tool {tool.name!r} needs params "
                            f"{', '.join(sorted(missing))} that the task does not give",
                            task=task.id,
                            field="params",
                        )
            elif task.tool is not None:
                raise WorkflowError(
                    "only a task with a kind can pin a tool", task=task.id, field="tool"
                )

    def candidate_tools(self, task: TaskSpec) -> tuple[ToolSpec, ...]:
        """
        The tools that may run `task`, in routing order.

        A pinned tool is the only candidate; otherwise the routing rule's list,
        or every tool serving the kind in declaration order.
        """
        if task.kind is None:
            return ()
        if task.tool is not None:
            tool = self.tools.get(task.tool)
            if tool is None:
                raise WorkflowError(f"unknown tool {task.tool!r}", task=task.id, field="tool")
            if task.kind not in tool.kinds:
                raise WorkflowError(
                    f"tool {task.tool!r} does not serve kind {task.kind!r}",
                    task=task.id,
                    field="tool",
                )
            return (tool,)
        rule = self.routing.get(task.kind)
        if rule is not None and rule.tools:
            return tuple(self.tools[name] for name in rule.tools)
        return tuple(tool for tool in self.tools.values() if task.kind in tool.kinds)

    def fingerprint(self) -> str:
        """
        A hash of everything that decides what the run executes.

        Stored with each run so `resume` can refuse a workflow that changed.
        Callables are identified by their qualified name. Computed by
        streaming one canonical record per part into the hash, so it costs
        a few microseconds per task and builds no copy of the spec.
        """
        digest = hashlib.sha256()
        head = (
            self.name,
            self.max_workers,
            self.timeout,
            _retry_key(self.retry),
            self.fail_fast,
            self.kill_grace,
            str(self.base_dir),
        )
        digest.update(repr(head).encode())
        for tool in self.tools.values():
            record = (
                tool.name,
                tool.command,
                tool.kinds,
                tool.timeout,
                sorted(tool.env.items()),
                tool.cwd,
                tool.shell,
                _retry_key(tool.retry),
                tool.max_concurrency,
            )
            digest.update(repr(record).encode())
        for rule in self.routing.values():
            digest.update(repr((rule.kind, rule.strategy, rule.tools)).encode())
        for task in self.tasks:
            task_record: tuple[Any, ...] = (
                task.id,
                task.command,
                task.kind,
                sorted(task.params.items()) if task.params else [],
                sorted(task.secret_params) if task.secret_params else [],
                task.depends_on,
                task.priority,
                task.timeout,
                sorted(task.env.items()) if task.env else [],
                task.cwd,
                _retry_key(task.retry) if task.retry is not None else None,
                task.tool,
                task.continue_on_failure,
                _callable_name(task.call) if task.call is not None else None,
            )
            digest.update(repr(task_record).encode())
        return digest.hexdigest()[:16]


def _retry_key(policy: RetryPolicy | None) -> tuple[Any, ...] | None:
    if policy is None:
        return None
    return (
        policy.retries,
        policy.initial,
        policy.factor,
        policy.max,
        policy.jitter,
        policy.retry_on,
    )


def _callable_name(call: TaskCallable | None) -> str | None:
    if call is None:
        return None
    return f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', '')}"
