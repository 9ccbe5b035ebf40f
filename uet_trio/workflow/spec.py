"""
What a workflow is: the frozen attrs spec classes and their cross-field checks.

A `WorkflowSpec` is valid once constructed: every check that needs no running
(ids, references, kinds, tools, template placeholders, value ranges) happens in
the constructors, so a spec built in Python is held to exactly the rules a
loaded file is. Each field's rule is its attrs validator (the rules themselves
are in `rules`), and attrs runs the validators in field order, so the fields
are declared in the order their errors are reported. Checks that relate several
fields to each other run after them, in ``__attrs_post_init__``. Cycle
detection lives in `graph`, which compiles the spec. Which tool strategies
exist is not known here: the deciding layer checks routing strategies by name.

A spec is data: its mappings are `frozen.FrozenMap`, so nothing can change a
spec after it was checked, and specs pickle (to ship to other processes). The
fingerprint is derived from the fields' definitions (see `fingerprint`), so a
new field takes part in it without anyone remembering to add it. This module
does no I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any

import attrs

from ..errors import WorkflowError
from .fingerprint import (
    HASHED_EACH,
    NOT_HASHED,
    callable_name,
    fingerprint_of,
    hashed_as,
    record_or_none,
    sorted_items,
    sorted_set,
)
from .frozen import (
    EMPTY,
    FrozenMap,
    any_tuple,
    argv_or_none,
    freeze_map,
    path_tuple,
    str_frozenset,
    str_tuple,
)
from .rules import (
    Rule,
    check_argv,
    check_callable,
    check_env,
    check_exit_codes,
    check_fraction,
    check_int,
    check_name,
    check_number,
    check_os_string,
    check_paths,
    check_positive_int,
    check_retries,
    check_retry,
    check_str_map,
    check_task_ids,
    check_text,
    check_texts,
    in_task,
    in_tool,
    in_workflow,
)
from .templates import placeholders, render, unknown_placeholders

REDACTED = "***"
SUCCESS = (0,)
"""The exit codes that count as success unless a task says otherwise (one tuple, shared)."""
TIMEOUT = "timeout"

_RULE = "uet_trio.rule"
_PATH = "uet_trio.path"


def _check_retry_on(value: tuple[object, ...], *, task: str | None, field: str) -> None:
    """The rule of `RetryPolicy.retry_on`; beside `TIMEOUT`, so `rules` needs nothing from here."""
    for item in value:
        if item != TIMEOUT and (isinstance(item, bool) or not isinstance(item, int)):
            raise WorkflowError(
                f'retry_on takes exit codes and "timeout", got {item!r}', task=task, field=field
            )


def _backoff(name: str, rule: Rule = check_number) -> dict[str, object]:
    """A backoff field's metadata: its rule, and its place in a file's ``backoff`` table."""
    return {_RULE: rule, _PATH: f"backoff.{name}"}


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    When and how often a failed attempt is tried again.

    A policy is checked where it is used (`validate`), since its errors name
    the task or tool that holds it. Each field's rule and its spelling in a
    workflow file are in the field's metadata.
    """

    retries: int = attrs.field(default=0, metadata={_RULE: check_retries, _PATH: "retries"})
    """Extra attempts after the first (0: never retry)."""
    initial: float = attrs.field(default=1.0, metadata=_backoff("initial"))
    """Delay before the first retry, in seconds."""
    factor: float = attrs.field(default=2.0, metadata=_backoff("factor"))
    """Multiplier applied to the delay after each retry."""
    max: float = attrs.field(default=60.0, metadata=_backoff("max"))
    """Upper bound on any delay, in seconds."""
    jitter: float = attrs.field(default=0.1, metadata=_backoff("jitter", check_fraction))
    """Random spread as a fraction of the delay (0.1: +/-10%), from the run's seeded RNG."""
    retry_on: tuple[int | str, ...] = attrs.field(
        default=(), converter=any_tuple, metadata={_RULE: _check_retry_on, _PATH: "retry_on"}
    )
    """Exit codes and/or ``"timeout"`` that allow a retry; empty means any failure."""

    def validate(self, *, task: str | None, prefix: str) -> None:
        """
        Raise `WorkflowError` naming `task` and the field if a value is off.

        Fields are named as in a workflow file: ``<prefix>retries``,
        ``<prefix>backoff.initial``, ``<prefix>retry_on``.
        """
        for field in attrs.fields(type(self)):
            rule: Rule = field.metadata[_RULE]
            rule(getattr(self, field.name), task=task, field=prefix + field.metadata[_PATH])

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


RETRY_PATHS: tuple[str, ...] = tuple(field.metadata[_PATH] for field in attrs.fields(RetryPolicy))
"""Where each `RetryPolicy` field is spelled in a workflow file, relative to its owner's table."""


def _check_tool_name(tool: ToolSpec, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise WorkflowError("a tool needs a non-empty name", field="tools")
    check_text(value, task=None, field=f"tools.{value}")


def _check_shell(tool: ToolSpec, attribute: attrs.Attribute[Any], value: bool) -> None:
    if value and len(tool.command) != 1:
        raise WorkflowError(
            "a shell tool takes its command as one string", field=f"tools.{tool.name}.command"
        )


def _resource_map(value: Mapping[str, float] | None) -> FrozenMap[str, float]:
    """The `FrozenMap` of a tool's resources."""
    return FrozenMap(value) if value else EMPTY


def _check_resources(value: Mapping[str, Any], *, task: str | None, field: str) -> None:
    for name, amount in value.items():
        check_name(name, task=task, field=field)
        check_number(amount, task=task, field=f"{field}.{name}")


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A command template that serves one or more task kinds."""

    name: str = attrs.field(validator=_check_tool_name)
    kinds: tuple[str, ...] = attrs.field(
        default=(), converter=str_tuple, validator=in_tool(check_texts)
    )
    command: tuple[str, ...] = attrs.field(converter=str_tuple, validator=in_tool(check_argv))
    """argv template; ``{param}`` placeholders are filled from the task's params."""
    shell: bool = attrs.field(default=False, validator=_check_shell)
    """Run the rendered command through ``/bin/sh -c`` (params are shell-quoted)."""
    timeout: float | None = attrs.field(default=None, validator=in_tool(check_number, unless=None))
    env: FrozenMap[str, str] = attrs.field(
        default=EMPTY,
        converter=freeze_map,
        validator=in_tool(check_env, unless=EMPTY),
        metadata=hashed_as(sorted_items),
    )
    cwd: str | None = attrs.field(default=None, validator=in_tool(check_os_string, unless=None))
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=in_tool(check_retry, unless=None),
        metadata=hashed_as(record_or_none),
    )
    max_concurrency: int | None = attrs.field(
        default=None, validator=in_tool(check_positive_int, unless=None)
    )
    """At most this many attempts of this tool run at once (None: no limit)."""
    resources: FrozenMap[str, float] = attrs.field(
        default=EMPTY,
        converter=_resource_map,
        validator=in_tool(_check_resources, unless=EMPTY),
        metadata=hashed_as(sorted_items),
    )
    """
    Dask resources each attempt holds (``{"GPU": 1}``): on a Dask cluster it
    runs only on workers that declare them; locally they mean nothing.
    """

    @property
    def placeholders(self) -> frozenset[str]:
        """The parameter names the command template needs."""
        return placeholders(self.command)


def _check_strategy(rule: RoutingRule, attribute: attrs.Attribute[Any], value: object) -> None:
    check_name(value, task=None, field=f"routing.{rule.kind}.strategy")


@attrs.frozen(kw_only=True)
class RoutingRule:
    """How a task kind picks among the tools that serve it."""

    kind: str
    strategy: str = attrs.field(default="first", validator=_check_strategy)
    """The name of a strategy of the deciding layer's registry (checked there)."""
    tools: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    """The candidate tools in order; empty means every tool serving the kind, in file order."""


TaskCallable = Callable[..., Awaitable[Any]]


def _check_task_id(task: TaskSpec, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise WorkflowError("every task needs a non-empty string id", field="id")
    if "\0" in value or "\n" in value or "\r" in value:
        raise WorkflowError("an id may not contain NUL or line breaks", field="id")
    check_text(value, task=None, field="id")


def _check_action(
    task: TaskSpec, attribute: attrs.Attribute[Any], value: tuple[str, ...] | None
) -> None:
    """Exactly one of command, kind and call says what the task does; a command is argv."""
    if [value, task.kind, task.call].count(None) != 2:
        given = [name for name in ("command", "kind", "call") if getattr(task, name) is not None]
        raise WorkflowError(
            "give exactly one of command, kind (with params) or call"
            + (f"; got {', '.join(given)}" if given else ""),
            task=task.id,
            field="command",
        )
    if value is not None:
        check_argv(value, task=task.id, field="command")
        try:
            unknown = unknown_placeholders(value, task.params, lists=True)
        except WorkflowError as error:
            raise WorkflowError(error.message, task=task.id, field="command") from None
        if unknown:
            raise WorkflowError(
                f"unknown placeholder {{{unknown[0]}}} (not a param; "
                "write {{ and }} for literal braces)",
                task=task.id,
                field="command",
            )


def _check_secrets(task: TaskSpec, attribute: attrs.Attribute[Any], value: frozenset[str]) -> None:
    unknown = value - task.params.keys() if value else value
    if unknown:
        raise WorkflowError(
            f"secret params not in params: {', '.join(sorted(unknown))}",
            task=task.id,
            field="params",
        )


@attrs.frozen(kw_only=True)
class TaskSpec:
    """One node of the workflow: a command, a kind routed to a tool, or a Python callable."""

    id: str = attrs.field(validator=_check_task_id)
    command: tuple[str, ...] | None = attrs.field(
        default=None, converter=argv_or_none, validator=_check_action
    )
    kind: str | None = attrs.field(default=None, validator=in_task(check_name, unless=None))
    call: TaskCallable | None = attrs.field(
        default=None,
        eq=False,
        validator=in_task(check_callable, unless=None),
        metadata=hashed_as(callable_name),
    )
    """An async callable run in-process instead of a command (embedding only)."""
    params: FrozenMap[str, str] = attrs.field(
        default=EMPTY,
        converter=freeze_map,
        validator=in_task(check_str_map, unless=EMPTY),
        metadata=hashed_as(sorted_items),
    )
    env: FrozenMap[str, str] = attrs.field(
        default=EMPTY,
        converter=freeze_map,
        validator=in_task(check_env, unless=EMPTY),
        metadata=hashed_as(sorted_items),
    )
    cwd: str | None = attrs.field(default=None, validator=in_task(check_os_string, unless=None))
    secret_params: frozenset[str] = attrs.field(
        default=frozenset(),
        converter=str_frozenset,
        validator=_check_secrets,
        metadata=hashed_as(sorted_set),
    )
    """Params whose values are redacted in events, the store and plans."""
    depends_on: tuple[str, ...] = attrs.field(
        default=(), converter=str_tuple, validator=in_task(check_task_ids, unless=())
    )
    """Tasks that must succeed before this one runs."""
    after: tuple[str, ...] = attrs.field(
        default=(), converter=str_tuple, validator=in_task(check_task_ids, unless=())
    )
    """Tasks that must only have finished (succeeded, failed or skipped): for summaries, cleanup."""
    inputs: tuple[str, ...] = attrs.field(
        default=(), converter=path_tuple, validator=in_task(check_paths, unless=())
    )
    """
    Files the command reads, relative to the workflow's directory: their
    content is part of the task's signature, and a task that declares one
    of them as an output runs first.
    """
    outputs: tuple[str, ...] = attrs.field(
        default=(), converter=path_tuple, validator=in_task(check_paths, unless=())
    )
    """
    Files the command writes: a task with outputs is skipped as up to date
    when they exist and its signature is unchanged; they must exist after
    it succeeds, and are removed when it fails.
    """
    ok_exit_codes: tuple[int, ...] = attrs.field(
        default=SUCCESS, converter=any_tuple, validator=in_task(check_exit_codes, unless=SUCCESS)
    )
    """Exit codes that count as success."""
    group: str | None = attrs.field(default=None, metadata=NOT_HASHED)
    """The ``foreach`` task this one is an instance of (None: not fanned out)."""
    priority: int = attrs.field(default=0, validator=in_task(check_int))
    """Higher runs first among ready tasks."""
    timeout: float | None = attrs.field(default=None, validator=in_task(check_number, unless=None))
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=in_task(check_retry, unless=None),
        metadata=hashed_as(record_or_none),
    )
    tool: str | None = None
    """Pin this task to one tool instead of routing it."""
    continue_on_failure: bool = False
    """When this task fails its dependents still run."""
    args: tuple[Any, ...] = attrs.field(
        default=(), converter=any_tuple, eq=False, metadata=NOT_HASHED
    )
    """
    Positional arguments of `call`. Not in the fingerprint: they are arbitrary
    Python objects, whose ``repr`` need not be the same in the next process.
    """

    def argv(self, tool: ToolSpec | None, *, redact: bool = False) -> tuple[str, ...] | None:
        """
        The command this task runs with `tool` (None for a callable task).

        With `redact`, secret params appear as ``***``: the form that may be
        recorded or shown.
        """
        if self.command is not None:
            template, shell = self.command, False
        elif tool is not None:
            template, shell = tool.command, tool.shell
        else:
            return None
        if not any("{" in element or "}" in element for element in template):
            return template
        params: Mapping[str, str] = self.params
        if redact and self.secret_params:
            params = {
                name: REDACTED if name in self.secret_params else value
                for name, value in params.items()
            }
        lists = {"inputs": self.inputs, "outputs": self.outputs}
        return render(template, params, shell=shell, lists=lists)


_TASK_FIELDS: tuple[attrs.Attribute[Any], ...] = attrs.fields(TaskSpec)
_TASK_NAMES = frozenset(field.name for field in _TASK_FIELDS)
_TASK_DEFAULTS: tuple[tuple[Callable[[TaskSpec, Any], None], Any], ...] = tuple(
    (TaskSpec.__dict__[field.name].__set__, field.default)
    for field in _TASK_FIELDS
    if field.name != "id"
)
"""The setter of each field's slot (which a frozen class's ``__setattr__`` refuses) and its
default."""
_TASK_GIVEN: dict[str, tuple[int, Callable[[TaskSpec, Any], None], Any, Any, Any]] = {
    field.name: (
        position,
        TaskSpec.__dict__[field.name].__set__,
        field.converter,
        field.validator,
        field,
    )
    for position, field in enumerate(_TASK_FIELDS)
}
"""For each field given: its place in field order, slot setter, converter, validator and field."""
_CROSS_FIELD = ("command",)
"""Fields whose rule runs even when they are not given: command's says that exactly one
of command, kind and call is."""


def build_task(given: Mapping[str, Any]) -> TaskSpec:
    """
    The `TaskSpec` that ``TaskSpec(**given)`` builds, by a shorter path.

    A task of a large file sets three or four of its 21 fields. The attrs
    constructor runs every field's converter and every rule, defaults
    included; this runs the converter and the rule of each field in `given`
    only (and command's, which relates it to kind and call), the rules in
    field order, so it raises the same `WorkflowError` with the same message.
    The rules are the fields' own validators: there is one set of them. It
    relies on each default being stored as its converter makes it and
    passing its rule, which tests/test_spec_build.py checks field by field.
    """
    if "id" not in given or not _TASK_NAMES.issuperset(given):
        unknown = sorted(set(given) - _TASK_NAMES) or ["no id"]
        raise TypeError(f"not the fields of a task: {', '.join(unknown)}")
    task: TaskSpec = object.__new__(TaskSpec)
    for set_slot, default in _TASK_DEFAULTS:
        set_slot(task, default)
    checks = []
    for name, value in given.items():
        position, set_slot, converter, validator, field = _TASK_GIVEN[name]
        if converter is not None:
            value = converter(value)
        set_slot(task, value)
        if validator is not None:
            checks.append((position, validator, field))
    for name in _CROSS_FIELD:
        if name not in given:
            position, _, _, validator, field = _TASK_GIVEN[name]
            checks.append((position, validator, field))
    checks.sort(key=itemgetter(0))
    for _, validator, field in checks:
        validator(task, field, getattr(task, field.name))
    return task


def _task_tuple(value: Any) -> tuple[TaskSpec, ...]:
    return tuple(value)


def _tool_map(value: Any) -> FrozenMap[str, ToolSpec]:
    if type(value) is FrozenMap:
        return value
    if isinstance(value, Mapping):
        return FrozenMap(value)
    return FrozenMap((tool.name, tool) for tool in value)


def _rule_map(value: Any) -> FrozenMap[str, RoutingRule]:
    if type(value) is FrozenMap:
        return value
    if isinstance(value, Mapping):
        return FrozenMap(value)
    return FrozenMap((rule.kind, rule) for rule in value)


def _check_workflow_name(
    spec: WorkflowSpec, attribute: attrs.Attribute[Any], value: object
) -> None:
    if not isinstance(value, str) or not value:
        raise WorkflowError("the workflow needs a non-empty name", field="workflow.name")
    check_text(value, task=None, field="workflow.name")


def _check_has_tasks(spec: WorkflowSpec, attribute: attrs.Attribute[Any], value: object) -> None:
    if not value:
        raise WorkflowError("the workflow has no tasks", field="tasks")


def _check_tool_names(
    spec: WorkflowSpec, attribute: attrs.Attribute[Any], value: Mapping[str, ToolSpec]
) -> None:
    for name, tool in value.items():
        if name != tool.name:
            raise WorkflowError(f"tool registered as {name!r}", field=f"tools.{tool.name}")


def _check_routed_tools(
    spec: WorkflowSpec, attribute: attrs.Attribute[Any], value: Mapping[str, RoutingRule]
) -> None:
    """A rule's tools exist and serve its kind."""
    for kind, rule in value.items():
        for tool_name in rule.tools:
            served = spec.tools.get(tool_name)
            if served is None:
                raise WorkflowError(f"unknown tool {tool_name!r}", field=f"routing.{kind}.tools")
            if kind not in served.kinds:
                raise WorkflowError(
                    f"tool {tool_name!r} does not serve kind {kind!r}",
                    field=f"routing.{kind}.tools",
                )


def _check_outputs(task: TaskSpec, producers: dict[str, str]) -> None:
    """
    Each output has one producer, and no task reads what it writes.

    `producers` maps the outputs of the tasks checked so far to their task;
    `task`'s outputs are added to it.
    """
    reads = frozenset(task.inputs)
    for path in task.outputs:
        if "*" in path or "?" in path:
            raise WorkflowError(
                f"{path!r}: an output is a path, not a glob (what a task writes must be "
                "known before it runs, to order its readers and check it after)",
                task=task.id,
                field="outputs",
            )
        if path in reads:
            raise WorkflowError(
                f"{path!r} is both an input and an output of the task",
                task=task.id,
                field="outputs",
            )
        other = producers.setdefault(path, task.id)
        if other != task.id:
            raise WorkflowError(
                f"{path!r} is also an output of task {other!r}", task=task.id, field="outputs"
            )


@attrs.frozen(kw_only=True)
class WorkflowSpec:
    """A whole workflow: tasks, the tools they route to, and run-wide settings."""

    name: str = attrs.field(validator=_check_workflow_name)
    tasks: tuple[TaskSpec, ...] = attrs.field(
        converter=_task_tuple, validator=_check_has_tasks, metadata=HASHED_EACH
    )
    max_workers: int | None = attrs.field(
        default=None, validator=in_workflow(check_positive_int, unless=None)
    )
    """Worker tasks per run (None: the number of CPUs)."""
    timeout: float | None = attrs.field(
        default=None, validator=in_workflow(check_number, unless=None)
    )
    """Default per-attempt timeout in seconds for tasks and tools that set none."""
    kill_grace: float = attrs.field(default=5.0, validator=in_workflow(check_number))
    """Seconds between SIGTERM and SIGKILL when an attempt is stopped."""
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=in_workflow(check_retry, unless=None),
        metadata=hashed_as(record_or_none),
    )
    """Default retry policy for tasks and tools that set none."""
    tools: FrozenMap[str, ToolSpec] = attrs.field(
        default=EMPTY, converter=_tool_map, validator=_check_tool_names, metadata=HASHED_EACH
    )
    routing: FrozenMap[str, RoutingRule] = attrs.field(
        default=EMPTY, converter=_rule_map, validator=_check_routed_tools, metadata=HASHED_EACH
    )
    fail_fast: bool = False
    dask: str | None = attrs.field(default=None, metadata=NOT_HASHED)
    """
    The Dask cluster to run attempts on (``tcp://HOST:PORT``, ``local[:N]``);
    None: this machine. Where a run executes does not change what runs.
    """
    base_dir: Path = attrs.field(factory=Path.cwd, converter=Path, metadata=hashed_as(str))
    """Directory commands run in (and relative cwd values start from)."""
    source: str | None = attrs.field(default=None, metadata=NOT_HASHED)
    """The file the spec was loaded from, if any (where it came from does not change what runs)."""

    def __attrs_post_init__(self) -> None:
        """Check the tasks against each other, the tools and the routing, all checked by now."""
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise WorkflowError("duplicate task id", task=task.id, field="id")
            seen.add(task.id)
        producers: dict[str, str] = {}
        for task in self.tasks:
            for field, deps in (("depends_on", task.depends_on), ("after", task.after)):
                for dep in deps:
                    if dep not in seen:
                        raise WorkflowError(
                            f"{'depends on' if field == 'depends_on' else 'comes after'} "
                            f"unknown task {dep!r}",
                            task=task.id,
                            field=field,
                        )
                    if dep == task.id:
                        raise WorkflowError(
                            f"dependency cycle: {task.id} -> {task.id}", task=task.id, field=field
                        )
            if task.outputs:
                _check_outputs(task, producers)
            if task.kind is not None:
                candidates = self.candidate_tools(task)
                if not candidates:
                    raise WorkflowError(
                        f"no tool serves kind {task.kind!r}", task=task.id, field="kind"
                    )
                for tool in candidates:
                    missing = unknown_placeholders(tool.command, task.params, lists=True)
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
        Every field of every spec class takes part unless its metadata
        leaves it out (`source`, a task's `args`); callables are identified
        by their qualified name. One record of the workflow's own fields is
        hashed, then one per task, tool and routing rule, so it costs a few
        microseconds per task and builds no copy of the spec.
        """
        return fingerprint_of(self)
