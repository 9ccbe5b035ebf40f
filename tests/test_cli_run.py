"""`uet validate`, `uet plan` and `uet run` through CliRunner and the real program."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import run_uet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_fanout_example_runs_in_a_real_uet_process(tmp_path: Path) -> None:
    """The README's main job: 54 tasks succeed, recorded under .uet/ of the flow's directory."""
    (tmp_path / "fanout.toml").write_bytes((EXAMPLES / "fanout.toml").read_bytes())
    (tmp_path / "elsewhere").mkdir()
    done = run_uet("run", "../fanout.toml", "--workers", "4", cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "54 succeeded" in done.stdout
    db = tmp_path / ".uet" / "uet.db"
    with sqlite3.connect(db) as conn:
        ((status, count),) = conn.execute("SELECT status, task_count FROM runs").fetchall()
        states = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
        seqs = [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
    assert (status, count) == ("succeeded", 54)
    assert states == {"succeeded": 54}
    assert seqs == list(range(1, len(seqs) + 1))
    assert list((tmp_path / ".uet" / "logs").iterdir())


def test_console_script_keeps_exit_code_and_skips_the_final_collection(tmp_path: Path) -> None:
    """`entry` (the `uet` script) exits as `main` does, with the collector frozen first."""
    script = (
        "import gc, sys\n"
        "import uet_trio_cli\n"
        "sys.argv = ['uet', 'validate', 'missing.toml']\n"
        "try:\n"
        "    uet_trio_cli.entry()\n"
        "finally:\n"
        "    print('frozen', gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "missing.toml" in done.stderr
    assert done.stdout == "frozen True\n"


def test_failed_task_exits_1_and_names_it(
    write_flow: Callable[[str, str], Path], tmp_path: Path, cli: CliRunner
) -> None:
    """Exit code 1 when a task fails; one line per finished task and a summary."""
    flow = write_flow(
        """
        [[tasks]]
        id = "good"
        command = ["true"]
        [[tasks]]
        id = "bad"
        command = ["sh", "-c", "exit 5"]
        [[tasks]]
        id = "after"
        command = ["true"]
        depends_on = ["bad"]
        [[tasks]]
        id = "stubborn"
        command = ["sh", "-c", "exit 6"]
        retries = 1
        backoff = { initial = 0.0 }
        """
    )
    result = cli.invoke(main, ["run", str(flow), "--db", str(tmp_path / "u.db")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.split()[:2] == ["ok", "good"] for line in lines)
    assert any(line.split()[:4] == ["FAILED", "bad", "exit", "5"] for line in lines)
    assert any(line.split()[:2] == ["skipped", "after"] for line in lines)
    assert any(line.split()[:2] == ["FAILED", "stubborn"] for line in lines)
    assert "exit 6 after 2 attempts" in result.output
    assert "1 succeeded, 2 failed, 1 skipped" in result.output


def test_json_summary_and_db_from_environment(
    write_flow: Callable[[str, str], Path], tmp_path: Path, cli: CliRunner
) -> None:
    """--json prints one document; UET_DB picks the database."""
    flow = write_flow('[[tasks]]\nid = "a"\ncommand = ["true"]\n')
    db = tmp_path / "env.db"
    result = cli.invoke(main, ["run", str(flow), "--json"], env={"UET_DB": str(db)})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["status"] == "succeeded"
    assert summary["tasks"] == [{"task_id": "a", "state": "succeeded"}]
    assert db.exists()


def test_command_not_found_fails_the_task_not_the_runner(
    write_flow: Callable[[str, str], Path], tmp_path: Path, cli: CliRunner
) -> None:
    """A missing command is a failed task with the shell's code and a clear reason."""
    flow = write_flow('[[tasks]]\nid = "a"\ncommand = ["definitely-not-a-command"]\n')
    result = cli.invoke(main, ["run", str(flow), "--db", str(tmp_path / "u.db")])
    assert result.exit_code == 1
    assert "command not found: definitely-not-a-command" in result.output
    with sqlite3.connect(tmp_path / "u.db") as conn:
        assert conn.execute("SELECT exit_code FROM attempts").fetchone()[0] == 127


def test_validate_and_plan(cli: CliRunner) -> None:
    """validate summarises; plan shows levels, routing and argv (JSON too)."""
    result = cli.invoke(main, ["validate", str(EXAMPLES / "fanout.toml")])
    assert result.exit_code == 0
    assert "54 tasks in 5 levels" in result.output
    result = cli.invoke(main, ["plan", "--json", str(EXAMPLES / "hello.toml")])
    assert result.exit_code == 0
    plan = json.loads(result.output)
    first_level = {entry["task_id"]: entry for entry in plan["levels"][0]}
    assert first_level["greet-world"]["tool"] == "greeter"
    assert first_level["greet-world"]["argv"][-1] == "world"
    assert [entry["task_id"] for entry in plan["levels"][1]] == ["count"]
    assert (first_level["greet-world"]["timeout"], first_level["greet-world"]["retries"]) == (30, 0)
    text = cli.invoke(main, ["plan", str(EXAMPLES / "hello.toml")]).output
    assert "level 1:" in text and "greet -> greeter" in text
    assert "greet world  (timeout 30.00s)" in text


def test_plan_shows_effective_timeout_and_retries(
    cli: CliRunner, write_flow: Callable[[str], Path], tmp_path: Path
) -> None:
    """Each task's timeout and retries as a run resolves them: task, else tool, else workflow."""
    flow = write_flow(
        """
        [workflow]
        name = "effective"
        retries = 1

        [tools.t]
        command = ["echo", "{x}"]
        kinds = ["k"]
        timeout = 5
        retries = 2

        [[tasks]]
        id = "routed"
        kind = "k"
        params = { x = "1" }

        [[tasks]]
        id = "own"
        command = ["true"]
        timeout = 90
        retries = 0

        [[tasks]]
        id = "bare"
        command = ["true"]
        """
    )
    db = str(tmp_path / "none.db")
    result = cli.invoke(main, ["plan", "--json", str(flow), "--db", db])
    assert result.exit_code == 0, result.output
    entries = {entry["task_id"]: entry for entry in json.loads(result.output)["levels"][0]}
    assert {task: (e["timeout"], e["retries"]) for task, e in entries.items()} == {
        "routed": (5, 2),
        "own": (90, 0),
        "bare": (None, 1),
    }
    lines = cli.invoke(main, ["plan", str(flow), "--db", db]).output.splitlines()
    assert "echo 1  (timeout 5.00s, 2 retries)" in lines[4]
    assert lines[5].endswith("true  (timeout 1m30s)")
    assert lines[6].endswith("true  (1 retry)")


def test_storage_error_exits_4(write_flow: Callable[[str, str], Path], tmp_path: Path) -> None:
    """A database path that is not a database gives exit 4 and a message, no traceback."""
    flow = write_flow('[[tasks]]\nid = "a"\ncommand = ["true"]\n')
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"\x00not sqlite\x00" * 200)
    done = run_uet("run", flow, "--db", bogus, cwd=tmp_path)
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert str(bogus) in done.stderr


def test_help_lists_commands(cli: CliRunner) -> None:
    """`uet --help` works and names the core commands."""
    result = cli.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "validate", "plan", "resume", "runs", "events"):
        assert command in result.output


def test_json_workflow_runs(tmp_path: Path, cli: CliRunner) -> None:
    """A JSON workflow file has the same structure and runs the same way."""
    result = cli.invoke(
        main, ["run", str(EXAMPLES / "diamond.json"), "--db", str(tmp_path / "u.db")]
    )
    assert result.exit_code == 0, result.output
    assert "4 succeeded" in result.output
