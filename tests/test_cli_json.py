"""
Every ``--json`` speaks one vocabulary and is laid out one way (docs/cli.md,
"JSON output"): a task is ``task_id`` everywhere, ``*_at`` are Unix times,
``start``/``end`` seconds on the run's clock, a count of tasks is
``task_count``; members and list items one a line.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from uet_trio_cli import main
from uet_trio_cli._common import json_text

from .conftest import run_uet

FLOW = """
    [workflow]
    name = "vocabulary"
    max_workers = 2

    [tools.echoer]
    command = ["sh", "-c", "echo $0", "{word}"]
    kinds = ["say"]

    [[tasks]]
    id = "first"
    kind = "say"
    params = { word = "one" }

    [[tasks]]
    id = "second"
    command = ["sh", "-c", "exit 4"]
    depends_on = ["first"]
"""


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The --json text of every command that has one, about one real run."""
    directory = tmp_path_factory.mktemp("json")
    flow = directory / "flow.toml"
    flow.write_text(textwrap.dedent(FLOW))
    ran = run_uet("run", flow, "--json", cwd=directory)
    assert ran.returncode == 1, ran.stderr
    db = str(directory / ".uet" / "uet.db")
    texts = {"run": ran.stdout}
    commands = {
        "runs": ["runs"],
        "show": ["show", "--last"],
        "events": ["events", "--last"],
        "tools": ["tools"],
        "gc": ["gc", "--keep", "0", "--dry-run"],
        "simulate": ["simulate", str(flow)],
        "plan": ["plan", str(flow)],
    }
    for name, args in commands.items():
        result = CliRunner().invoke(main, [*args, "--json", "--db", db], catch_exceptions=False)
        assert result.exit_code == 0, (name, result.output)
        texts[name] = result.stdout
    return texts


def _members(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, member in value.items():
            yield key, member
            yield from _members(member)
    elif isinstance(value, list):
        for item in value:
            yield from _members(item)


def test_one_layout(documents: dict[str, str]) -> None:
    """
    Each document is laid out as json_text lays it out: members and list items
    one a line. Only within a line may spacing differ: `uet events` splices
    each event's data as the store holds it.
    """
    for name, text in documents.items():
        expected = (json_text(json.loads(text)) + "\n").splitlines()
        lines = text.splitlines()
        assert len(lines) == len(expected), name
        for line, wanted in zip(lines, expected, strict=True):
            if line != wanted:
                assert line[: len(line) - len(line.lstrip())] == "  ", (name, line)
                assert json.loads(line.strip().rstrip(",")) == json.loads(
                    wanted.strip().rstrip(",")
                )


def test_one_vocabulary(documents: dict[str, str]) -> None:
    for name, text in documents.items():
        document = json.loads(text)
        if name == "events":
            # An event's data holds the fields its kind records, named as in the store.
            document = [
                {key: value for key, value in event.items() if key != "data"} for event in document
            ]
        members = list(_members(document))
        keys = {key for key, _ in members}
        assert not keys & {"id", "task", "busy_seconds"}, name
        for key, value in members:
            if key.endswith("_at") and value is not None:
                assert value > 1.7e9, (name, key)  # a Unix time
            if key in ("start", "end", "t"):
                assert 0 <= value < 3600, (name, key)  # seconds on the run's clock
            if key in ("tasks", "task_count"):
                # A count is task_count; tasks is always a list of task objects.
                assert isinstance(value, int if key == "task_count" else list), (name, key)


def test_a_task_is_task_id_everywhere(documents: dict[str, str]) -> None:
    run = json.loads(documents["run"])
    assert {task["task_id"] for task in run["tasks"]} == {"first", "second"}
    show = json.loads(documents["show"])
    assert [task["task_id"] for task in show["tasks"]] == ["first", "second"]
    plan = json.loads(documents["plan"])
    assert [[task["task_id"] for task in level] for level in plan["levels"]] == [
        ["first"],
        ["second"],
    ]
    simulated = json.loads(documents["simulate"])["critical_path"]["steps"]
    shown = show["critical_path"]["steps"]
    assert [step["task_id"] for step in simulated] == ["first", "second"]
    assert set(simulated[0]) <= set(shown[0])
    events = json.loads(documents["events"])
    assert {event["task_id"] for event in events} == {None, "first", "second"}
