"""``uet run FLOW --retry-failed --last``, and the duration of a run taken up again."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import run_uet

FLOW = """
    [workflow]
    name = "retry-later"

    [[tasks]]
    id = "needs-file"
    command = ["sh", "-c", "[ -e ready ] || exit 7"]

    [[tasks]]
    id = "after"
    command = ["true"]
    depends_on = ["needs-file"]
"""

GAP = 0.5
"""Seconds the failed run lies idle before it is retried."""


@pytest.fixture
def failed_once(tmp_path: Path) -> tuple[Path, str]:
    """A run of FLOW that failed, and whose task would now succeed: (directory, run id)."""
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    first = run_uet("run", "flow.toml", "--json", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    (tmp_path / "ready").touch()
    return tmp_path, json.loads(first.stdout)["run_id"]


def test_retry_failed_last_takes_the_latest_run(failed_once: tuple[Path, str]) -> None:
    directory, run_id = failed_once
    again = run_uet("run", "flow.toml", "--retry-failed", "--last", "--json", cwd=directory)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["run_id"], summary["status"]) == (run_id, "succeeded")


def test_retry_failed_without_a_run_takes_the_latest_run(failed_once: tuple[Path, str]) -> None:
    directory, run_id = failed_once
    again = run_uet("run", "flow.toml", "--retry-failed", "--json", cwd=directory)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run_id"] == run_id


def test_last_alone_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "flow.toml"), "--last"])
    assert result.exit_code == 2
    assert "--last goes with --retry-failed" in result.output
    assert not (tmp_path / ".uet").exists()


def test_duration_leaves_out_the_idle_gap_before_a_retry(failed_once: tuple[Path, str]) -> None:
    directory, run_id = failed_once
    time.sleep(GAP)
    assert run_uet("run", "flow.toml", "--retry-failed", run_id, cwd=directory).returncode == 0
    db = directory / ".uet" / "uet.db"
    with sqlite3.connect(db) as conn:
        ((resumed_seq, resumed_at),) = conn.execute(
            "SELECT seq, at FROM events WHERE run_id = ? AND kind = 'run_resumed'", (run_id,)
        ).fetchall()
        ((before,),) = conn.execute(
            "SELECT at FROM events WHERE run_id = ? AND seq = ?", (run_id, resumed_seq - 1)
        ).fetchall()
        ((started, finished),) = conn.execute(
            "SELECT started_at, finished_at FROM runs WHERE run_id = ?", (run_id,)
        ).fetchall()
    gap = resumed_at - before
    assert gap >= GAP
    (row,) = json.loads(
        CliRunner().invoke(main, ["runs", "--json", "--db", str(db)], catch_exceptions=False).stdout
    )
    assert row["duration"] == pytest.approx(finished - started - gap)
    shown = CliRunner().invoke(main, ["show", run_id, "--json", "--db", str(db)]).stdout
    document = json.loads(shown)
    assert document["run"]["duration"] == document["wall"] == pytest.approx(row["duration"])
