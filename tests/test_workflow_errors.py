"""Bad workflow files: one clear message naming file, task and field; exit 2; no run row."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from uet_trio import CycleError, WorkflowError, load_workflow

from .conftest import run_uet

BAD_FLOWS = {
    "cycle": (
        """
        [[tasks]]
        id = "a"
        command = ["true"]
        depends_on = ["b"]
        [[tasks]]
        id = "b"
        command = ["true"]
        depends_on = ["a"]
        """,
        ["dependency cycle", "a -> b -> a", "depends_on"],
    ),
    "unknown dependency": (
        """
        [[tasks]]
        id = "a"
        command = ["true"]
        depends_on = ["ghost"]
        """,
        ["task 'a'", "depends_on", "unknown task 'ghost'"],
    ),
    "duplicate id": (
        """
        [[tasks]]
        id = "a"
        command = ["true"]
        [[tasks]]
        id = "a"
        command = ["false"]
        """,
        ["task 'a'", "field 'id'", "duplicate"],
    ),
    "unknown kind": (
        """
        [[tasks]]
        id = "t"
        kind = "lint"
        """,
        ["task 't'", "field 'kind'", "no tool serves kind 'lint'"],
    ),
    "unknown tool": (
        """
        [tools.pytest]
        command = ["pytest", "{path}"]
        kinds = ["test"]
        [[tasks]]
        id = "t"
        kind = "test"
        tool = "nose"
        params = { path = "x" }
        """,
        ["task 't'", "field 'tool'", "unknown tool 'nose'"],
    ),
    "placeholder without param": (
        """
        [tools.pytest]
        command = ["pytest", "{path}"]
        kinds = ["test"]
        [[tasks]]
        id = "t"
        kind = "test"
        """,
        ["task 't'", "field 'params'", "path"],
    ),
    "wrong type": (
        """
        [[tasks]]
        id = "t"
        command = ["true"]
        timeout = "soon"
        """,
        ["task 't'", "field 'timeout'", "expected a number"],
    ),
    "command as a string": (
        """
        [[tasks]]
        id = "t"
        command = "echo hi"
        """,
        ["task 't'", "field 'command'", "list of strings"],
    ),
    "empty workflow": ("[workflow]\nname = 'x'\n", ["field 'tasks'", "no tasks"]),
    "malformed toml": ("[[tasks]\nid = ", ["malformed TOML"]),
    "unknown field": (
        """
        [[tasks]]
        id = "t"
        command = ["true"]
        depend_on = ["x"]
        """,
        ["task 't'", "field 'depend_on'", "unknown field"],
    ),
    "both command and kind": (
        """
        [tools.x]
        command = ["true"]
        kinds = ["k"]
        [[tasks]]
        id = "t"
        command = ["true"]
        kind = "k"
        """,
        ["task 't'", "exactly one of command"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FLOWS))
def test_bad_flow_is_rejected_with_file_task_and_field(
    case: str, write_flow: Callable[[str, str], Path], tmp_path: Path, cli: CliRunner
) -> None:
    """Each bad file exits 2 with one message naming what is wrong, and writes no run."""
    text, fragments = BAD_FLOWS[case]
    flow = write_flow(text, "flow.toml")
    db = tmp_path / "db" / "uet.db"
    for command in (
        ["validate", str(flow)],
        ["plan", str(flow)],
        ["run", str(flow), "--db", str(db)],
    ):
        result = cli.invoke(main, command)
        assert result.exit_code == 2, (command, result.output)
        message = result.stderr
        assert str(flow) in message
        for fragment in fragments:
            assert fragment in message, (fragment, message)
        assert "Traceback" not in result.output
    assert not db.exists(), "a bad workflow must not create a database or a run row"


def test_malformed_json_names_line(write_flow: Callable[[str, str], Path], cli: CliRunner) -> None:
    """JSON syntax errors say where they are."""
    flow = write_flow('{"tasks": [ {"id": "a", ]}', "flow.json")
    result = cli.invoke(main, ["validate", str(flow)])
    assert result.exit_code == 2
    assert "malformed JSON at line 1" in result.stderr


def test_missing_file(tmp_path: Path, cli: CliRunner) -> None:
    """A missing file is a workflow error naming the path."""
    missing = tmp_path / "nope.toml"
    result = cli.invoke(main, ["run", str(missing), "--db", str(tmp_path / "u.db")])
    assert result.exit_code == 2
    assert f"{missing}: no such file" in result.stderr
    assert not (tmp_path / "u.db").exists()


def test_cycle_error_lists_the_cycle(write_flow: Callable[[str, str], Path]) -> None:
    """The cycle is named in order, first task repeated at the end."""
    flow = write_flow(
        """
        [[tasks]]
        id = "start"
        command = ["true"]
        [[tasks]]
        id = "x"
        command = ["true"]
        depends_on = ["start", "z"]
        [[tasks]]
        id = "y"
        command = ["true"]
        depends_on = ["x"]
        [[tasks]]
        id = "z"
        command = ["true"]
        depends_on = ["y"]
        """
    )
    from uet_trio import compile_graph

    with pytest.raises(CycleError) as caught:
        compile_graph(load_workflow(flow))
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"x", "y", "z"}
    assert len(cycle) == 4


def test_real_uet_subprocess_reports_bad_file_without_traceback(
    write_flow: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """The installed `uet` program exits 2 with a one-line error on stderr."""
    flow = write_flow(BAD_FLOWS["unknown dependency"][0])
    done = run_uet("run", flow, "--db", tmp_path / "u.db", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "unknown task 'ghost'" in done.stderr
    assert not (tmp_path / "u.db").exists()


def test_bad_input_leaves_existing_database_without_new_run(
    write_flow: Callable[[str, str], Path], tmp_path: Path, cli: CliRunner
) -> None:
    """With an existing database, a bad file adds no row."""
    good = write_flow('[[tasks]]\nid = "a"\ncommand = ["true"]\n', "good.toml")
    db = tmp_path / "u.db"
    assert cli.invoke(main, ["run", str(good), "--db", str(db)]).exit_code == 0
    bad = write_flow(BAD_FLOWS["cycle"][0], "bad.toml")
    assert cli.invoke(main, ["run", str(bad), "--db", str(db)]).exit_code == 2
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_python_spec_is_validated_like_a_file() -> None:
    """Building a spec in Python applies the same checks as the loader."""
    from uet_trio import TaskSpec, WorkflowSpec

    with pytest.raises(WorkflowError, match="depends on unknown task"):
        WorkflowSpec(name="w", tasks=[TaskSpec(id="a", command=["true"], depends_on=["b"])])
    with pytest.raises(WorkflowError, match="NUL"):
        TaskSpec(id="a", command=["echo", "a\0b"])
