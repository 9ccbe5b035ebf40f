"""``uet logs``: following a task through its retries, and listing a run's tasks."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import UET, run_uet
from .test_cli_views import _wait_for

RETRY_FLOW = """
    [workflow]
    name = "follow-retries"

    [[tasks]]
    id = "flaky"
    command = ["sh", "-c", '''
        if [ -e m ]; then echo try 2; else : > m; echo try 1; sleep 0.5; exit 1; fi''']
    retries = 1
    backoff = { initial = 0.3 }

    [[tasks]]
    id = "later"
    command = ["sh", "-c", "sleep 0.3"]
    depends_on = ["flaky"]
"""


def test_follow_goes_on_through_retries_until_the_task_ends(tmp_path: Path) -> None:
    """Attached during attempt 1, the follow prints attempt 2 too, then stops (exit 0)."""
    (tmp_path / "flow.toml").write_text(textwrap.dedent(RETRY_FLOW))
    db = tmp_path / ".uet" / "uet.db"
    runner = subprocess.Popen(
        [*UET, "run", "flow.toml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(db, "SELECT 1 FROM attempts WHERE task_id = 'flaky' AND attempt = 1")
        followed = run_uet("logs", "--last", "flaky", "--follow", cwd=tmp_path)
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout == "try 1\ntry 2\n"
        assert followed.stderr == "uet: attempt 2 of 'flaky':\n"
        assert runner.wait(timeout=60) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_without_a_task_the_run_s_tasks_are_listed(tmp_path: Path) -> None:
    (tmp_path / "flow.toml").write_text(
        textwrap.dedent(RETRY_FLOW).replace("sleep 0.5; ", "").replace("0.3", "0.01")
    )
    assert run_uet("run", "flow.toml", cwd=tmp_path).returncode == 0
    db = str(tmp_path / ".uet" / "uet.db")
    result = CliRunner().invoke(main, ["logs", "--last", "--db", db], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["TASK", "STATE", "ATTEMPTS"],
        ["flaky", "succeeded", "2"],
        ["later", "succeeded", "1"],
    ]
    assert result.stderr.startswith("output of one: uet logs ")
    missing = CliRunner().invoke(main, ["logs", "--db", db])
    assert missing.exit_code == 2
