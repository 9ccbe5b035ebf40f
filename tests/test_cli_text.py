"""Text for people: help without markup, plurals that agree, a runs table that fits its ids."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import COMMAND_MODULES, main

from .conftest import run_uet


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_help_has_no_markup(command: str) -> None:
    text = CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
    assert "`" not in text
    assert ":func:" not in text and ":class:" not in text


def test_plurals_agree(tmp_path: Path) -> None:
    flow = tmp_path / "one.toml"
    flow.write_text('[[tasks]]\nid = "only"\ncommand = ["true"]\n')
    result = CliRunner().invoke(main, ["validate", str(flow)])
    assert result.output.endswith("1 task in 1 level, 0 tools\n")
    ran = run_uet("run", flow, cwd=tmp_path)
    assert ran.stdout.splitlines()[0].endswith(": 1 task")
    db = str(tmp_path / ".uet" / "uet.db")
    shown = CliRunner().invoke(main, ["show", "--last", "--db", db]).output
    assert "critical path: 1 task, " in shown


def test_runs_columns_fit_their_content(tmp_path: Path) -> None:
    """Every cell starts under its header, however long the run ids and workflow names."""
    name = "a-workflow-with-a-rather-long-name"
    flow = tmp_path / "flow.toml"
    flow.write_text(
        textwrap.dedent(f"""
            [workflow]
            name = "{name}"
            [[tasks]]
            id = "t"
            command = ["true"]
        """)
    )
    for _ in range(2):
        assert run_uet("run", flow, cwd=tmp_path).returncode == 0
    db = str(tmp_path / ".uet" / "uet.db")
    header, *lines = CliRunner().invoke(main, ["runs", "--db", db]).output.splitlines()
    assert len(lines) == 2
    for line in lines:
        run_id, status, workflow, *_ = line.split()
        assert len(run_id) == 24
        assert line.index(status) == header.index("STATUS")
        assert line.index(workflow) == header.index("WORKFLOW") and workflow == name
        assert line.index(" ", header.index("STARTED")) - header.index("STARTED") == 10
