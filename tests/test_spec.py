"""
The spec is data: immutable maps, field validators, a fingerprint and loader keys from the fields.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from uet_trio.deciding.routing import check_routing
from uet_trio.errors import WorkflowError
from uet_trio.workflow import loader
from uet_trio.workflow.frozen import FrozenMap
from uet_trio.workflow.loader import parse_workflow
from uet_trio.workflow.spec import (
    RetryPolicy,
    RoutingRule,
    TaskSpec,
    ToolSpec,
    WorkflowSpec,
)

ROOT = Path(__file__).resolve().parent.parent


async def first_call() -> None:
    """A callable task."""


async def second_call() -> None:
    """Another callable task."""


def base_spec(
    tasks: dict[int, dict[str, Any]] | None = None,
    tools: dict[str, dict[str, Any]] | None = None,
    rule: dict[str, Any] | None = None,
    **workflow: Any,
) -> WorkflowSpec:
    """
    A small spec using every kind of field; the arguments change parts of it.

    `tasks` maps a task's position to field overrides, `tools` a tool's name
    to overrides, `rule` overrides the routing rule of kind ``k``.
    """
    task_fields: list[dict[str, Any]] = [
        {"id": "t0", "command": ["true"]},
        {"id": "t1", "kind": "k", "params": {"x": "1"}, "depends_on": ["t0"]},
        {"id": "t2", "call": first_call, "args": [1]},
    ]
    for position, changes in (tasks or {}).items():
        task_fields[position] = {**task_fields[position], **changes}
    tool_fields: dict[str, dict[str, Any]] = {
        "a": {"command": ["echo", "{x}"], "kinds": ["k", "j"]},
        "b": {"command": ["printf", "{x}"], "kinds": ["k"]},
        "c": {"command": ["true"], "kinds": ["z"]},
    }
    for name, changes in (tools or {}).items():
        tool_fields[name] = {**tool_fields[name], **changes}
    return WorkflowSpec(
        **{
            "name": "w",
            "tasks": [TaskSpec(**fields) for fields in task_fields],
            "tools": [ToolSpec(**{"name": name, **fields}) for name, fields in tool_fields.items()],
            "routing": [RoutingRule(**{"kind": "k", "tools": ["a"], **(rule or {})})],
            "base_dir": "/base",
            **workflow,
        }
    )


class TestFrozenMaps:
    def test_every_map_of_a_spec_refuses_changes(self) -> None:
        """Assignment and deletion raise TypeError on each mapping field of each class."""
        spec = base_spec(
            tasks={1: {"env": {"A": "b"}}},
            tools={"a": {"env": {"B": "c"}, "resources": {"GPU": 1}}},
        )
        owners: list[Any] = [spec, spec.tasks[1], spec.tools["a"]]
        maps = [
            getattr(owner, field.name)
            for owner in owners
            for field in attrs.fields(type(owner))
            if isinstance(getattr(owner, field.name), Mapping)
        ]
        # tools, routing, the task's params and env, the tool's env and resources
        assert len(maps) == 6
        for mapping in maps:
            key = next(iter(mapping))
            with pytest.raises(TypeError):
                mapping[key] = mapping[key]
            with pytest.raises(TypeError):
                del mapping[key]
            assert isinstance(mapping, FrozenMap)

    def test_a_callers_dict_is_copied(self) -> None:
        """Changing the dict a spec was built from does not change the spec."""
        params = {"x": "1"}
        task = TaskSpec(id="t", kind="k", params=params)
        params["x"] = "2"
        assert task.params == {"x": "1"}

    def test_equal_to_an_equal_dict(self) -> None:
        """A frozen map equals a dict (and any mapping) with the same items, either way round."""
        frozen = FrozenMap({"a": "1", "b": "2"})
        assert frozen == {"b": "2", "a": "1"}
        assert {"a": "1", "b": "2"} == frozen  # noqa: SIM300 (the dict on the left on purpose)
        assert frozen == FrozenMap({"b": "2", "a": "1"})
        assert frozen != {"a": "1"}
        assert frozen != [("a", "1"), ("b", "2")]
        assert hash(frozen) == hash(FrozenMap({"b": "2", "a": "1"}))
        assert TaskSpec(id="t", kind="k", params={"x": "1"}).params == {"x": "1"}

    def test_specs_with_equal_maps_are_equal_and_hashable(self) -> None:
        """Specs compare by value; a task is hashable now that its maps are."""
        one = TaskSpec(id="t", kind="k", params={"x": "1", "y": "2"}, env={"A": "b"})
        two = TaskSpec(id="t", kind="k", params={"y": "2", "x": "1"}, env={"A": "b"})
        assert one == two
        assert hash(one) == hash(two)

    def test_reads_behave_as_a_dicts(self) -> None:
        """Lookup, get, membership, iteration, length, views and unpacking."""
        frozen = FrozenMap({"a": "1", "b": "2"})
        assert frozen["a"] == "1"
        with pytest.raises(KeyError):
            frozen["z"]
        assert frozen.get("z") is None
        assert frozen.get("z", "d") == "d"
        assert "a" in frozen
        assert "z" not in frozen
        assert list(frozen) == ["a", "b"]
        assert len(frozen) == 2
        assert list(frozen.items()) == [("a", "1"), ("b", "2")]
        assert list(frozen.values()) == ["1", "2"]
        assert {**frozen, "c": "3"} == {"a": "1", "b": "2", "c": "3"}
        assert repr(frozen) == "FrozenMap({'a': '1', 'b': '2'})"

    def test_pickling_round_trips(self) -> None:
        """A whole spec pickles and comes back equal, with the same fingerprint and frozen maps."""
        spec = base_spec(
            tasks={1: {"env": {"A": "b"}, "secret_params": ["x"], "retry": RetryPolicy(retries=2)}},
            tools={"a": {"env": {"B": "c"}}},
        )
        for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
            copy = pickle.loads(pickle.dumps(spec, protocol=protocol))
            assert copy == spec
            assert copy.fingerprint() == spec.fingerprint()
            assert isinstance(copy.tasks[1].env, FrozenMap)
            with pytest.raises(TypeError):
                copy.tools["x"] = copy.tools["a"]
        frozen = FrozenMap({"a": "1"})
        assert pickle.loads(pickle.dumps(frozen)) == frozen


# Each field of each spec class, and a change of it that keeps the spec valid.
TASK_CHANGES: dict[str, tuple[int, object]] = {
    "id": (1, "t9"),
    "command": (0, ["false"]),
    "kind": (1, "j"),
    "call": (2, second_call),
    "params": (1, {"x": "2"}),
    "env": (1, {"A": "b"}),
    "cwd": (1, "sub"),
    "secret_params": (1, ["x"]),
    "depends_on": (1, []),
    "priority": (1, 1),
    "timeout": (1, 1.0),
    "retry": (1, RetryPolicy()),
    "tool": (1, "a"),
    "continue_on_failure": (1, True),
    "after": (1, ["t0"]),
    "inputs": (0, ["a.txt"]),
    "outputs": (0, ["b.txt"]),
    "ok_exit_codes": (0, [0, 5]),
}
TASK_UNHASHED: dict[str, tuple[int, object]] = {"args": (2, [2]), "group": (1, "g")}
TOOL_CHANGES: dict[str, object] = {
    "name": "d",
    "kinds": ["z", "y"],
    "command": ["false"],
    "shell": True,
    "timeout": 3.0,
    "env": {"A": "b"},
    "cwd": "sub",
    "retry": RetryPolicy(),
    "max_concurrency": 2,
    "resources": {"GPU": 1},
}
RULE_CHANGES: dict[str, object] = {
    "kind": "j",
    "strategy": "round_robin",
    "tools": ["a", "b"],
}
RETRY_CHANGES: dict[str, Any] = {
    "retries": 1,
    "initial": 2.0,
    "factor": 3.0,
    "max": 10.0,
    "jitter": 0.5,
    "retry_on": [1],
}
WORKFLOW_CHANGES: dict[str, Callable[[], WorkflowSpec]] = {
    "name": lambda: base_spec(name="other"),
    "tasks": lambda: attrs.evolve(
        base_spec(), tasks=[*base_spec().tasks, TaskSpec(id="t3", command=["true"])]
    ),
    "max_workers": lambda: base_spec(max_workers=2),
    "timeout": lambda: base_spec(timeout=2.0),
    "kill_grace": lambda: base_spec(kill_grace=1.0),
    "retry": lambda: base_spec(retry=RetryPolicy()),
    "tools": lambda: attrs.evolve(
        base_spec(),
        tools=[*base_spec().tools.values(), ToolSpec(name="e", command=["true"])],
    ),
    "routing": lambda: attrs.evolve(
        base_spec(),
        routing=[*base_spec().routing.values(), RoutingRule(kind="z")],
    ),
    "fail_fast": lambda: base_spec(fail_fast=True),
    "base_dir": lambda: base_spec(base_dir="/elsewhere"),
}
WORKFLOW_UNHASHED: dict[str, Callable[[], WorkflowSpec]] = {
    "source": lambda: base_spec(source="/some/flow.toml"),
    "dask": lambda: base_spec(dask="tcp://127.0.0.1:8786"),
}


def field_names(cls: type) -> set[str]:
    return {field.name for field in attrs.fields(cls)}


class TestFingerprint:
    def test_the_tables_cover_every_field(self) -> None:
        """A field added to a spec class must be added here, and so is tested below."""
        assert field_names(TaskSpec) == set(TASK_CHANGES) | set(TASK_UNHASHED)
        assert field_names(ToolSpec) == set(TOOL_CHANGES)
        assert field_names(RoutingRule) == set(RULE_CHANGES)
        assert field_names(RetryPolicy) == set(RETRY_CHANGES)
        assert field_names(WorkflowSpec) == set(WORKFLOW_CHANGES) | set(WORKFLOW_UNHASHED)

    @pytest.mark.parametrize("name", sorted(TASK_CHANGES))
    def test_each_task_field_changes_it(self, name: str) -> None:
        """Changing any hashed field of a task changes the workflow's fingerprint."""
        position, value = TASK_CHANGES[name]
        assert base_spec(tasks={position: {name: value}}).fingerprint() != (
            base_spec().fingerprint()
        )

    @pytest.mark.parametrize("name", sorted(TOOL_CHANGES))
    def test_each_tool_field_changes_it(self, name: str) -> None:
        """Changing any field of a tool changes the workflow's fingerprint."""
        changed = base_spec(tools={"c": {name: TOOL_CHANGES[name]}})
        assert changed.fingerprint() != base_spec().fingerprint()

    @pytest.mark.parametrize("name", sorted(RULE_CHANGES))
    def test_each_routing_field_changes_it(self, name: str) -> None:
        """Changing any field of a routing rule changes the workflow's fingerprint."""
        assert base_spec(rule={name: RULE_CHANGES[name]}).fingerprint() != (
            base_spec().fingerprint()
        )

    @pytest.mark.parametrize("name", sorted(RETRY_CHANGES))
    def test_each_retry_field_changes_it(self, name: str) -> None:
        """Changing any field of a retry policy, wherever it is, changes the fingerprint."""
        policy = RetryPolicy(**{name: RETRY_CHANGES[name]})
        pairs = [
            (base_spec(retry=RetryPolicy()), base_spec(retry=policy)),
            (
                base_spec(tasks={1: {"retry": RetryPolicy()}}),
                base_spec(tasks={1: {"retry": policy}}),
            ),
            (
                base_spec(tools={"c": {"retry": RetryPolicy()}}),
                base_spec(tools={"c": {"retry": policy}}),
            ),
        ]
        for before, after in pairs:
            assert before.fingerprint() != after.fingerprint()

    @pytest.mark.parametrize("name", sorted(WORKFLOW_CHANGES))
    def test_each_workflow_field_changes_it(self, name: str) -> None:
        """Changing any hashed field of the workflow changes its fingerprint."""
        assert WORKFLOW_CHANGES[name]().fingerprint() != base_spec().fingerprint()

    def test_what_does_not_decide_execution_leaves_it(self) -> None:
        """Where the file was and a callable's arguments (arbitrary objects) are left out."""
        for name, changed in WORKFLOW_UNHASHED.items():
            assert changed().fingerprint() == base_spec().fingerprint(), name
        for name, (position, value) in TASK_UNHASHED.items():
            changed_task = base_spec(tasks={position: {name: value}})
            assert changed_task.fingerprint() == base_spec().fingerprint(), name

    def test_a_field_added_to_a_subclass_takes_part(self) -> None:
        """A new field is in the fingerprint without anyone listing it."""

        @attrs.frozen(kw_only=True)
        class PlacedTask(TaskSpec):
            node: str = "any"

        @attrs.frozen(kw_only=True)
        class PlacedWorkflow(WorkflowSpec):
            region: str = "here"

        def spec(node: str, region: str = "here") -> WorkflowSpec:
            return PlacedWorkflow(
                name="w",
                tasks=[PlacedTask(id="t", command=["true"], node=node)],
                base_dir="/base",
                region=region,
            )

        assert spec("a").fingerprint() == spec("a").fingerprint()
        assert spec("a").fingerprint() != spec("b").fingerprint()
        assert spec("a").fingerprint() != spec("a", region="there").fingerprint()

    def test_a_class_made_with_make_class_takes_part(self) -> None:
        """An attrs class built at run time with an extra field: its value changes the record."""
        extended = attrs.make_class(
            "ExtendedTool", {"site": attrs.field(default="x")}, bases=(ToolSpec,), frozen=True
        )

        def spec(site: str) -> WorkflowSpec:
            tool = extended(name="a", command=["true"], kinds=["k"], site=site)
            return WorkflowSpec(
                name="w", tasks=[TaskSpec(id="t", kind="k")], tools=[tool], base_dir="/b"
            )

        assert spec("x").fingerprint() != spec("y").fingerprint()

    def test_order_of_params_env_and_secrets_does_not_count(self) -> None:
        """Maps and sets are hashed in key order."""
        one = base_spec(
            tasks={1: {"params": {"x": "1", "y": "2"}, "env": {"A": "1", "B": "2"}}},
        )
        two = base_spec(
            tasks={1: {"params": {"y": "2", "x": "1"}, "env": {"B": "2", "A": "1"}}},
        )
        assert one.fingerprint() == two.fingerprint()

    def test_the_same_in_every_process(self) -> None:
        """String hashing differs per process; the fingerprint of a set of secrets does not."""
        code = (
            "from uet_trio.workflow.spec import TaskSpec, WorkflowSpec\n"
            "params = {name: 'v' for name in 'abcdefgh'}\n"
            "task = TaskSpec(id='t', command=['true'], params=params, secret_params=params)\n"
            "print(WorkflowSpec(name='w', tasks=[task], base_dir='/b').fingerprint())\n"
        )
        prints = {
            subprocess.run(
                [sys.executable, "-c", code],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
            for seed in ("1", "2", "3")
        }
        assert len(prints) == 1


class TestValidators:
    @pytest.mark.parametrize(
        ("build", "task", "field", "message"),
        [
            (lambda: TaskSpec(id="", command=["a"]), None, "id", "non-empty string id"),
            (lambda: TaskSpec(id="t"), "t", "command", "give exactly one of command"),
            (lambda: TaskSpec(id="t", command=[]), "t", "command", "non-empty list of strings"),
            (lambda: TaskSpec(id="t", kind=""), "t", "kind", "must be a non-empty string"),
            (
                lambda: TaskSpec(id="t", call=3),  # type: ignore[arg-type]
                "t",
                "call",
                "must be an async callable",
            ),
            (lambda: TaskSpec(id="t", kind="k", env={"A=": "b"}), "t", "env", "variable name"),
            (
                lambda: TaskSpec(id="t", kind="k", params={"x": "a\0"}),
                "t",
                "params.x",
                "NUL byte",
            ),
            (
                lambda: TaskSpec(id="t", kind="k", secret_params=["s"]),
                "t",
                "params",
                "secret params not in params: s",
            ),
            (
                lambda: TaskSpec(id="t", kind="k", priority=1.5),  # type: ignore[arg-type]
                "t",
                "priority",
                "an integer",
            ),
            (lambda: TaskSpec(id="t", kind="k", timeout=-1), "t", "timeout", "at least 0"),
            (
                lambda: TaskSpec(id="t", kind="k", retry=RetryPolicy(retries=-1)),
                "t",
                "retry.retries",
                "non-negative integer",
            ),
            (
                lambda: ToolSpec(name="x", command=["a", "b"], shell=True),
                None,
                "tools.x.command",
                "as one string",
            ),
            (
                lambda: ToolSpec(name="x", command=["a"], max_concurrency=0),
                None,
                "tools.x.max_concurrency",
                "positive integer",
            ),
            (
                lambda: ToolSpec(name="x", command=["a"], retry=RetryPolicy(jitter=2)),
                None,
                "tools.x.retry.backoff.jitter",
                "between 0 and 1",
            ),
            (
                lambda: base_spec(retry=RetryPolicy(retry_on=["never"])),
                None,
                "workflow.retry.retry_on",
                'exit codes and "timeout"',
            ),
            (lambda: base_spec(kill_grace=float("nan")), None, "workflow.kill_grace", "a number"),
            (lambda: base_spec(rule={"tools": ["c"]}), None, "routing.k.tools", "does not serve"),
            (lambda: RoutingRule(kind="k", strategy=""), None, "routing.k.strategy", "non-empty"),
        ],
    )
    def test_each_rule_names_task_and_field(
        self, build: Callable[[], object], task: str | None, field: str, message: str
    ) -> None:
        """A value breaking a field's rule raises WorkflowError naming the task and field."""
        with pytest.raises(WorkflowError) as caught:
            build()
        assert (caught.value.task, caught.value.field) == (task, field)
        assert message in caught.value.message

    def test_fields_are_checked_in_declaration_order(self) -> None:
        """With several bad fields, the first one declared is the one reported."""
        with pytest.raises(WorkflowError) as caught:
            TaskSpec(
                id="t",
                call=3,  # type: ignore[arg-type]
                params={"x": 1},  # type: ignore[dict-item]
                env={"A": "\0"},
                timeout=-1,
            )
        assert caught.value.field == "call"
        with pytest.raises(WorkflowError) as caught:
            TaskSpec(id="t", kind="k", env={"A": "\0"}, timeout=-1, secret_params=["s"])
        assert caught.value.field == "env.A"
        with pytest.raises(WorkflowError) as caught:
            base_spec(kill_grace=-1, retry=RetryPolicy(retries=-1), rule={"tools": ["c"]})
        assert caught.value.field == "workflow.kill_grace"

    def test_any_strategy_name_is_data_here(self) -> None:
        """The spec accepts any strategy name; check_routing (the deciding layer) refuses it."""
        spec = parse_workflow(
            {
                "tools": {"a": {"command": ["true"], "kinds": ["k"]}},
                "routing": {"k": {"strategy": "cleverest"}},
                "tasks": [{"id": "t", "kind": "k"}],
            },
            base_dir=Path("/b"),
            source="/b/flow.toml",
        )
        assert spec.routing["k"].strategy == "cleverest"
        with pytest.raises(WorkflowError) as caught:
            check_routing(spec)
        assert caught.value.field == "routing.k.strategy"
        assert caught.value.message.startswith("unknown strategy 'cleverest' (choose from ")


# For every key the loader accepts in each table, a value different from what
# the key's absence gives (for a task: the task without and with the key).
TASK_KEY_CHANGES: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "id": ({"command": ["true"]}, {"command": ["true"], "id": "other"}),
    "command": ({"kind": "k"}, {"command": ["false"]}),
    "kind": ({"command": ["true"]}, {"kind": "k"}),
    "params": ({"kind": "k"}, {"kind": "k", "params": {"x": "1"}}),
    "depends_on": ({"command": ["true"]}, {"command": ["true"], "depends_on": ["first"]}),
    "priority": ({"command": ["true"]}, {"command": ["true"], "priority": 3}),
    "timeout": ({"command": ["true"]}, {"command": ["true"], "timeout": 2}),
    "env": ({"command": ["true"]}, {"command": ["true"], "env": {"A": "b"}}),
    "cwd": ({"command": ["true"]}, {"command": ["true"], "cwd": "sub"}),
    "tool": ({"kind": "k"}, {"kind": "k", "tool": "a"}),
    "continue_on_failure": (
        {"command": ["true"]},
        {"command": ["true"], "continue_on_failure": True},
    ),
    "retries": ({"command": ["true"]}, {"command": ["true"], "retries": 2}),
    "backoff": ({"command": ["true"]}, {"command": ["true"], "backoff": {"initial": 3}}),
    "retry_on": ({"command": ["true"]}, {"command": ["true"], "retry_on": [1]}),
    "after": ({"command": ["true"]}, {"command": ["true"], "after": ["first"]}),
    "inputs": ({"command": ["true"]}, {"command": ["true"], "inputs": ["in.txt"]}),
    "outputs": ({"command": ["true"]}, {"command": ["true"], "outputs": ["out.txt"]}),
    "ok_exit_codes": ({"command": ["true"]}, {"command": ["true"], "ok_exit_codes": [0, 5]}),
    "foreach": ({"command": ["true"]}, {"command": ["true"], "foreach": {"v": ["1"]}}),
}
TOOL_KEY_VALUES: dict[str, object] = {
    "command": ["false"],
    "kinds": ["k", "j"],
    "timeout": 2,
    "env": {"A": "b"},
    "cwd": "sub",
    "shell": True,
    "max_concurrency": 2,
    "resources": {"GPU": 1},
    "retries": 2,
    "backoff": {"factor": 3},
    "retry_on": ["timeout"],
}
WORKFLOW_KEY_VALUES: dict[str, object] = {
    "name": "other",
    "max_workers": 2,
    "dask": "local:2",
    "timeout": 2,
    "fail_fast": True,
    "kill_grace": 1,
    "retries": 2,
    "backoff": {"max": 3},
    "retry_on": [2],
}
ROUTING_KEY_VALUES: dict[str, object] = {"strategy": "round_robin", "tools": ["a"]}
BACKOFF_KEY_VALUES: dict[str, object] = {"initial": 2, "factor": 3, "max": 4, "jitter": 0.5}


def document(
    task: Mapping[str, object] | None = None,
    tool: Mapping[str, object] | None = None,
    workflow: Mapping[str, object] | None = None,
    routing: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    return {
        "workflow": {"name": "w", **(workflow or {})},
        "tools": {"a": {"command": ["true"], **(tool or {})}},
        "routing": {"k": routing or {}},
        "tasks": [
            {"id": "first", "command": ["true"]},
            {"id": "t", **({"command": ["true"]} if task is None else task)},
        ],
    }


def load(doc: dict[str, Any]) -> WorkflowSpec:
    return parse_workflow(doc, base_dir=Path("/b"), source="/b/flow.toml")


class TestLoaderKeys:
    def test_the_tables_cover_every_key(self) -> None:
        """A key the loader accepts (derived from the fields) must be listed here."""
        assert set(TASK_KEY_CHANGES) == loader._TASK_KEYS
        assert set(TOOL_KEY_VALUES) == loader._TOOL_KEYS
        assert set(WORKFLOW_KEY_VALUES) == loader._WORKFLOW_KEYS
        assert set(ROUTING_KEY_VALUES) == loader._ROUTING_KEYS
        assert set(BACKOFF_KEY_VALUES) == set(loader._BACKOFF_KEYS)

    @pytest.mark.parametrize("key", sorted(TASK_KEY_CHANGES))
    def test_every_task_key_reaches_the_spec(self, key: str) -> None:
        """No key is accepted and then dropped."""
        without, with_key = TASK_KEY_CHANGES[key]
        tool = {"kinds": ["k"]}
        before = load(document(task=without, tool=tool)).tasks[1]
        after = load(document(task=with_key, tool=tool)).tasks[1]
        assert before != after

    @pytest.mark.parametrize("key", sorted(TOOL_KEY_VALUES))
    def test_every_tool_key_reaches_the_spec(self, key: str) -> None:
        """No key is accepted and then dropped."""
        before = load(document(tool={"kinds": ["k"]})).tools["a"]
        after = load(document(tool={"kinds": ["k"], key: TOOL_KEY_VALUES[key]})).tools["a"]
        assert before != after

    @pytest.mark.parametrize("key", sorted(WORKFLOW_KEY_VALUES))
    def test_every_workflow_key_reaches_the_spec(self, key: str) -> None:
        """No key is accepted and then dropped."""
        before = load(document())
        after = load(document(workflow={key: WORKFLOW_KEY_VALUES[key]}))
        assert before != after

    @pytest.mark.parametrize("key", sorted(ROUTING_KEY_VALUES))
    def test_every_routing_key_reaches_the_spec(self, key: str) -> None:
        """No key is accepted and then dropped."""
        tool = {"kinds": ["k"]}
        before = load(document(tool=tool)).routing["k"]
        after = load(document(tool=tool, routing={key: ROUTING_KEY_VALUES[key]})).routing["k"]
        assert before != after

    @pytest.mark.parametrize("key", sorted(BACKOFF_KEY_VALUES))
    def test_every_backoff_key_reaches_the_spec(self, key: str) -> None:
        """No key is accepted and then dropped."""
        before = load(document(task={"command": ["true"], "retries": 1})).tasks[1]
        after = load(
            document(
                task={"command": ["true"], "retries": 1, "backoff": {key: BACKOFF_KEY_VALUES[key]}}
            )
        ).tasks[1]
        assert before != after

    def test_an_unknown_key_lists_the_known_ones(self) -> None:
        """The message lists exactly the keys a task table takes."""
        with pytest.raises(WorkflowError) as caught:
            load(document(task={"command": ["true"], "depend_on": ["first"]}))
        assert caught.value.field == "depend_on"
        assert caught.value.message == (
            "unknown field (expected one of: after, backoff, command, continue_on_failure, cwd, "
            "depends_on, env, foreach, id, inputs, kind, ok_exit_codes, outputs, params, "
            "priority, retries, retry_on, timeout, tool)"
        )
