"""
The field rules of a spec: each checks one value and names where it is.

A rule raises `WorkflowError` naming the task and the field the way a
workflow file spells them (``tools.NAME.FIELD``, ``workflow.FIELD``), so a
spec built in Python fails with the same message a loaded file does. The
validator factories `in_task`, `in_tool` and `in_workflow` turn a rule into
the attrs validator of a field of that spec class. Kept apart from the spec
classes so each rule can be read, and reused, on its own; the classes import
them and say which rule checks which field.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..errors import WorkflowError

if TYPE_CHECKING:
    from .spec import RetryPolicy, TaskSpec, ToolSpec, WorkflowSpec


class Rule(Protocol):
    """Check one value; raise `WorkflowError` naming `task` and `field` if it is off."""

    def __call__(self, value: Any, /, *, task: str | None, field: str) -> None: ...


_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()
"""How `os.fsencode` turns text into bytes (called directly: it runs for each argv element)."""


def check_number(value: object, *, task: str | None, field: str, minimum: float = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise WorkflowError(f"expected a number, got {value!r}", task=task, field=field)
    if value < minimum:
        raise WorkflowError(f"must be at least {minimum}, got {value!r}", task=task, field=field)


def check_fraction(value: Any, *, task: str | None, field: str) -> None:
    check_number(value, task=task, field=field)
    if value > 1:
        raise WorkflowError("jitter is a fraction between 0 and 1", task=task, field=field)


def check_int(value: object, *, task: str | None, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkflowError(f"expected an integer, got {value!r}", task=task, field=field)


def check_positive_int(value: object, *, task: str | None, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkflowError(f"must be a positive integer, got {value!r}", task=task, field=field)


def check_retries(value: object, *, task: str | None, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WorkflowError(
            f"retries must be a non-negative integer, got {value!r}", task=task, field=field
        )


def check_text(value: str, *, task: str | None, field: str) -> None:
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


def check_texts(value: tuple[str, ...], *, task: str | None, field: str) -> None:
    for item in value:
        check_text(item, task=task, field=field)


def check_name(value: object, *, task: str | None, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise WorkflowError("must be a non-empty string", task=task, field=field)
    check_text(value, task=task, field=field)


def check_os_string(value: str, *, task: str | None, field: str) -> None:
    """
    A value handed to a command (argv, environment, cwd) must become bytes.

    NUL cannot be in argv or the environment. Non-UTF-8 bytes, spelled as
    surrogate escapes, pass through unchanged; other lone surrogates have no
    byte form and are refused.
    """
    if "\0" in value:
        raise WorkflowError(f"NUL byte in {value!r}", task=task, field=field)
    try:
        value.encode(_FS_ENCODING, _FS_ERRORS)
    except UnicodeEncodeError as error:
        raise WorkflowError(
            f"{value!r} cannot be passed to a command (lone surrogate at position {error.start})",
            task=task,
            field=field,
        ) from None


def check_str_map(value: Mapping[str, Any], *, task: str | None, field: str) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise WorkflowError(
                f"expected string keys and values, got {key!r} = {item!r}", task=task, field=field
            )
        check_os_string(key, task=task, field=field)
        check_os_string(item, task=task, field=f"{field}.{key}")


def check_env(value: Mapping[str, Any], *, task: str | None, field: str) -> None:
    check_str_map(value, task=task, field=field)
    for key in value:
        if not key or "=" in key:
            raise WorkflowError(
                f"{key!r} is not an environment variable name (empty or has '=')",
                task=task,
                field=field,
            )


def check_argv(value: tuple[str, ...], *, task: str | None, field: str) -> None:
    if not value:
        raise WorkflowError("must be a non-empty list of strings", task=task, field=field)
    for item in value:
        if not isinstance(item, str):
            raise WorkflowError(f"expected strings, got {item!r}", task=task, field=field)
        check_os_string(item, task=task, field=field)


def check_task_ids(value: tuple[object, ...], *, task: str | None, field: str) -> None:
    for dep in value:
        if not isinstance(dep, str):
            raise WorkflowError(f"expected task ids, got {dep!r}", task=task, field=field)


def check_paths(value: tuple[object, ...], *, task: str | None, field: str) -> None:
    """Declared inputs and outputs: non-empty paths a command could be given."""
    for path in value:
        if not isinstance(path, str) or not path:
            raise WorkflowError(f"expected non-empty paths, got {path!r}", task=task, field=field)
        check_os_string(path, task=task, field=field)


def check_exit_codes(value: tuple[object, ...], *, task: str | None, field: str) -> None:
    """The exit codes that count as success: integers from 0 to 255, at least one."""
    if not value:
        raise WorkflowError("needs at least one exit code", task=task, field=field)
    for code in value:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise WorkflowError(
                f"exit codes are integers from 0 to 255, got {code!r}", task=task, field=field
            )


def check_callable(value: object, *, task: str | None, field: str) -> None:
    if not callable(value):
        raise WorkflowError("must be an async callable", task=task, field=field)


def check_retry(value: RetryPolicy, *, task: str | None, field: str) -> None:
    value.validate(task=task, prefix=f"{field}.")


_NO_VALUE = object()
"""A value no field holds: an `unless` that skips nothing."""


def in_task(rule: Rule, *, unless: object = _NO_VALUE) -> _Validator:
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


def in_tool(rule: Rule, *, unless: object = _NO_VALUE) -> _Validator:
    """A `ToolSpec` validator: `rule` naming the field ``tools.NAME.FIELD``, as `in_task`."""

    def validate(tool: ToolSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not unless:
            rule(value, task=None, field=f"tools.{tool.name}.{attribute.name}")

    return validate


def in_workflow(rule: Rule, *, unless: object = _NO_VALUE) -> _Validator:
    """A `WorkflowSpec` validator: `rule` naming the field ``workflow.FIELD``, as `in_task`."""

    def validate(spec: WorkflowSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not unless:
            rule(value, task=None, field=f"workflow.{attribute.name}")

    return validate
