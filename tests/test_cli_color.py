"""Colour: on a terminal by default, never with NO_COLOR set, as ``--color`` says when given."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import run_uet
from .test_cli_views import _run_on_terminal

FLOW = """
    [workflow]
    name = "colours"

    [[tasks]]
    id = "bad"
    command = ["false"]
"""

RED = "\x1b[31m"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("colour")
    (directory / "flow.toml").write_text(textwrap.dedent(FLOW))
    done = run_uet("run", "flow.toml", "--color", "always", cwd=directory)
    assert done.returncode == 1, done.stderr
    assert f"  {RED}FAILED " in done.stdout
    return directory


def _runs(project: Path, *args: str) -> str:
    db = str(project / ".uet" / "uet.db")
    result = CliRunner().invoke(main, ["runs", "--db", db, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_color_option_when_not_on_a_terminal(project: Path) -> None:
    assert f"{RED}failed" in _runs(project, "--color", "always")
    assert "\x1b[" not in _runs(project, "--color", "never")
    assert "\x1b[" not in _runs(project)


def test_terminal_colour_unless_no_color(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out = _run_on_terminal("runs", cwd=project)
    assert code == 0
    assert RED.encode() + b"failed" in out
    monkeypatch.setenv("NO_COLOR", "1")
    code, out = _run_on_terminal("show", "--last", cwd=project)
    assert code == 0
    assert b"\x1b[" not in out
    code, out = _run_on_terminal("runs", "--color", "always", cwd=project)
    assert RED.encode() + b"failed" in out
