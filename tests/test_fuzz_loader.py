"""
Fuzzing the workflow loader: every input loads or raises `WorkflowError`.

Three generators: workflow-shaped documents with values of every type
(through `parse_workflow` and, serialised, through JSON and TOML files),
arbitrary bytes, and valid files with random edits. For each input the
loader (plus graph compilation, as ``uet validate`` does) must return a
spec or raise `WorkflowError` with a message: any other exception is a bug.
A per-example deadline catches hangs. The default run generates a few
thousand documents; ``-m stress`` runs many more.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uet_trio.errors import WorkflowError
from uet_trio.workflow.graph import compile_graph
from uet_trio.workflow.loader import load_workflow, parse_workflow

KNOWN_KEYS = [
    "workflow",
    "tools",
    "routing",
    "tasks",
    "name",
    "max_workers",
    "timeout",
    "fail_fast",
    "kill_grace",
    "retries",
    "backoff",
    "retry_on",
    "command",
    "kinds",
    "env",
    "cwd",
    "shell",
    "max_concurrency",
    "id",
    "kind",
    "params",
    "depends_on",
    "priority",
    "tool",
    "continue_on_failure",
    "strategy",
    "initial",
    "factor",
    "max",
    "jitter",
    "value",
    "secret",
]

VALID = """\
[workflow]
name = "fuzz"
max_workers = 2
timeout = 5
retries = 1
backoff = { initial = 0.1, factor = 2, max = 1, jitter = 0.1 }

[tools.a]
command = ["echo", "{x}"]
kinds = ["k"]

[tools.b]
command = ["printf %s {x}"]
kinds = ["k"]
shell = true

[routing.k]
strategy = "round_robin"
tools = ["b", "a"]

[[tasks]]
id = "one"
kind = "k"
params = { x = "1", y = { value = "s", secret = true } }

[[tasks]]
id = "two"
command = ["true"]
depends_on = ["one"]
env = { A = "b" }
retry_on = [1, "timeout"]
"""

keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8))
names = st.one_of(st.sampled_from(["a", "b", "k", "one", "two", "x"]), st.text(max_size=6))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    names,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=6,
)
argv = st.one_of(st.lists(names, max_size=3), values)
tasks = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(names, values),
        "command": argv,
        "kind": st.one_of(names, values),
        "params": st.one_of(st.dictionaries(names, st.one_of(names, values), max_size=3), values),
        "depends_on": st.one_of(st.lists(names, max_size=3), values),
        "priority": values,
        "timeout": values,
        "retries": values,
        "backoff": st.one_of(st.dictionaries(keys, values, max_size=3), values),
        "retry_on": values,
        "env": st.one_of(st.dictionaries(names, names, max_size=2), values),
        "tool": st.one_of(names, values),
        "cwd": values,
        "continue_on_failure": values,
        "extra": values,
    },
)
tools = st.fixed_dictionaries(
    {},
    optional={
        "command": argv,
        "kinds": st.one_of(st.lists(names, max_size=3), values),
        "shell": values,
        "timeout": values,
        "max_concurrency": values,
        "env": values,
        "retries": values,
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "workflow": st.one_of(st.dictionaries(keys, values, max_size=4), values),
        "tools": st.one_of(st.dictionaries(names, tools, max_size=3), values),
        "routing": st.one_of(
            st.dictionaries(names, st.dictionaries(keys, values, max_size=2), max_size=2), values
        ),
        "tasks": st.one_of(st.lists(tasks, max_size=5), values),
        "junk": values,
    },
)


def check(load: Any) -> None:
    """`load()` returns a spec that compiles, or either step raises WorkflowError with a message."""
    message = "loaded"
    try:
        compile_graph(load())
    except WorkflowError as error:
        message = str(error)
    assert message.strip()


def _to_toml(value: Any) -> str:
    """A small TOML writer for generated documents (inline tables only)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_to_toml(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(key)} = {_to_toml(item)}"
            for key, item in value.items()
            if item is not None
        )
        return "{ " + ", ".join(items) + " }"
    return '""'


def _toml_document(document: dict[str, Any]) -> str:
    return "".join(
        f"{json.dumps(key)} = {_to_toml(value)}\n"
        for key, value in document.items()
        if value is not None
    )


FAST = settings(
    max_examples=700,
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FILES = settings(FAST, max_examples=150)
STRUCTURED = settings(FAST, max_examples=300)
STRESS = settings(FAST, max_examples=5_000)


def _structured(document: dict[str, Any]) -> None:
    check(lambda: parse_workflow(document, base_dir=Path("/nonexistent")))


def _serialised(tmp_path: Path, document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        path = tmp_path / "flow.json"
        try:
            path.write_text(json.dumps(document), encoding="utf-8", errors="surrogatepass")
        except ValueError:
            return
    else:
        path = tmp_path / "flow.toml"
        text = _toml_document(document)
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check(lambda: load_workflow(path))


def _raw(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"flow{suffix}"
    path.write_bytes(data)
    check(lambda: load_workflow(path))


edits = st.lists(
    st.tuples(st.integers(0, len(VALID)), st.integers(0, 8), st.text(max_size=6)), max_size=4
)


def _edited(tmp_path: Path, changes: list[tuple[int, int, str]]) -> None:
    text = VALID
    for position, cut, insert in changes:
        text = text[:position] + insert + text[position + cut :]
    path = tmp_path / "flow.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check(lambda: load_workflow(path))


def test_the_seed_file_is_valid(tmp_path: Path) -> None:
    """The file the edits start from loads, so edits explore near-valid input."""
    path = tmp_path / "flow.toml"
    path.write_text(VALID)
    spec = load_workflow(path)
    assert [task.id for task in spec.tasks] == ["one", "two"]
    assert tomllib.loads(VALID)["routing"]["k"]["tools"] == ["b", "a"]


class TestFuzz:
    @STRUCTURED
    @given(documents)
    def test_workflow_shaped_documents(self, document: dict[str, Any]) -> None:
        """Documents with the known keys and values of every type."""
        _structured(document)

    @FILES
    @given(documents, st.booleans())
    def test_documents_written_as_files(
        self, tmp_path: Path, document: dict[str, Any], as_json: bool
    ) -> None:
        """The same documents serialised to JSON or TOML and read back from a file."""
        _serialised(tmp_path, document, as_json)

    @FAST
    @given(st.binary(max_size=300), st.sampled_from([".toml", ".json"]))
    def test_arbitrary_bytes(self, tmp_path: Path, data: bytes, suffix: str) -> None:
        """Any bytes at all, as a TOML or a JSON file."""
        _raw(tmp_path, data, suffix)

    @FAST
    @given(edits)
    def test_edits_of_a_valid_file(
        self, tmp_path: Path, changes: list[tuple[int, int, str]]
    ) -> None:
        """Random cuts and insertions in a valid TOML file."""
        _edited(tmp_path, changes)


@pytest.mark.stress
class TestFuzzStress:
    @STRESS
    @given(documents)
    def test_workflow_shaped_documents(self, document: dict[str, Any]) -> None:
        """Many more workflow-shaped documents."""
        _structured(document)

    @STRESS
    @given(documents, st.booleans())
    def test_documents_written_as_files(
        self, tmp_path: Path, document: dict[str, Any], as_json: bool
    ) -> None:
        """Many more serialised documents."""
        _serialised(tmp_path, document, as_json)

    @STRESS
    @given(st.binary(max_size=2000), st.sampled_from([".toml", ".json"]))
    def test_arbitrary_bytes(self, tmp_path: Path, data: bytes, suffix: str) -> None:
        """Many more byte strings."""
        _raw(tmp_path, data, suffix)

    @STRESS
    @given(edits)
    def test_edits_of_a_valid_file(
        self, tmp_path: Path, changes: list[tuple[int, int, str]]
    ) -> None:
        """Many more edits."""
        _edited(tmp_path, changes)
