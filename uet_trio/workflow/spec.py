"""
What a workflow is: frozen attrs classes, their validators and their fingerprint.

A `WorkflowSpec` is valid once constructed: every check that needs no running
(ids, references, kinds, tools, template placeholders, value ranges) happens in
the constructors, so a spec built in Python is held to exactly the rules a
loaded file is. Each field's rule is its attrs validator, and attrs runs the
validators in field order, so the fields are declared in the order their
errors are reported. Checks that relate several fields to each other run after
them, in ``__attrs_post_init__``. Cycle detection lives in `graph`, which
compiles the spec. Which tool strategies exist is not known here: the deciding
layer checks routing strategies by name.

A spec is data: its mappings are `FrozenMap`, so nothing can change a spec
after it was checked, and specs pickle (to ship to other processes). The
fingerprint is derived from the fields' definitions, so a new field takes part
in it without anyone remembering to add it. This module does no I/O.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import (
    Awaitable,
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    ValuesView,
)
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, overload

import attrs

from ..errors import WorkflowError
from .templates import placeholders, render

REDACTED = "***"
TIMEOUT = "timeout"

_K = TypeVar("_K")
_V = TypeVar("_V")
_D = TypeVar("_D")


class FrozenMap(Mapping[_K, _V]):
    """
    A read-only mapping over a private dict: the mappings of a spec.

    Assignment and deletion raise `TypeError`, as for any `Mapping`. Reads
    go straight to the dict, it compares equal to a dict with the same items,
    it is hashable when its values are, and it pickles (unlike
    `types.MappingProxyType`), so a spec can be sent to another process.
    """

    __slots__ = ("_data",)
    _data: dict[_K, _V]

    def __init__(self, items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data = dict(items)

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    @overload
    def get(self, key: _K, /) -> _V | None: ...
    @overload
    def get(self, key: _K, default: _V | _D, /) -> _V | _D: ...
    def get(self, key: _K, default: object = None, /) -> object:
        return self._data.get(key, default)

    def keys(self) -> KeysView[_K]:
        return self._data.keys()

    def values(self) -> ValuesView[_V]:
        return self._data.values()

    def items(self) -> ItemsView[_K, _V]:
        return self._data.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenMap[_K, _V]], tuple[dict[_K, _V]]]:
        return (type(self), (self._data,))


_EMPTY: FrozenMap[Any, Any] = FrozenMap()


# ------------------------------------------------------------ converters


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _any_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _str_frozenset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _freeze_map(value: Mapping[str, str] | None) -> FrozenMap[str, str]:
    """The `FrozenMap` of a params or env value; every empty one is the same `_EMPTY`."""
    # An exact type test: isinstance against a Mapping subclass is a
    # Python-level call, and this runs twice per task built.
    if type(value) is FrozenMap:
        return value
    return FrozenMap(value) if value else _EMPTY


# ------------------------------------------------------------ rules
#
# A rule checks one value and raises `WorkflowError` naming `task` and
# `field`; the validator factories below tell it which task and field, the
# way a workflow file spells them.


class _Rule(Protocol):
    def __call__(self, value: Any, /, *, task: str | None, field: str) -> None: ...


_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _check_number(value: object, *, task: str | None, field: str, minimum: float = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise WorkflowError(f"expected a number, got {value!r}", task=task, field=field)
    if value < minimum:
        raise WorkflowError(f"must be at least {minimum}, got {value!r}", task=task, field=field)


def _check_fraction(value: Any, *, task: str | None, field: str) -> None:
    _check_number(value, task=task, field=field)
    if value > 1:
        raise WorkflowError("jitter is a fraction between 0 and 1", task=task, field=field)


def _check_int(value: object, *, task: str | None, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkflowError(f"expected an integer, got {value!r}", task=task, field=field)


def _check_positive_int(value: object, *, task: str | None, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkflowError(f"must be a positive integer, got {value!r}", task=task, field=field)


def _check_retries(value: object, *, task: str | None, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WorkflowError(
            f"retries must be a non-negative integer, got {value!r}", task=task, field=field
        )


def _check_retry_on(value: tuple[object, ...], *, task: str | None, field: str) -> None:
    for item in value:
        if item != TIMEOUT and (isinstance(item, bool) or not isinstance(item, int)):
            raise WorkflowError(
                f'retry_on takes exit codes and "timeout", got {item!r}', task=task, field=field
            )


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


def _check_texts(value: tuple[str, ...], *, task: str | None, field: str) -> None:
    for item in value:
        _check_text(item, task=task, field=field)


def _check_name(value: object, *, task: str | None, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise WorkflowError("must be a non-empty string", task=task, field=field)
    _check_text(value, task=task, field=field)


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


def _check_task_ids(value: tuple[object, ...], *, task: str | None, field: str) -> None:
    for dep in value:
        if not isinstance(dep, str):
            raise WorkflowError(f"expected task ids, got {dep!r}", task=task, field=field)


def _check_callable(value: object, *, task: str | None, field: str) -> None:
    if not callable(value):
        raise WorkflowError("must be an async callable", task=task, field=field)


def _check_retry(value: RetryPolicy, *, task: str | None, field: str) -> None:
    value.validate(task=task, prefix=f"{field}.")


_NO_VALUE = object()
"""A value no field holds: an `unless` that skips nothing, a default no value is."""


def _in_task(rule: _Rule, *, unless: object = _NO_VALUE) -> _Validator:
    """
    A `TaskSpec` validator: `rule`, naming the task and the field.

    The rule is skipped for the value `unless` (None for a field that may be
    unset, the shared empty map for a map): such a value is always valid,
    and skipping it keeps building 100,000 tasks cheap.
    """

    def validate(task: TaskSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not unless:
            rule(value, task=task.id, field=attribute.name)

    return validate


def _in_tool(rule: _Rule, *, unless: object = _NO_VALUE) -> _Validator:
    """A `ToolSpec` validator: `rule` naming the field ``tools.NAME.FIELD``, as `_in_task`."""

    def validate(tool: ToolSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not unless:
            rule(value, task=None, field=f"tools.{tool.name}.{attribute.name}")

    return validate


def _in_workflow(rule: _Rule, *, unless: object = _NO_VALUE) -> _Validator:
    """A `WorkflowSpec` validator: `rule` naming the field ``workflow.FIELD``, as `_in_task`."""

    def validate(spec: WorkflowSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not unless:
            rule(value, task=None, field=f"workflow.{attribute.name}")

    return validate


# ------------------------------------------------------------ fingerprint metadata
#
# Every field is part of the fingerprint, as its ``repr``, unless its
# metadata says otherwise: `_hashed_as` a canonical form, `_NOT_HASHED`
# (it does not decide what runs), or `_HASHED_EACH` (a large collection of
# spec objects, hashed one record per item so no copy of it is built).

_FINGERPRINT = "uet_trio.fingerprint"
_OMIT = "omit"
_EACH = "each"
_NOT_HASHED = {_FINGERPRINT: _OMIT}
_HASHED_EACH = {_FINGERPRINT: _EACH}


def _hashed_as(key: Callable[[Any], object]) -> dict[str, object]:
    return {_FINGERPRINT: key}


def _sorted_items(value: FrozenMap[str, str]) -> object:
    """A map's items in key order: the order of params or env does not matter."""
    return sorted(value.items())


def _sorted(value: frozenset[str]) -> object:
    """A set's items in order: a set's own order changes from process to process."""
    return sorted(value)


def _record_or_none(value: object) -> object:
    """A nested spec object (a retry policy) as its own record."""
    return None if value is None else _recorder(type(value))(value)


def _callable_name(call: TaskCallable | None) -> str | None:
    """A callable, identified by its module and qualified name."""
    if call is None:
        return None
    return f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', '')}"


_Record = Callable[[Any], tuple[object, ...]]
_RECORDERS: dict[type, _Record] = {}
_FACTORY: type = type(attrs.Factory(dict))


def _recorder(cls: type) -> _Record:
    """The function that turns an instance of the spec class `cls` into its fingerprint record."""
    record = _RECORDERS.get(cls)
    if record is None:
        record = _RECORDERS[cls] = _make_recorder(cls)
    return record


def _make_recorder(cls: type) -> _Record:
    """
    Write the fingerprint record function of the spec class `cls`.

    Generated once per class from ``attrs.fields(cls)``, the way attrs
    writes ``__init__``, so that each record costs what a hand-written tuple
    would (the fingerprint of a 100,000-task workflow is computed per run):
    each hashed field's value, or its canonical form where its metadata
    names one. A value that is the field's default takes its canonical
    form computed here, once.
    """
    namespace: dict[str, object] = {}
    parts = []
    for position, field in enumerate(attrs.fields(cls)):
        key = field.metadata.get(_FINGERPRINT)
        if key in (_OMIT, _EACH):
            continue
        if key is None:
            parts.append(f"item.{field.name}")
            continue
        default = field.default
        if default is attrs.NOTHING or isinstance(default, _FACTORY):
            # No shared default value: every value takes the key.
            default = _NO_VALUE
        namespace[f"key{position}"] = key
        namespace[f"default{position}"] = default
        namespace[f"canonical{position}"] = None if default is _NO_VALUE else key(default)
        parts.append(
            f"canonical{position} if (value := item.{field.name}) is default{position} "
            f"else key{position}(value)"
        )
    source = (
        "def record(item):\n    return (\n" + "".join(f"        {p},\n" for p in parts) + "    )\n"
    )
    exec(compile(source, f"<fingerprint record of {cls.__qualname__}>", "exec"), namespace)
    return cast(_Record, namespace["record"])


def _hashed_each(cls: type) -> tuple[str, ...]:
    """The fields of `cls` hashed one item at a time, after the rest of the instance."""
    return tuple(
        field.name for field in attrs.fields(cls) if field.metadata.get(_FINGERPRINT) == _EACH
    )


# ------------------------------------------------------------ the spec classes


_RULE = "uet_trio.rule"
_PATH = "uet_trio.path"


def _backoff(name: str, rule: _Rule = _check_number) -> dict[str, object]:
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

    retries: int = attrs.field(default=0, metadata={_RULE: _check_retries, _PATH: "retries"})
    """Extra attempts after the first (0: never retry)."""
    initial: float = attrs.field(default=1.0, metadata=_backoff("initial"))
    """Delay before the first retry, in seconds."""
    factor: float = attrs.field(default=2.0, metadata=_backoff("factor"))
    """Multiplier applied to the delay after each retry."""
    max: float = attrs.field(default=60.0, metadata=_backoff("max"))
    """Upper bound on any delay, in seconds."""
    jitter: float = attrs.field(default=0.1, metadata=_backoff("jitter", _check_fraction))
    """Random spread as a fraction of the delay (0.1: +/-10%), from the run's seeded RNG."""
    retry_on: tuple[int | str, ...] = attrs.field(
        default=(), converter=_any_tuple, metadata={_RULE: _check_retry_on, _PATH: "retry_on"}
    )
    """Exit codes and/or ``"timeout"`` that allow a retry; empty means any failure."""

    def validate(self, *, task: str | None, prefix: str) -> None:
        """
        Raise `WorkflowError` naming `task` and the field if a value is off.

        Fields are named as in a workflow file: ``<prefix>retries``,
        ``<prefix>backoff.initial``, ``<prefix>retry_on``.
        """
        for field in attrs.fields(type(self)):
            rule: _Rule = field.metadata[_RULE]
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
    _check_text(value, task=None, field=f"tools.{value}")


def _check_shell(tool: ToolSpec, attribute: attrs.Attribute[Any], value: bool) -> None:
    if value and len(tool.command) != 1:
        raise WorkflowError(
            "a shell tool takes its command as one string", field=f"tools.{tool.name}.command"
        )


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A command template that serves one or more task kinds."""

    name: str = attrs.field(validator=_check_tool_name)
    kinds: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=_in_tool(_check_texts)
    )
    command: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=_in_tool(_check_argv))
    """argv template; ``{param}`` placeholders are filled from the task's params."""
    shell: bool = attrs.field(default=False, validator=_check_shell)
    """Run the rendered command through ``/bin/sh -c`` (params are shell-quoted)."""
    timeout: float | None = attrs.field(
        default=None, validator=_in_tool(_check_number, unless=None)
    )
    env: FrozenMap[str, str] = attrs.field(
        default=_EMPTY,
        converter=_freeze_map,
        validator=_in_tool(_check_env, unless=_EMPTY),
        metadata=_hashed_as(_sorted_items),
    )
    cwd: str | None = attrs.field(default=None, validator=_in_tool(_check_os_string, unless=None))
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=_in_tool(_check_retry, unless=None),
        metadata=_hashed_as(_record_or_none),
    )
    max_concurrency: int | None = attrs.field(
        default=None, validator=_in_tool(_check_positive_int, unless=None)
    )
    """At most this many attempts of this tool run at once (None: no limit)."""

    @property
    def placeholders(self) -> frozenset[str]:
        """The parameter names the command template needs."""
        return placeholders(self.command)


def _check_strategy(rule: RoutingRule, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_name(value, task=None, field=f"routing.{rule.kind}.strategy")


@attrs.frozen(kw_only=True)
class RoutingRule:
    """How a task kind picks among the tools that serve it."""

    kind: str
    strategy: str = attrs.field(default="first", validator=_check_strategy)
    """The name of a strategy of the deciding layer's registry (checked there)."""
    tools: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    """The candidate tools in order; empty means every tool serving the kind, in file order."""


TaskCallable = Callable[..., Awaitable[Any]]


def _check_task_id(task: TaskSpec, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise WorkflowError("every task needs a non-empty string id", field="id")
    if "\0" in value or any(ch in value for ch in "\n\r"):
        raise WorkflowError("an id may not contain NUL or line breaks", field="id")
    _check_text(value, task=None, field="id")


def _check_action(
    task: TaskSpec, attribute: attrs.Attribute[Any], value: tuple[str, ...] | None
) -> None:
    """Exactly one of command, kind and call says what the task does; a command is argv."""
    given = [name for name in ("command", "kind", "call") if getattr(task, name) is not None]
    if len(given) != 1:
        raise WorkflowError(
            "give exactly one of command, kind (with params) or call"
            + (f"; got {', '.join(given)}" if given else ""),
            task=task.id,
            field="command",
        )
    if value is not None:
        _check_argv(value, task=task.id, field="command")


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
        default=None, converter=attrs.converters.optional(_str_tuple), validator=_check_action
    )
    kind: str | None = attrs.field(default=None, validator=_in_task(_check_name, unless=None))
    call: TaskCallable | None = attrs.field(
        default=None,
        eq=False,
        validator=_in_task(_check_callable, unless=None),
        metadata=_hashed_as(_callable_name),
    )
    """An async callable run in-process instead of a command (embedding only)."""
    params: FrozenMap[str, str] = attrs.field(
        default=_EMPTY,
        converter=_freeze_map,
        validator=_in_task(_check_str_map, unless=_EMPTY),
        metadata=_hashed_as(_sorted_items),
    )
    env: FrozenMap[str, str] = attrs.field(
        default=_EMPTY,
        converter=_freeze_map,
        validator=_in_task(_check_env, unless=_EMPTY),
        metadata=_hashed_as(_sorted_items),
    )
    cwd: str | None = attrs.field(default=None, validator=_in_task(_check_os_string, unless=None))
    secret_params: frozenset[str] = attrs.field(
        default=frozenset(),
        converter=_str_frozenset,
        validator=_check_secrets,
        metadata=_hashed_as(_sorted),
    )
    """Params whose values are redacted in events, the store and plans."""
    depends_on: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=_in_task(_check_task_ids)
    )
    priority: int = attrs.field(default=0, validator=_in_task(_check_int))
    """Higher runs first among ready tasks."""
    timeout: float | None = attrs.field(
        default=None, validator=_in_task(_check_number, unless=None)
    )
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=_in_task(_check_retry, unless=None),
        metadata=_hashed_as(_record_or_none),
    )
    tool: str | None = None
    """Pin this task to one tool instead of routing it."""
    continue_on_failure: bool = False
    """When this task fails its dependents still run."""
    args: tuple[Any, ...] = attrs.field(
        default=(), converter=_any_tuple, eq=False, metadata=_NOT_HASHED
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
            return self.command
        if tool is None:
            return None
        params: Mapping[str, str] = self.params
        if redact and self.secret_params:
            params = {
                name: REDACTED if name in self.secret_params else value
                for name, value in params.items()
            }
        return render(tool.command, params, shell=tool.shell)


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
    _check_text(value, task=None, field="workflow.name")


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


@attrs.frozen(kw_only=True)
class WorkflowSpec:
    """A whole workflow: tasks, the tools they route to, and run-wide settings."""

    name: str = attrs.field(validator=_check_workflow_name)
    tasks: tuple[TaskSpec, ...] = attrs.field(
        converter=_task_tuple, validator=_check_has_tasks, metadata=_HASHED_EACH
    )
    max_workers: int | None = attrs.field(
        default=None, validator=_in_workflow(_check_positive_int, unless=None)
    )
    """Worker tasks per run (None: the number of CPUs)."""
    timeout: float | None = attrs.field(
        default=None, validator=_in_workflow(_check_number, unless=None)
    )
    """Default per-attempt timeout in seconds for tasks and tools that set none."""
    kill_grace: float = attrs.field(default=5.0, validator=_in_workflow(_check_number))
    """Seconds between SIGTERM and SIGKILL when an attempt is stopped."""
    retry: RetryPolicy | None = attrs.field(
        default=None,
        validator=_in_workflow(_check_retry, unless=None),
        metadata=_hashed_as(_record_or_none),
    )
    """Default retry policy for tasks and tools that set none."""
    tools: FrozenMap[str, ToolSpec] = attrs.field(
        default=_EMPTY, converter=_tool_map, validator=_check_tool_names, metadata=_HASHED_EACH
    )
    routing: FrozenMap[str, RoutingRule] = attrs.field(
        default=_EMPTY, converter=_rule_map, validator=_check_routed_tools, metadata=_HASHED_EACH
    )
    fail_fast: bool = False
    base_dir: Path = attrs.field(factory=Path.cwd, converter=Path, metadata=_hashed_as(str))
    """Directory commands run in (and relative cwd values start from)."""
    source: str | None = attrs.field(default=None, metadata=_NOT_HASHED)
    """The file the spec was loaded from, if any (where it came from does not change what runs)."""

    def __attrs_post_init__(self) -> None:
        """Check the tasks against each other, the tools and the routing, all checked by now."""
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
        Every field of every spec class takes part unless its metadata
        leaves it out (`source`, a task's `args`); callables are identified
        by their qualified name. One record of the workflow's own fields is
        hashed, then one per task, tool and routing rule, so it costs a few
        microseconds per task and builds no copy of the spec.
        """
        digest = hashlib.sha256()
        update = digest.update
        cls = type(self)
        update(repr(_recorder(cls)(self)).encode())
        for name in _hashed_each(cls):
            items = getattr(self, name)
            kind: type | None = None
            for item in items.values() if isinstance(items, Mapping) else items:
                if type(item) is not kind:
                    kind = type(item)
                    record = _recorder(kind)
                update(repr(record(item)).encode())
        return digest.hexdigest()[:16]
