"""
Workflow files (TOML or JSON) to `WorkflowSpec`.

The loader checks the shape and types of the document (unknown keys, wrong
types) and builds the spec classes, whose constructors check the rest. Every
error is a `WorkflowError` naming the file, the task and the field. The file's
directory becomes the workflow's ``base_dir``. Nothing here knows about running.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import WorkflowError
from .expansion import (
    InputResolver,
    combinations,
    expand_references,
    instance_id,
    is_glob,
    render_field,
)
from .frozen import path_tuple
from .spec import (
    RETRY_PATHS,
    RetryPolicy,
    RoutingRule,
    TaskSpec,
    ToolSpec,
    WorkflowSpec,
    build_task,
)
from .templates import LISTS, unknown_placeholders


def _keys(cls: type, *, apart: Iterable[str], extra: Iterable[str] = ()) -> frozenset[str]:
    """
    The keys a table of `cls` may have in a file: its attrs field names.

    Less the fields `apart` (spelled elsewhere in the file, or not at all),
    plus `extra` keys that a file spells differently from the fields.
    Derived from the class, so a field added to it is a key here too.
    """
    names = {field.name for field in attrs.fields(cls)}
    apart = frozenset(apart)
    unknown = apart - names
    if unknown:
        raise AssertionError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return frozenset(names - apart) | frozenset(extra)


_BACKOFF = "backoff."
_BACKOFF_KEYS = tuple(path[len(_BACKOFF) :] for path in RETRY_PATHS if path.startswith(_BACKOFF))
"""The keys of a ``backoff`` table, in the order they are checked."""
_RETRY_KEYS = frozenset(path.partition(".")[0] for path in RETRY_PATHS)
"""A `RetryPolicy` is spelled inline in its owner's table (``retries``, ``backoff``, ...)."""
_WORKFLOW_KEYS = _keys(
    WorkflowSpec,
    # tasks, tools and routing are top-level tables; base_dir and source come
    # from where the file is.
    apart={"tasks", "tools", "routing", "base_dir", "source", "retry"},
    extra=_RETRY_KEYS,
)
_TOOL_KEYS = _keys(ToolSpec, apart={"name", "retry"}, extra=_RETRY_KEYS)
_TASK_KEYS = _keys(
    TaskSpec,
    # Secret params are marked inside params; callables exist only in Python;
    # an instance's group is the task table it was expanded from.
    apart={"secret_params", "call", "args", "retry", "group"},
    extra=_RETRY_KEYS | {"foreach"},
)
_ROUTING_KEYS = _keys(RoutingRule, apart={"kind"})
_TOP_KEYS = frozenset({"workflow", "tasks", "tools", "routing"})
_RENDERED = frozenset({"inputs", "outputs", "env", "cwd"})
"""The fields of a task whose values may hold placeholders of its params."""


def load_workflow(path: str | Path) -> WorkflowSpec:
    """
    Read the workflow file at `path` (``.json`` is JSON, anything else TOML).

    Raises:
        WorkflowError: the file is missing, unreadable, malformed or invalid.
    """
    path = Path(path)
    try:
        document = _parse(_text(path), json_format=path.suffix.lower() == ".json")
        resolved = path.resolve()
        # The document is ours: each task's table is dropped once its task
        # is built, so a large file is not held twice.
        return _workflow(document, base_dir=resolved.parent, source=str(resolved), owned=True)
    except WorkflowError as error:
        raise error.in_file(path) from None


def _text(path: Path) -> str:
    """The file's text (its bytes are let go as soon as they are decoded)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowError("no such file", path=path) from None
    except OSError as error:
        raise WorkflowError(f"cannot read the file: {error.strerror or error}", path=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WorkflowError(
            f"not UTF-8 text ({error.reason} at byte {error.start})", path=path
        ) from None


def _parse(text: str, *, json_format: bool) -> Any:
    if json_format:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise WorkflowError(
                f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from None
        except RecursionError:
            raise WorkflowError("malformed JSON: nested too deeply") from None
        except ValueError as error:
            # An integer literal longer than Python's int_max_str_digits.
            raise WorkflowError(f"malformed JSON: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise WorkflowError(f"malformed TOML: {error}") from None
    except RecursionError:
        raise WorkflowError("malformed TOML: nested too deeply") from None
    except ValueError as error:
        # An integer literal longer than Python's int_max_str_digits.
        raise WorkflowError(f"malformed TOML: {error}") from None


def parse_workflow(
    document: Any, *, base_dir: Path | None = None, source: str | None = None
) -> WorkflowSpec:
    """
    Build a `WorkflowSpec` from an already parsed document (dicts and lists).

    Raises:
        WorkflowError: naming the task and field that are wrong.
    """
    return _workflow(document, base_dir=base_dir, source=source, owned=False)


def _workflow(
    document: Any, *, base_dir: Path | None, source: str | None, owned: bool
) -> WorkflowSpec:
    """`parse_workflow`; when the caller gives up the document (`owned`), it is emptied."""
    doc = _table(document, None, "the workflow document")
    _no_unknown(doc, _TOP_KEYS, None, "")
    workflow = _table(doc.get("workflow", {}), None, "workflow")
    _no_unknown(workflow, _WORKFLOW_KEYS, None, "workflow.")
    tools_doc = _table(doc.get("tools", {}), None, "tools")
    routing_doc = _table(doc.get("routing", {}), None, "routing")
    tasks_doc = doc.get("tasks")
    if tasks_doc is None or tasks_doc == []:
        raise WorkflowError("the workflow has no tasks", field="tasks")
    if not isinstance(tasks_doc, list):
        raise WorkflowError("expected a list of tasks ([[tasks]] tables)", field="tasks")
    tools = [_tool(name, body) for name, body in tools_doc.items()]
    routing = [_rule(kind, body) for kind, body in routing_doc.items()]
    base_dir = base_dir or Path.cwd()
    tasks = _tasks(tasks_doc, base_dir, owned=owned)
    name = workflow.get("name", Path(source).stem if source else None)
    return WorkflowSpec(
        name=_typed(name, str, None, "workflow.name"),
        tasks=tasks,
        tools=tools,
        routing=routing,
        max_workers=_optional(workflow, "max_workers", int, None, "workflow."),
        timeout=_optional_number(workflow, "timeout", None, "workflow."),
        retry=_retry(workflow, None, "workflow."),
        fail_fast=_optional(workflow, "fail_fast", bool, None, "workflow.") or False,
        kill_grace=_first_number(_optional_number(workflow, "kill_grace", None, "workflow."), 5.0),
        dask=_optional(workflow, "dask", str, None, "workflow."),
        base_dir=base_dir,
        source=source,
    )


def _tool(name: str, body: Any) -> ToolSpec:
    where = f"tools.{name}."
    table = _table(body, None, f"tools.{name}")
    _no_unknown(table, _TOOL_KEYS, None, where)
    if "command" not in table:
        raise WorkflowError("a tool needs a command", field=f"{where}command")
    return ToolSpec(
        name=name,
        command=_argv(table["command"], None, f"{where}command"),
        kinds=_str_list(table.get("kinds", []), None, f"{where}kinds"),
        timeout=_optional_number(table, "timeout", None, where),
        env=_str_map(table.get("env", {}), None, f"{where}env"),
        cwd=_optional(table, "cwd", str, None, where),
        shell=_optional(table, "shell", bool, None, where) or False,
        retry=_retry(table, None, where),
        max_concurrency=_optional(table, "max_concurrency", int, None, where),
        resources=_number_map(table.get("resources", {}), None, f"{where}resources"),
    )


def _rule(kind: str, body: Any) -> RoutingRule:
    where = f"routing.{kind}."
    table = _table(body, None, f"routing.{kind}")
    _no_unknown(table, _ROUTING_KEYS, None, where)
    return RoutingRule(
        kind=kind,
        strategy=_optional(table, "strategy", str, None, where) or "first",
        tools=_str_list(table.get("tools", []), None, f"{where}tools"),
    )


def _tasks(tasks_doc: list[Any], base_dir: Path, *, owned: bool) -> list[TaskSpec]:
    """
    Every task of the file, each ``foreach`` table expanded to its instances.

    A task is built as soon as its table is read, unless it reads the other
    tasks: an input glob (matched against every declared output too) or a
    dependency on a fanned-out task (meaning each of its instances). Those
    are kept as drafts and built once all tasks are known, so a large file
    holds only the few drafts that need it. When the document is `owned`,
    each table is dropped from it once read. Tasks with equal commands
    share one tuple (a million tasks of ``["true"]`` hold one).
    """
    fanned_out = {
        body.get("id") for body in tasks_doc if isinstance(body, Mapping) and "foreach" in body
    }
    built: list[TaskSpec | dict[str, Any]] = []
    groups: dict[str, list[str]] = {}
    tables: set[str] = set()
    commands: dict[tuple[str, ...], tuple[str, ...]] = {}
    for position, body in enumerate(tasks_doc):
        if owned:
            tasks_doc[position] = None
        found = _task_drafts(position, body, base_dir, groups, commands)
        # Two tables with one id would be one name for two sets of instances;
        # instance ids alone need not collide, so it is checked here.
        table_id = found[0].get("group") or found[0]["id"]
        if table_id in tables:
            raise WorkflowError("duplicate task id", task=table_id, field="id")
        tables.add(table_id)
        for draft in found:
            if _reads_other_tasks(draft, fanned_out):
                built.append(draft)
            else:
                built.append(build_task(draft))
    drafts = [item for item in built if isinstance(item, dict)]
    if not drafts:
        return built  # type: ignore[return-value]
    resolver = InputResolver(
        (
            path
            for item in built
            for path in (item.get("outputs", ()) if isinstance(item, dict) else item.outputs)
        ),
        base_dir,
    )
    for draft in drafts:
        if draft.get("inputs"):
            draft["inputs"] = resolver.resolve(
                draft["inputs"], own=draft.get("outputs", ()), task=draft["id"]
            )
        for key in ("depends_on", "after"):
            if key in draft:
                draft[key] = expand_references(draft[key], groups)
    return [build_task(item) if isinstance(item, dict) else item for item in built]


def _reads_other_tasks(draft: Mapping[str, Any], fanned_out: set[Any]) -> bool:
    """Whether a draft can be built only once every task is known (see `_tasks`)."""
    inputs = draft.get("inputs", ())
    if not fanned_out and not inputs:
        return False
    return (
        any(is_glob(path) for path in inputs)
        or any(dep in fanned_out for dep in draft.get("depends_on", ()))
        or any(dep in fanned_out for dep in draft.get("after", ()))
    )


def _task_drafts(
    position: int,
    body: Any,
    base_dir: Path,
    groups: dict[str, list[str]],
    commands: dict[tuple[str, ...], tuple[str, ...]],
) -> list[dict[str, Any]]:
    """
    The keyword arguments of the `TaskSpec` (or, with ``foreach``, of each
    instance) that the task table at `position` describes.

    `groups` gets the instance ids of a fanned-out task; `commands` keeps
    one tuple of each command seen, for equal commands to share.
    """
    table = body if type(body) is dict else _table(body, None, f"tasks[{position}]")
    task_id = table.get("id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise WorkflowError(
            f"task #{position + 1} needs a non-empty string id", field=f"tasks[{position}].id"
        )
    if not _TASK_KEYS.issuperset(table):
        _no_unknown(table, _TASK_KEYS, task_id, "")
    draft: dict[str, Any] = {"id": task_id}
    params: dict[str, str] = {}
    if "params" in table:
        params, secret = _params(table["params"], task_id)
        for key in params:
            _not_a_list_name(key, task_id, f"params.{key}")
        draft["params"] = params
        if secret:
            draft["secret_params"] = secret
    # Only the keys the table has: a task of a large file sets three or
    # four, and `build_task` leaves the others at their defaults unchecked.
    if "command" in table:
        command = tuple(_argv(table["command"], task_id, "command"))
        draft["command"] = commands.setdefault(command, command)
    if "kind" in table:
        draft["kind"] = _typed(table["kind"], str, task_id, "kind")
    if "depends_on" in table:
        draft["depends_on"] = _str_list(table["depends_on"], task_id, "depends_on")
    if "after" in table:
        draft["after"] = _str_list(table["after"], task_id, "after")
    if "priority" in table:
        draft["priority"] = _typed(table["priority"], int, task_id, "priority")
    if "timeout" in table:
        draft["timeout"] = _optional_number(table, "timeout", task_id, "")
    if "env" in table:
        draft["env"] = _str_map(table["env"], task_id, "env")
    if "cwd" in table:
        draft["cwd"] = _typed(table["cwd"], str, task_id, "cwd")
    if not _RETRY_KEYS.isdisjoint(table):
        draft["retry"] = _retry(table, task_id, "")
    if "tool" in table:
        draft["tool"] = _typed(table["tool"], str, task_id, "tool")
    if "continue_on_failure" in table:
        draft["continue_on_failure"] = _typed(
            table["continue_on_failure"], bool, task_id, "continue_on_failure"
        )
    if "inputs" in table:
        draft["inputs"] = _str_list(table["inputs"], task_id, "inputs")
    if "outputs" in table:
        draft["outputs"] = _str_list(table["outputs"], task_id, "outputs")
    if "ok_exit_codes" in table:
        draft["ok_exit_codes"] = _int_list(table["ok_exit_codes"], task_id, "ok_exit_codes")
    if "foreach" not in table:
        if not _RENDERED.isdisjoint(draft):
            _rendered(draft, params, task_id)
        return [draft]
    foreach = _table(table["foreach"], task_id, "foreach")
    if not foreach:
        raise WorkflowError("needs at least one key", task=task_id, field="foreach")
    for key in foreach:
        if key in params:
            raise WorkflowError(
                f"{key!r} is both a foreach key and a param", task=task_id, field=f"foreach.{key}"
            )
        _not_a_list_name(key, task_id, f"foreach.{key}")
    if "command" in draft:
        _known_placeholders(draft["command"], [*params, *foreach], task_id)
    instances = []
    for combination in combinations(foreach, task=task_id, base_dir=base_dir):
        values = {**params, **dict(combination)}
        instance = {
            **draft,
            "id": instance_id(task_id, combination),
            "params": values,
            "group": task_id,
        }
        instances.append(_rendered(instance, values, task_id))
    groups[task_id] = [instance["id"] for instance in instances]
    return instances


def _known_placeholders(command: Sequence[str], names: list[str], task: str) -> None:
    """
    Every placeholder of a fanned-out task's own command is a param or foreach key.

    Checked once on the task table, so the error names the task as written
    rather than its first instance.
    """
    try:
        unknown = unknown_placeholders(command, names, lists=True)
    except WorkflowError as error:
        raise WorkflowError(error.message, task=task, field="command") from None
    if unknown:
        raise WorkflowError(
            f"unknown placeholder {{{unknown[0]}}} (not a foreach key or param; "
            "write {{ and }} for literal braces)",
            task=task,
            field="command",
        )


def _not_a_list_name(name: str, task: str, field: str) -> None:
    """``inputs`` and ``outputs`` name the task's path lists in templates, never a value."""
    if name in LISTS:
        raise WorkflowError(
            f"{name!r} is reserved: {{{name}}} stands for the task's {name} list",
            task=task,
            field=field,
        )


def _rendered(draft: dict[str, Any], params: dict[str, str], task: str) -> dict[str, Any]:
    """
    `draft` with placeholders filled in its paths, env values and cwd.

    Outputs are made plain (``./build//a.o`` is ``build/a.o``) here, as the
    spec would, since input globs are matched against them before there is a spec.
    """
    if "inputs" in draft:
        draft["inputs"] = [
            render_field(p, params, task=task, field="inputs") for p in draft["inputs"]
        ]
    if "outputs" in draft:
        draft["outputs"] = list(
            path_tuple(
                render_field(p, params, task=task, field="outputs") for p in draft["outputs"]
            )
        )
    if "env" in draft:
        draft["env"] = {
            key: render_field(value, params, task=task, field=f"env.{key}")
            for key, value in draft["env"].items()
        }
    if "cwd" in draft:
        draft["cwd"] = render_field(draft["cwd"], params, task=task, field="cwd")
    return draft


def _params(value: Any, task: str) -> tuple[dict[str, str], set[str]]:
    """Params are strings (numbers are converted), or ``{ value = ..., secret = true }``."""
    table = _table(value, task, "params")
    params: dict[str, str] = {}
    secret: set[str] = set()
    for key, item in table.items():
        field = f"params.{key}"
        if isinstance(item, Mapping):
            _no_unknown(item, ("value", "secret"), task, f"{field}.")
            if "value" not in item:
                raise WorkflowError("a param table needs a value", task=task, field=field)
            if _typed(item.get("secret", False), bool, task, f"{field}.secret"):
                secret.add(key)
            item = item["value"]
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise WorkflowError(
                f"expected a string or number, got {_describe(item)}", task=task, field=field
            )
        params[key] = str(item)
    return params, secret


def _retry(table: Mapping[str, Any], task: str | None, where: str) -> RetryPolicy | None:
    if not _RETRY_KEYS & table.keys():
        return None
    backoff = _table(table.get("backoff", {}), task, f"{where}backoff")
    _no_unknown(backoff, _BACKOFF_KEYS, task, f"{where}backoff.")
    values: dict[str, Any] = {}
    for key in _BACKOFF_KEYS:
        number = _optional_number(backoff, key, task, f"{where}backoff.")
        if number is not None:
            values[key] = float(number)
    retry_on = table.get("retry_on", [])
    if not isinstance(retry_on, list):
        raise WorkflowError(
            'expected a list of exit codes and/or "timeout"', task=task, field=f"{where}retry_on"
        )
    policy = RetryPolicy(
        retries=_optional(table, "retries", int, task, where) or 0,
        retry_on=tuple(retry_on),
        **values,
    )
    policy.validate(task=task, prefix=where)
    return policy


# ------------------------------------------------------------ type checks


def _describe(value: Any) -> str:
    names = {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), f"{type(value).__name__} {value!r}")


def _table(value: Any, task: str | None, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WorkflowError(f"expected a table, got {_describe(value)}", task=task, field=field)
    return value


def _no_unknown(
    table: Mapping[str, Any], known: Collection[str], task: str | None, prefix: str
) -> None:
    for key in table:
        if key not in known:
            raise WorkflowError(
                f"unknown field (expected one of: {', '.join(sorted(known))})",
                task=task,
                field=f"{prefix}{key}",
            )


def _typed(value: Any, kind: type, task: str | None, field: str) -> Any:
    if kind is int and isinstance(value, bool):
        raise WorkflowError(f"expected an integer, got {_describe(value)}", task=task, field=field)
    if not isinstance(value, kind):
        expected = {int: "an integer", str: "a string", bool: "true or false"}[kind]
        raise WorkflowError(f"expected {expected}, got {_describe(value)}", task=task, field=field)
    return value


def _optional(table: Mapping[str, Any], key: str, kind: type, task: str | None, prefix: str) -> Any:
    if key not in table:
        return None
    return _typed(table[key], kind, task, f"{prefix}{key}")


def _optional_number(
    table: Mapping[str, Any], key: str, task: str | None, prefix: str
) -> float | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkflowError(
            f"expected a number of seconds, got {_describe(value)}", task=task, field=prefix + key
        )
    return value


def _first_number(value: float | None, default: float) -> float:
    return default if value is None else value


def _all_text(items: list[Any]) -> bool:
    """Whether every item is a string (a loop: cheaper than all() for the short lists of a task)."""
    for item in items:  # noqa: SIM110 (see above)
        if not isinstance(item, str):
            return False
    return True


def _str_list(value: Any, task: str | None, field: str) -> list[str]:
    if not isinstance(value, list) or not _all_text(value):
        raise WorkflowError(
            f"expected a list of strings, got {_describe(value)}", task=task, field=field
        )
    return value


def _optional_list(table: Mapping[str, Any], key: str, task: str) -> list[str] | tuple[()]:
    """A list of strings under `key`, or an empty tuple (shared) when the table has none."""
    return _str_list(table[key], task, key) if key in table else ()


def _int_list(value: Any, task: str | None, field: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise WorkflowError(
            f"expected a list of integers, got {_describe(value)}", task=task, field=field
        )
    return value


def _argv(value: Any, task: str | None, field: str) -> list[str]:
    if not isinstance(value, list) or not value or not _all_text(value):
        raise WorkflowError(
            f"expected a non-empty list of strings (argv), got {_describe(value)}; "
            'for example ["echo", "hi"], or ["sh", "-c", "..."] for a shell command',
            task=task,
            field=field,
        )
    return value


def _number_map(value: Any, task: str | None, field: str) -> dict[str, float]:
    table = _table(value, task, field)
    for key, item in table.items():
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise WorkflowError(
                f"expected a number, got {_describe(item)}", task=task, field=f"{field}.{key}"
            )
    return dict(table)


def _str_map(value: Any, task: str | None, field: str) -> dict[str, str]:
    table = _table(value, task, field)
    for key, item in table.items():
        if not isinstance(item, str):
            raise WorkflowError(
                f"expected a string, got {_describe(item)}", task=task, field=f"{field}.{key}"
            )
    return dict(table)
