"""``uet simulate`` held against the real run it predicts, when the store has one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import run_uet

FLOW = """
    [workflow]
    name = "compared"

    [[tasks]]
    id = "a"
    command = ["sleep", "0.05"]

    [[tasks]]
    id = "b"
    command = ["sleep", "0.05"]
"""


def _simulate(directory: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["simulate", str(directory / "flow.toml"), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_prediction_is_compared_with_the_latest_run_on_as_many_workers(tmp_path: Path) -> None:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    ran = run_uet("run", "flow.toml", "-j", "1", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    db = str(tmp_path / ".uet" / "uet.db")
    (listed,) = json.loads(
        CliRunner().invoke(main, ["runs", "--json", "--db", db], catch_exceptions=False).stdout
    )

    document = json.loads(_simulate(tmp_path, "-j", "1", "--json"))
    actual = document["actual"]
    assert (actual["run_id"], actual["wall"]) == (run_id, pytest.approx(listed["duration"]))
    assert actual["error"] == pytest.approx((document["wall"] - actual["wall"]) / actual["wall"])
    text = _simulate(tmp_path, "-j", "1")
    assert "actual wall time: " in text and f"(run {run_id} on 1 worker); predicted " in text

    # No run on two workers: nothing to compare with, and the output says so.
    assert json.loads(_simulate(tmp_path, "-j", "2", "--json"))["actual"] is None
    assert "(no run succeeded on 2 workers to compare with)" in _simulate(tmp_path, "-j", "2")
