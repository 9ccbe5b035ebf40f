"""
`build_task`, the loader's way to build a task, against the attrs constructor.

`build_task` runs only the converters and rules of the fields it is given,
relying on every default being stored as its converter makes it and passing
its rule. These tests check that premise field by field, and that both
constructors build equal tasks and refuse the same bad values with the
same message, task and field.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from uet_trio_cli import _plan, main

from uet_trio.errors import WorkflowError
from uet_trio.workflow.graph import compile_graph
from uet_trio.workflow.loader import load_workflow, parse_workflow
from uet_trio.workflow.spec import RetryPolicy, TaskSpec, build_task

FIELDS = [field for field in attrs.fields(TaskSpec) if field.name != "id"]


async def _call() -> None:
    """A callable for tasks that run one."""


@pytest.mark.parametrize("field", FIELDS, ids=lambda field: field.name)
def test_each_default_is_stored_as_converted_and_passes_its_rule(
    field: attrs.Attribute[Any],
) -> None:
    if field.converter is not None:
        converted = field.converter(field.default)
        assert converted == field.default
        assert type(converted) is type(field.default)
    if field.validator is not None and field.name != "command":
        task = TaskSpec(id="t", command=["true"])
        field.validator(task, field, field.default)


VALID: list[dict[str, Any]] = [
    {"id": "t", "command": ["true"]},
    {"id": "t", "command": ["echo", "{x}", "{inputs}"], "params": {"x": "1"}, "inputs": ["./a//b"]},
    {"id": "t", "kind": "compile", "params": {"src": "a.c"}, "secret_params": ["src"]},
    {"id": "t", "call": _call, "args": (1, 2)},
    {
        "id": "t",
        "command": ["true"],
        "env": {"A": "1"},
        "cwd": "sub",
        "depends_on": ["a"],
        "after": ["b"],
        "outputs": ["out/x"],
        "ok_exit_codes": [0, 3],
        "group": "g",
        "priority": 4,
        "timeout": 2.5,
        "retry": RetryPolicy(retries=2),
        "continue_on_failure": True,
    },
    {"id": "t", "kind": "k", "tool": "cc"},
]


@pytest.mark.parametrize("given", VALID, ids=range(len(VALID)))
def test_builds_what_the_constructor_builds(given: dict[str, Any]) -> None:
    built, constructed = build_task(given), TaskSpec(**given)
    assert built == constructed
    assert repr(built) == repr(constructed)
    for field in attrs.fields(TaskSpec):  # call and args too, which == leaves out
        value = getattr(built, field.name)
        assert value == getattr(constructed, field.name)
        assert type(value) is type(getattr(constructed, field.name))


def test_a_built_task_is_frozen() -> None:
    task = build_task({"id": "t", "command": ["true"]})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.priority = 3  # type: ignore[misc]


BAD: list[tuple[str, dict[str, Any]]] = [
    ("id empty", {"id": " ", "command": ["true"]}),
    ("id not text", {"id": 5, "command": ["true"]}),
    ("id line break", {"id": "a\nb", "command": ["true"]}),
    ("id surrogate", {"id": "a\udc80", "command": ["true"]}),
    ("no action", {"id": "t"}),
    ("two actions", {"id": "t", "command": ["true"], "kind": "k"}),
    ("command empty", {"id": "t", "command": []}),
    ("command not text", {"id": "t", "command": ["echo", 1]}),
    ("command NUL", {"id": "t", "command": ["echo", "a\0"]}),
    ("command surrogate", {"id": "t", "command": ["echo", "\ud800"]}),
    ("command unknown placeholder", {"id": "t", "command": ["echo", "{x}"]}),
    ("command bad placeholder", {"id": "t", "command": ["echo", "{"]}),
    ("kind empty", {"id": "t", "kind": ""}),
    ("call not callable", {"id": "t", "call": 5}),
    ("params not text", {"id": "t", "command": ["true"], "params": {"a": 1}}),
    ("params NUL", {"id": "t", "command": ["true"], "params": {"a": "\0"}}),
    ("env name", {"id": "t", "command": ["true"], "env": {"A=B": "x"}}),
    ("cwd NUL", {"id": "t", "command": ["true"], "cwd": "a\0"}),
    ("secret not a param", {"id": "t", "command": ["true"], "secret_params": ["s"]}),
    ("depends_on not ids", {"id": "t", "command": ["true"], "depends_on": [1]}),
    ("after not ids", {"id": "t", "command": ["true"], "after": [None]}),
    ("inputs empty path", {"id": "t", "command": ["true"], "inputs": [""]}),
    ("outputs not paths", {"id": "t", "command": ["true"], "outputs": [3]}),
    ("ok_exit_codes empty", {"id": "t", "command": ["true"], "ok_exit_codes": []}),
    ("ok_exit_codes range", {"id": "t", "command": ["true"], "ok_exit_codes": [256]}),
    ("priority bool", {"id": "t", "command": ["true"], "priority": True}),
    ("timeout negative", {"id": "t", "command": ["true"], "timeout": -1}),
    ("timeout NaN", {"id": "t", "command": ["true"], "timeout": float("nan")}),
    ("retry", {"id": "t", "command": ["true"], "retry": RetryPolicy(retries=-1)}),
    # Two bad fields: the first in field order is named by both.
    ("first in field order", {"id": "t", "command": ["true"], "timeout": -1, "env": {"": "x"}}),
]


@pytest.mark.parametrize("given", [given for _, given in BAD], ids=[name for name, _ in BAD])
def test_refuses_what_the_constructor_refuses(given: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError) as constructed:
        TaskSpec(**given)
    with pytest.raises(WorkflowError) as built:
        build_task(given)
    assert str(built.value) == str(constructed.value)
    assert (built.value.task, built.value.field) == (
        constructed.value.task,
        constructed.value.field,
    )


@pytest.mark.parametrize("given", [{"command": ["true"]}, {"id": "t", "commands": ["true"]}])
def test_a_field_it_does_not_know_or_a_missing_id_is_a_type_error(given: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        build_task(given)


def _document(count: int) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = [{"id": "t0", "command": ["true"]}]
    tasks += [
        {"id": f"t{i}", "command": ["true"], "depends_on": [f"t{i - 1}"]} for i in range(1, count)
    ]
    return {"workflow": {"name": "chain"}, "tasks": tasks}


def test_a_loaded_file_equals_the_parsed_document_and_shares_equal_commands(
    tmp_path: Path,
) -> None:
    document = _document(5)
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(document))
    loaded = load_workflow(flow)
    parsed = parse_workflow(document, base_dir=tmp_path, source=str(flow.resolve()))
    assert loaded == parsed
    assert document == _document(5), "parse_workflow leaves its caller's document as it was"
    assert len({id(task.command) for task in loaded.tasks}) == 1


def test_the_graph_of_repeated_and_single_dependencies() -> None:
    graph = compile_graph(parse_workflow(_document(3)))
    assert graph.deps == ((), (0,), (1,))
    assert graph.dependents == ((1,), (2,), ())
    spec = parse_workflow(
        {
            "workflow": {"name": "w"},
            "tasks": [
                {"id": "a", "command": ["true"]},
                {"id": "b", "command": ["true"]},
                {"id": "c", "command": ["true"], "depends_on": ["a", "b", "a"]},
            ],
        }
    )
    graph = compile_graph(spec)
    assert graph.deps == ((), (), (0, 1))
    assert graph.dependents == ((2,), (2,), ())


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_while_loading_and_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with _plan.collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_validate_and_plan_of_a_chain(tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(_document(1500)))
    runner = CliRunner()
    validated = runner.invoke(main, ["validate", str(flow)])
    assert validated.exit_code == 0, validated.output
    assert "1500 tasks in 1500 levels" in validated.output
    planned = runner.invoke(main, ["plan", str(flow), "--db", str(tmp_path / "none.db")])
    assert planned.exit_code == 0, planned.output
    lines = planned.output.splitlines()
    assert lines[0].startswith("workflow chain: 1500 tasks in 1500 levels")
    assert lines[-2:] == ["level 1499:", "  t1499  true"]


def test_counts_of_a_million_are_written_out() -> None:
    from uet_trio_cli._common import plural

    assert plural(1_000_000, "task") == "1000000 tasks"
    assert plural(2.5, "task") == "2.5 tasks"
