"""
A failed task's output where people look: under its FAILED line in ``uet run``,
in the run's summary, and in ``uet show``; control characters made visible.

One workflow imitates a test runner that reports failures on stdout (as
pytest does), another writes an escape sequence both in its output and in its
id. Each is run once by the real ``uet`` program with its output on a pipe.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner, Result
from uet_trio_cli import main

from .conftest import run_uet

FLOW = """
    [workflow]
    name = "tails"
    max_workers = 1

    [[tasks]]
    id = "suite"
    command = ["sh", "-c", "for i in $(seq 1 30); do echo report $i; done; echo warn >&2; exit 1"]

    [[tasks]]
    id = "after"
    command = ["true"]
    depends_on = ["suite"]

    [[tasks]]
    id = "fine"
    command = ["sh", "-c", "echo fine output"]

    [[tasks]]
    id = "quiet-fail"
    command = ["false"]
"""

HOSTILE_FLOW = """
    [workflow]
    name = "hostile"

    [[tasks]]
    id = "evil\\u001b]0;title\\u0007"
    command = ["sh", "-c", "printf 'clear\\\\033[2J\\\\n'; exit 2"]
"""


@attrs.frozen
class Ran:
    directory: Path
    stdout: str
    run_id: str


def _run(directory: Path, text: str, *args: str) -> Ran:
    (directory / "flow.toml").write_text(textwrap.dedent(text))
    result = run_uet("run", "flow.toml", *args, cwd=directory)
    assert result.returncode == 1, result.stderr
    run_id = result.stdout.split()[1].rstrip(":")
    return Ran(directory, result.stdout, run_id)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run(tmp_path_factory.mktemp("tails"), FLOW)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run(tmp_path_factory.mktemp("hostile"), HOSTILE_FLOW)


def invoke(directory: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        main, [*args, "--db", str(directory / ".uet" / "uet.db")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def _block(out: str, first: str) -> list[str]:
    """The lines of `out` after the line `first`, up to the next line not indented by 4."""
    lines = out.splitlines()
    start = lines.index(first) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return lines[start:end]


class TestRun:
    def test_failed_task_shows_the_last_lines_of_both_streams(self, ran: Ran) -> None:
        """20 lines of stdout (a runner reporting there), then stderr, under FAILED."""
        block = _block(ran.stdout, "  FAILED  suite  exit 1")
        expected = ["    stdout:", *(f"    | report {i}" for i in range(11, 31))]
        assert block == [*expected, "    stderr:", "    | warn"]

    def test_a_task_that_printed_nothing_shows_no_tail(self, ran: Ran) -> None:
        assert _block(ran.stdout, "  FAILED  quiet-fail  exit 1") == []

    def test_successful_output_is_not_shown(self, ran: Ran) -> None:
        assert "fine output" not in ran.stdout

    def test_summary_names_each_failed_task_and_its_full_output(self, ran: Ran) -> None:
        summary = ran.stdout[ran.stdout.index(f"run {ran.run_id} failed") :]
        assert f"  failed suite: uet logs {ran.run_id} suite [--stderr]" in summary
        assert f"  failed quiet-fail: uet logs {ran.run_id} quiet-fail" in summary
        # The store is the one views find from the flow's directory: no --db needed.
        assert f"details: uet show {ran.run_id} --failed" in summary

    def test_tail_option(self, tmp_path: Path) -> None:
        """--tail 2 keeps two lines of each stream; --tail 0 shows none."""
        two = _run(tmp_path, FLOW, "--tail", "2").stdout
        block = _block(two, "  FAILED  suite  exit 1")
        assert block == [
            "    stdout:",
            "    | report 29",
            "    | report 30",
            "    stderr:",
            "    | warn",
        ]
        none = _run(tmp_path, FLOW, "--tail", "0").stdout
        assert _block(none, "  FAILED  suite  exit 1") == []
        assert "report" not in none


class TestShow:
    def test_show_gives_both_tails(self, ran: Ran) -> None:
        out = invoke(ran.directory, "show", ran.run_id, "--tail", "3").stdout
        block = _block(out, "  failed suite (attempt 1), last lines of its output:")
        assert block == [
            "    stdout:",
            "    | report 28",
            "    | report 29",
            "    | report 30",
            "    stderr:",
            "    | warn",
        ]

    def test_json_failures_carry_both_tails(self, ran: Ran) -> None:
        document = json.loads(invoke(ran.directory, "show", ran.run_id, "--json").stdout)
        failures = {failure["task_id"]: failure for failure in document["failures"]}
        suite = failures["suite"]
        assert suite["stdout_tail"] == [f"report {i}" for i in range(11, 31)]
        assert (suite["stderr_tail"], suite["stdout_unavailable"]) == (["warn"], None)
        assert failures["quiet-fail"]["stdout_tail"] == failures["quiet-fail"]["stderr_tail"] == []

    def test_failed_lists_only_failed_and_skipped_tasks(self, ran: Ran) -> None:
        document = json.loads(
            invoke(ran.directory, "show", ran.run_id, "--failed", "--json").stdout
        )
        assert [(row["task_id"], row["state"]) for row in document["tasks"]] == [
            ("suite", "failed"),
            ("after", "skipped"),
            ("quiet-fail", "failed"),
        ]
        assert document["run"]["succeeded"] == 1
        assert document["run"]["counts"] == {"succeeded": 1, "failed": 2, "skipped": 1}
        assert [row["exit_code"] for row in document["tasks"]] == [1, None, 1]
        assert document["critical_path"] is None
        out = invoke(ran.directory, "show", ran.run_id, "--failed").stdout
        assert "critical path" not in out
        assert "critical path" in invoke(ran.directory, "show", ran.run_id).stdout
        table = [
            line.split()[0]
            for line in out.splitlines()
            if line.startswith("  ") and "  " in line[2:]
        ]
        assert "fine" not in table
        assert {"suite", "after", "quiet-fail"} <= set(table)


class TestControlCharacters:
    def test_run_output_shows_escapes_visibly(self, hostile: Ran) -> None:
        assert "\x1b" not in hostile.stdout
        assert "\x07" not in hostile.stdout
        assert "  FAILED  evil\\x1b]0;title\\x07  exit 2" in hostile.stdout
        assert "    | clear\\x1b[2J" in hostile.stdout

    def test_show_shows_escapes_visibly(self, hostile: Ran) -> None:
        out = invoke(hostile.directory, "show", hostile.run_id).stdout
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "    | clear\\x1b[2J" in out
        assert "evil\\x1b]0;title\\x07" in out

    def test_events_show_escapes_visibly(self, hostile: Ran) -> None:
        out = invoke(hostile.directory, "events", hostile.run_id).stdout
        assert "task_failed evil\\x1b]0;title\\x07" in out
        assert "\x1b" not in out and "\x07" not in out

    def test_logs_keeps_the_raw_bytes(self, hostile: Ran) -> None:
        result = run_uet("logs", hostile.run_id, "evil\x1b]0;title\x07", cwd=hostile.directory)
        assert (result.returncode, result.stdout) == (0, "clear\x1b[2J\n")
