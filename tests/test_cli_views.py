"""
The views of what a run recorded: runs, show, events, logs, graph, gc, live progress.

Every store here is filled by real ``uet run`` processes: a run that succeeds,
one that fails (with a retry, a failure with stderr, and a skipped
dependent), and one cancelled by SIGINT while a task sleeps. The commands are
then run in-process with click's runner (stdout is not a terminal there), and
the ones that must follow a run in progress or draw on a terminal are run as
real ``uet`` subprocesses.
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import signal
import sqlite3
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pydot
import pytest
from click.testing import CliRunner, Result
from uet_trio_cli import main

from uet_trio.errors import RunNotFound
from uet_trio.recording import report
from uet_trio.recording.records import NewRun, TaskRecord
from uet_trio.recording.store import Store

from .conftest import UET, run_uet

OK_FLOW = """
    [workflow]
    name = "views-ok"
    max_workers = 2

    [[tasks]]
    id = "hello"
    command = ["sh", "-c", "echo hello out; echo hello err >&2"]

    [[tasks]]
    id = "binary"
    command = ["printf", "caf\\\\351\\\\n"]
    depends_on = ["hello"]
"""

FAILED_FLOW = """
    [workflow]
    name = "views-failed"
    max_workers = 2

    [[tasks]]
    id = "slow"
    command = ["sh", "-c", "sleep 0.3; echo slow done"]

    [[tasks]]
    id = "quick"
    command = ["sh", "-c", "echo quick"]

    [[tasks]]
    id = "flaky"
    command = ["sh", "-c", "[ -e m ] && echo second try || {{ : > m; echo first try; exit 5; }}"]
    depends_on = ["slow"]
    retries = 1
    backoff = { initial = 0.01 }

    [[tasks]]
    id = "broken"
    command = ["sh", "-c", "echo line one >&2; echo 'line \\"two\\"' >&2; exit 3"]
    depends_on = ["flaky", "quick"]

    [[tasks]]
    id = "after-broken"
    command = ["true"]
    depends_on = ["broken"]
"""

SLEEP_FLOW = """
    [workflow]
    name = "views-cancelled"

    [[tasks]]
    id = "nap"
    command = ["sleep", "30"]
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def _query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def _wait_for(db: Path, sql: str, params: tuple[Any, ...] = (), timeout: float = 60) -> Any:
    """Poll the database until `sql` returns a row; return its first column."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                rows = _query(db, sql, params)
            except sqlite3.OperationalError:
                rows = []
            if rows:
                return rows[0][0]
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {sql}")


def _cancelled_run(directory: Path, db: Path) -> None:
    """Start `uet run` on a 30 s sleep, SIGINT it once its attempt is recorded."""
    flow = _write(directory, "sleep.toml", SLEEP_FLOW)
    process = subprocess.Popen(
        [*UET, "run", str(flow), "--db", str(db)],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(
            db,
            "SELECT e.seq FROM events e JOIN runs r USING (run_id) "
            "WHERE r.workflow = 'views-cancelled' AND e.kind = 'attempt_spawned'",
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


@attrs.frozen
class Filled:
    """A store filled by three real runs."""

    directory: Path
    db: Path
    ok: str
    failed: str
    cancelled: str
    failed_stdout: str
    """What `uet run` printed to a pipe for the failed run."""


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """One succeeded, one failed and one cancelled run, made by the real `uet run`."""
    directory = tmp_path_factory.mktemp("views")
    db = directory / ".uet" / "uet.db"
    ok = run_uet("run", _write(directory, "ok.toml", OK_FLOW), "--db", db, cwd=directory)
    assert ok.returncode == 0, ok.stderr
    failed = run_uet(
        "run", _write(directory, "failed.toml", FAILED_FLOW), "--db", db, cwd=directory
    )
    assert failed.returncode == 1, failed.stderr
    _cancelled_run(directory, db)
    ids = dict(_query(db, "SELECT workflow, run_id FROM runs"))
    return Filled(
        directory=directory,
        db=db,
        ok=ids["views-ok"],
        failed=ids["views-failed"],
        cancelled=ids["views-cancelled"],
        failed_stdout=failed.stdout,
    )


def invoke(*args: str | Path) -> Result:
    """Run a `uet` command in-process (stdout is not a terminal)."""
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def invoke_json(*args: str | Path) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestRuns:
    def test_json_lists_each_run_with_its_counts(self, filled: Filled) -> None:
        """`uet runs --json` gives every run, newest first, with status, times and counts."""
        rows = invoke_json("runs", "--db", filled.db, "--json")
        assert [row["run_id"] for row in rows] == [filled.cancelled, filled.failed, filled.ok]
        by_id = {row["run_id"]: row for row in rows}
        ok, failed, cancelled = by_id[filled.ok], by_id[filled.failed], by_id[filled.cancelled]
        assert (ok["workflow"], ok["status"], ok["task_count"]) == ("views-ok", "succeeded", 2)
        assert (ok["succeeded"], ok["failed"], ok["skipped"]) == (2, 0, 0)
        assert (failed["status"], failed["task_count"]) == ("failed", 5)
        assert (failed["succeeded"], failed["failed"], failed["skipped"]) == (3, 1, 1)
        assert (cancelled["status"], cancelled["cancelled"]) == ("cancelled", 1)
        for row in rows:
            assert row["started_at"] >= row["created_at"]
            assert row["duration"] == pytest.approx(row["finished_at"] - row["started_at"])
            assert row["duration"] >= 0

    def test_status_and_limit_filter(self, filled: Filled) -> None:
        """--status keeps runs in that status; --limit keeps the newest N."""
        failed = invoke_json("runs", "--db", filled.db, "--json", "--status", "failed")
        assert [row["run_id"] for row in failed] == [filled.failed]
        newest = invoke_json("runs", "--db", filled.db, "--json", "--limit", "1")
        assert [row["run_id"] for row in newest] == [filled.cancelled]

    def test_table_for_people(self, filled: Filled) -> None:
        """The table has a header and one uncoloured line per run when not on a terminal."""
        result = invoke("runs", "--db", filled.db)
        lines = result.stdout.splitlines()
        assert lines[0].split()[:3] == ["RUN", "STATUS", "WORKFLOW"]
        assert [line.split()[:3] for line in lines[1:]] == [
            [filled.cancelled, "cancelled", "views-cancelled"],
            [filled.failed, "failed", "views-failed"],
            [filled.ok, "succeeded", "views-ok"],
        ]
        assert "\x1b[" not in result.stdout


class TestRunIds:
    def test_unique_prefix_selects_a_run(self, filled: Filled) -> None:
        """Any prefix that matches one run id names that run, like git."""
        other = {filled.ok, filled.cancelled}
        prefix = next(
            filled.failed[:n]
            for n in range(1, len(filled.failed) + 1)
            if not any(run_id.startswith(filled.failed[:n]) for run_id in other)
        )
        document = invoke_json("show", prefix, "--db", filled.db, "--json")
        assert document["run"]["run_id"] == filled.failed

    def test_ambiguous_prefix_lists_the_candidates(self, filled: Filled) -> None:
        """A prefix matching several runs is an error (exit 3) naming every candidate."""
        ids = sorted([filled.ok, filled.failed, filled.cancelled])
        common = next(
            ids[0][:n] for n in range(len(ids[0]), -1, -1) if ids[-1].startswith(ids[0][:n])
        )
        assert common, "run ids of one day share their date"
        result = invoke("show", common, "--db", filled.db)
        assert result.exit_code == 3
        assert "ambiguous" in result.stderr
        for run_id in (filled.ok, filled.failed, filled.cancelled):
            assert run_id in result.stderr

    def test_ids_sort_by_creation_time(self, filled: Filled) -> None:
        """Run ids sort in the order the runs were created."""
        rows = _query(filled.db, "SELECT run_id FROM runs ORDER BY created_at")
        ids = [row[0] for row in rows]
        assert ids == sorted(ids) == [filled.ok, filled.failed, filled.cancelled]

    def test_unknown_run(self, filled: Filled) -> None:
        """A prefix matching nothing is exit 3."""
        result = invoke("events", "zzz", "--db", filled.db)
        assert result.exit_code == 3
        assert "no run matches 'zzz'" in result.stderr


class TestShow:
    def test_failed_run_json(self, filled: Filled) -> None:
        """Tasks, attempts, exit codes, the failure's stderr, critical path and parallelism."""
        document = invoke_json("show", filled.failed, "--db", filled.db, "--json")
        run = document["run"]
        assert (run["run_id"], run["status"], run["max_workers"]) == (filled.failed, "failed", 2)
        tasks = {row["task_id"]: row for row in document["tasks"]}
        assert [row["task_id"] for row in document["tasks"]] == [
            "slow",
            "quick",
            "flaky",
            "broken",
            "after-broken",
        ]
        assert {t: (r["state"], r["attempts"], r["exit_code"]) for t, r in tasks.items()} == {
            "slow": ("succeeded", 1, 0),
            "quick": ("succeeded", 1, 0),
            "flaky": ("succeeded", 2, 0),
            "broken": ("failed", 1, 3),
            "after-broken": ("skipped", 0, None),
        }
        assert tasks["after-broken"]["duration"] is None
        assert tasks["slow"]["duration"] >= 0.3
        assert document["failures"] == [
            {
                "task_id": "broken",
                "attempt": 1,
                "error": None,
                "stdout_tail": [],
                "stdout_unavailable": None,
                "stderr_tail": ["line one", 'line "two"'],
                "stderr_unavailable": None,
            }
        ]
        path = document["critical_path"]
        assert [step["task_id"] for step in path["steps"]] == ["slow", "flaky", "broken"]
        steps = path["steps"]
        for earlier, later in itertools.pairwise(steps):
            assert later["started_at"] >= earlier["finished_at"]
            assert later["waited"] == pytest.approx(later["started_at"] - earlier["finished_at"])
        assert path["duration"] == pytest.approx(steps[-1]["finished_at"] - steps[0]["started_at"])
        rows = _query(
            filled.db,
            "SELECT sum(duration) FROM attempts WHERE run_id = ?",
            (filled.failed,),
        )
        assert document["busy"] == pytest.approx(rows[0][0])
        wall = run["finished_at"] - run["started_at"]
        assert document["parallelism"] == pytest.approx(rows[0][0] / wall)

    def test_failed_run_for_people(self, filled: Filled) -> None:
        """The human view lists the tasks, the stderr tail and the critical path."""
        result = invoke("show", filled.failed, "--db", filled.db, "--tail", "1")
        assert result.exit_code == 0
        out = result.stdout
        assert f"run {filled.failed}  views-failed  failed" in out
        assert "failed broken (attempt 1), last lines of its output:\n    stderr:\n" in out
        assert '    | line "two"' in out
        assert "    | line one" not in out
        assert "critical path: 3 tasks" in out
        assert "parallelism" in out
        table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "  " in line}
        assert table["flaky"][:2] == ["succeeded", "2"]
        assert table["after-broken"][:2] == ["skipped", "0"]

    def test_cancelled_run(self, filled: Filled) -> None:
        """A run cancelled by SIGINT shows its interrupted task as cancelled."""
        document = invoke_json("show", filled.cancelled, "--db", filled.db, "--json")
        assert document["run"]["status"] == "cancelled"
        (nap,) = document["tasks"]
        assert (nap["task_id"], nap["state"], nap["attempts"]) == ("nap", "cancelled", 1)
        assert [step["task_id"] for step in document["critical_path"]["steps"]] == ["nap"]

    def test_last_and_run_together_is_a_usage_error(self, filled: Filled) -> None:
        """RUN and --last are exclusive (exit 2)."""
        result = invoke("show", filled.ok, "--last", "--db", filled.db)
        assert result.exit_code == 2


class TestEvents:
    def test_json_is_the_whole_log_in_order(self, filled: Filled) -> None:
        """--json is one list: gap-free seqs from 1, run_started first, run_finished last."""
        records = invoke_json("events", filled.failed, "--db", filled.db, "--json")
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert records[0]["kind"] == "run_started"
        assert records[0]["data"]["workflow"] == "views-failed"
        assert records[-1]["kind"] == "run_finished"
        assert records[-1]["data"]["status"] == "failed"
        stored = _query(
            filled.db,
            "SELECT seq, kind, task_id, attempt, t, at FROM events WHERE run_id = ? ORDER BY seq",
            (filled.failed,),
        )
        assert [
            (r["seq"], r["kind"], r["task_id"], r["attempt"], r["t"], r["at"]) for r in records
        ] == [tuple(row) for row in stored]
        times = [r["t"] for r in records]
        assert times == sorted(times)

    def test_filters_by_kind_and_task(self, filled: Filled) -> None:
        """--kind (repeatable) and --task select events; --jsonl prints one object per line."""
        result = invoke(
            "events", filled.failed, "--db", filled.db, "--jsonl",
            "--kind", "attempt_finished", "--kind", "task_retry_wait", "--task", "flaky",
        )  # fmt: skip
        assert result.exit_code == 0
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(r["kind"], r["attempt"]) for r in records] == [
            ("attempt_finished", 1),
            ("task_retry_wait", 1),
            ("attempt_finished", 2),
        ]
        assert records[0]["data"]["exit_code"] == 5
        assert records[0]["data"]["status"] == "failed"
        assert records[2]["data"]["status"] == "succeeded"
        assert {r["task_id"] for r in records} == {"flaky"}

    def test_unknown_kind_is_a_usage_error(self, filled: Filled) -> None:
        """A --kind that is not an event kind is exit 2, listing the kinds."""
        result = invoke("events", filled.ok, "--db", filled.db, "--kind", "nope")
        assert result.exit_code == 2
        assert "task_failed" in result.stderr

    def test_lines_for_people(self, filled: Filled) -> None:
        """Without --json, one line per event: seq, time, kind, task and attempt."""
        result = invoke("events", "--last", "--db", filled.db)
        lines = result.stdout.splitlines()
        assert lines[0].split()[0] == "1"
        assert lines[0].split()[2] == "run_started"
        assert any(line.split()[2:4] == ["attempt_started", "nap#1"] for line in lines)
        assert lines[-1].split()[2] == "run_finished"


class TestLogs:
    def test_stdout_and_stderr_of_an_attempt(self, filled: Filled) -> None:
        """`uet logs` prints exactly the attempt's bytes, stdout or --stderr."""
        out = invoke("logs", filled.ok, "hello", "--db", filled.db)
        err = invoke("logs", filled.ok, "hello", "--db", filled.db, "--stderr")
        assert (out.exit_code, out.stdout_bytes) == (0, b"hello out\n")
        assert (err.exit_code, err.stdout_bytes) == (0, b"hello err\n")

    def test_raw_bytes_when_not_a_terminal(self, filled: Filled) -> None:
        """Output that is not UTF-8 is passed through untouched to a pipe."""
        result = invoke("logs", filled.ok, "binary", "--db", filled.db)
        assert result.stdout_bytes == b"caf\xe9\n"

    def test_attempts_are_separate(self, filled: Filled) -> None:
        """--attempt picks one attempt; the default is the latest."""
        first = invoke("logs", filled.failed, "flaky", "--attempt", "1", "--db", filled.db)
        second = invoke("logs", filled.failed, "flaky", "--attempt", "2", "--db", filled.db)
        latest = invoke("logs", filled.failed, "flaky", "--db", filled.db)
        assert first.stdout_bytes == b"first try\n"
        assert second.stdout_bytes == latest.stdout_bytes == b"second try\n"

    def test_last_with_task(self, filled: Filled) -> None:
        """`uet logs --last TASK` reads the most recent run (its task printed nothing)."""
        result = invoke("logs", "--last", "nap", "--db", filled.db)
        assert (result.exit_code, result.stdout_bytes) == (0, b"")

    def test_missing_task_or_attempt(self, filled: Filled) -> None:
        """An unknown task is exit 2; a missing attempt or a never-run task is exit 1."""
        unknown = invoke("logs", filled.failed, "nope", "--db", filled.db)
        assert unknown.exit_code == 2
        assert "has no task 'nope'" in unknown.stderr
        missing = invoke("logs", filled.failed, "flaky", "--attempt", "3", "--db", filled.db)
        assert missing.exit_code == 1
        assert "no attempt 3" in missing.stderr
        skipped = invoke("logs", filled.failed, "after-broken", "--db", filled.db)
        assert skipped.exit_code == 1


def _popen_uet(*args: str | Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*UET, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture
def running_run(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[bytes]]]:
    """A real `uet run` in progress (about 1.5 s); yields (db, run id, process)."""
    flow = _write(
        tmp_path,
        "live.toml",
        """
        [workflow]
        name = "live"

        [[tasks]]
        id = "talk"
        command = ["sh", "-c", "echo one; sleep 0.8; echo two; sleep 0.4; echo three"]

        [[tasks]]
        id = "after"
        command = ["sh", "-c", "sleep 0.3"]
        depends_on = ["talk"]
        """,
    )
    db = tmp_path / "live.db"
    process = _popen_uet("run", flow, "--db", db, cwd=tmp_path)
    try:
        run_id = _wait_for(
            db,
            "SELECT run_id FROM events WHERE kind = 'attempt_spawned' AND task_id = 'talk'",
        )
        yield db, run_id, process
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


class TestFollow:
    def test_events_follow_tails_a_run_in_progress(
        self, running_run: tuple[Path, str, subprocess.Popen[bytes]], tmp_path: Path
    ) -> None:
        """`events --follow` in another process prints every event and stops at run_finished."""
        db, run_id, _ = running_run
        assert _query(db, "SELECT status FROM runs")[0][0] == "running"
        follower = _popen_uet(
            "events", run_id[:-1], "--db", db, "--follow", "--jsonl", cwd=tmp_path
        )
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        followed = [json.loads(line) for line in out.decode().splitlines()]
        assert followed[-1]["kind"] == "run_finished"
        stored = _query(db, "SELECT seq, kind FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        assert [(r["seq"], r["kind"]) for r in followed] == [tuple(row) for row in stored]

    def test_logs_follow_prints_output_as_it_comes(
        self, running_run: tuple[Path, str, subprocess.Popen[bytes]], tmp_path: Path
    ) -> None:
        """`logs --follow` prints a running attempt's output and stops when it ends."""
        db, run_id, _ = running_run
        assert _query(db, "SELECT status FROM attempts WHERE task_id = 'talk'")[0][0] == "running"
        follower = _popen_uet("logs", run_id, "talk", "--db", db, "--follow", cwd=tmp_path)
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert out == b"one\ntwo\nthree\n"


# pydot's parser calls pyparsing names that pyparsing 3.3 deprecates; the
# warnings are about pydot's code, not about the text under test.
@pytest.mark.filterwarnings("ignore:.*deprecated - use:DeprecationWarning")
class TestGraph:
    def test_dot_parses_with_a_real_parser(self, filled: Filled) -> None:
        """The dot output parses with pydot: every task a node, every dependency an edge."""
        flow = filled.directory / "failed.toml"
        result = invoke("graph", flow, "--format", "dot", "--run", filled.failed, "--db", filled.db)
        assert result.exit_code == 0
        (parsed,) = pydot.graph_from_dot_data(result.stdout)
        assert parsed.get_name() == '"views-failed"'
        nodes = {node.get_name().strip('"'): node for node in parsed.get_nodes()}
        nodes.pop("node", None)
        assert set(nodes) == {"slow", "quick", "flaky", "broken", "after-broken"}
        edges = {
            (edge.get_source().strip('"'), edge.get_destination().strip('"'))
            for edge in parsed.get_edges()
        }
        assert edges == {
            ("slow", "flaky"),
            ("flaky", "broken"),
            ("quick", "broken"),
            ("broken", "after-broken"),
        }
        fills = {name: node.get("fillcolor").strip('"') for name, node in nodes.items()}
        assert fills["broken"] == "#f4a6a6"
        assert fills["after-broken"] == "#e0e0e0"
        assert fills["slow"] == fills["flaky"] == "#b7e1a1"

    def test_dot_quotes_awkward_ids(self, tmp_path: Path) -> None:
        """Ids with quotes, backslashes and spaces survive a round trip through a dot parser."""
        odd = 'say "hi" \\ now'
        flow = tmp_path / "odd.json"
        flow.write_text(
            json.dumps(
                {
                    "workflow": {"name": "odd"},
                    "tasks": [
                        {"id": odd, "command": ["true"]},
                        {"id": "next", "command": ["true"], "depends_on": [odd]},
                    ],
                }
            )
        )
        result = invoke("graph", flow, "--format", "dot")
        assert result.exit_code == 0, result.output
        (parsed,) = pydot.graph_from_dot_data(result.stdout)
        (edge,) = parsed.get_edges()
        source = edge.get_source()
        assert source[1:-1].replace('\\"', '"').replace("\\\\", "\\") == odd

    def test_mermaid(self, filled: Filled) -> None:
        """Mermaid: a flowchart, one node per task, one arrow per dependency, classes by state."""
        flow = filled.directory / "failed.toml"
        result = invoke("graph", flow, "--run", filled.failed, "--db", filled.db)
        lines = result.stdout.splitlines()
        assert lines[0] == "flowchart LR"
        assert '  t0["slow"]' in lines
        assert '  t4["after-broken"]' in lines
        arrows = {line.strip() for line in lines if "-->" in line}
        assert arrows == {"t0 --> t2", "t2 --> t3", "t1 --> t3", "t3 --> t4"}
        assert "  class t3 st_failed" in lines
        assert "  class t4 st_skipped" in lines
        assert "  class t0,t1,t2 st_succeeded" in lines

    def test_bad_flow_is_exit_2(self, tmp_path: Path) -> None:
        """A workflow with a cycle is reported as a workflow error."""
        flow = _write(
            tmp_path,
            "cycle.toml",
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
        )
        result = invoke("graph", flow)
        assert result.exit_code == 2
        assert "cycle" in result.stderr


class TestGc:
    def test_keep_and_older_than(self, tmp_path: Path) -> None:
        """--keep N deletes older finished runs' rows and log files; --dry-run deletes nothing."""
        db = tmp_path / ".uet" / "uet.db"
        flow = _write(tmp_path, "ok.toml", OK_FLOW)
        for _ in range(2):
            assert run_uet("run", flow, "--db", db, "--quiet", cwd=tmp_path).returncode == 0
        old, new = (row[0] for row in _query(db, "SELECT run_id FROM runs ORDER BY created_at"))
        old_logs = {row[0] for row in _query(
            db,
            "SELECT out_path FROM attempts WHERE run_id = ? "
            "UNION SELECT err_path FROM attempts WHERE run_id = ?",
            (old, old),
        )}  # fmt: skip
        assert old_logs
        assert all(Path(path).exists() for path in old_logs)
        assert invoke_json("gc", "--db", db, "--older-than", "7d", "--json")["deleted"] == []
        dry = invoke_json("gc", "--db", db, "--keep", "1", "--dry-run", "--json")
        assert dry == {
            "dry_run": True,
            "deleted": [{"run_id": old, "status": "succeeded", "log_files": 0}],
        }
        assert all(Path(path).exists() for path in old_logs)

        done = invoke_json("gc", "--db", db, "--keep", "1", "--json")
        assert done["deleted"] == [
            {"run_id": old, "status": "succeeded", "log_files": len(old_logs)}
        ]
        assert not any(Path(path).exists() for path in old_logs)
        assert not Path(next(iter(old_logs))).parent.exists()
        for table in ("runs", "tasks", "attempts", "events"):
            assert _query(db, f"SELECT count(*) FROM {table} WHERE run_id = ?", (old,)) == [(0,)]
        assert _query(db, "SELECT count(*) FROM events WHERE run_id = ?", (new,))[0][0] > 0
        assert invoke("logs", new, "hello", "--db", db).stdout_bytes == b"hello out\n"

        with Store.open(db) as store:
            store.create_run(_pending_run("never-started"))
        everything = invoke_json("gc", "--db", db, "--keep", "0", "--json")
        assert [row["run_id"] for row in everything["deleted"]] == [new]
        assert _query(db, "SELECT run_id, status FROM runs") == [("never-started", "pending")]
        with Store.open(db) as store, pytest.raises(RunNotFound):
            store.get_run(new)

    def test_needs_a_rule_and_a_valid_age(self, tmp_path: Path) -> None:
        """gc without --keep or --older-than, or with a bad age, is exit 2."""
        db = tmp_path / "uet.db"
        assert invoke("gc", "--db", db).exit_code == 2
        bad = invoke("gc", "--db", db, "--older-than", "7x")
        assert bad.exit_code == 2
        assert "not an age" in bad.stderr


def _pending_run(run_id: str) -> NewRun:
    return NewRun(
        run_id=run_id,
        workflow="pending",
        owner_pid=os.getpid(),
        task_ids=["t"],
    )


def _run_on_terminal(*args: str | Path, cwd: Path) -> tuple[int, bytes]:
    """Run `uet` with a pseudo-terminal as stdout; return its exit code and what it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*UET, *map(str, args)], cwd=cwd, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return process.wait(timeout=60), b"".join(chunks)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()


PROGRESS_FLOW = """
    [workflow]
    name = "progress"
    max_workers = 2

    [[tasks]]
    id = "one"
    command = ["sleep", "0.3"]

    [[tasks]]
    id = "two"
    command = ["sleep", "0.3"]
    depends_on = ["one"]
"""


class TestProgress:
    def test_status_line_on_a_terminal(self, tmp_path: Path) -> None:
        """On a terminal, `uet run` redraws one status line in place with counts and times."""
        flow = _write(tmp_path, "progress.toml", PROGRESS_FLOW)
        started = time.monotonic()
        code, out = _run_on_terminal("run", flow, "--db", tmp_path / "uet.db", cwd=tmp_path)
        elapsed = time.monotonic() - started
        assert code == 0
        text = out.decode()
        assert "\r\x1b[K[" in text
        assert "/2 done" in text
        assert "1 running" in text
        assert "ETA" in text
        frames = text.count("\r\x1b[K[")
        assert frames <= 10 * elapsed + 2, "redrawn at most ten times a second"
        assert "run " in text.splitlines()[-1]

    def test_quiet_on_a_terminal_has_no_status_line(self, tmp_path: Path) -> None:
        """--quiet turns the status line off even on a terminal."""
        flow = _write(tmp_path, "progress.toml", PROGRESS_FLOW)
        code, out = _run_on_terminal(
            "run", flow, "--db", tmp_path / "uet.db", "--quiet", cwd=tmp_path
        )
        assert code == 0
        assert b"\x1b[K" not in out
        assert b"done" not in out

    def test_absent_when_not_a_terminal(self, filled: Filled) -> None:
        """Piped output has no status line, no carriage returns and no escape codes."""
        out = filled.failed_stdout
        assert "\r" not in out
        assert "\x1b" not in out
        assert "done" not in out
        assert "running" not in out
        assert [line.split()[0] for line in out.splitlines()[1:3]] == ["ok", "ok"]
        assert "  FAILED  broken  exit 3" in out


def _task(task_id: str, idx: int, start: float | None, end: float | None) -> TaskRecord:
    return TaskRecord(
        run_id="r",
        task_id=task_id,
        idx=idx,
        kind=None,
        state="succeeded" if end is not None else "pending",
        attempts=1 if start is not None else 0,
        tool=None,
        started_at=start,
        finished_at=end,
        exit_code=None,
    )


class TestReport:
    def test_record_durations(self, filled: Filled) -> None:
        """A run's and a task's duration is finish minus start, None until both are known."""
        assert _task("a", 0, 100.0, 102.5).duration == 2.5
        assert _task("a", 0, 100.0, None).duration is None
        assert _task("a", 0, None, None).duration is None
        with Store.open(filled.db) as store:
            run = store.get_run(filled.failed)
            tasks = store.tasks(filled.failed)
        assert run.started_at is not None and run.finished_at is not None
        assert run.duration == run.finished_at - run.started_at
        shown = invoke_json("show", filled.failed, "--db", filled.db, "--json")
        assert shown["run"]["duration"] == run.duration
        assert [row["duration"] for row in shown["tasks"]] == [task.duration for task in tasks]
        assert {task.task_id for task in tasks if task.duration is None} == {"after-broken"}

    def test_critical_path_follows_the_releasing_task(self) -> None:
        """The path ends at the last task to finish and walks back through what released it."""
        tasks = [
            _task("a", 0, 100.0, 101.0),
            _task("b", 1, 100.0, 103.0),
            _task("c", 2, 103.5, 104.0),
            _task("d", 3, 101.0, 102.0),
            _task("never", 4, None, None),
        ]
        released = {"a": None, "b": None, "c": "b", "d": "a", "never": None}
        steps = report.critical_path(tasks, released, run_started=99.5)
        assert [(s.task_id, s.waited, s.duration) for s in steps] == [
            ("b", 0.5, 3.0),
            ("c", 0.5, 0.5),
        ]
        assert report.path_seconds(steps) == 4.0
        assert report.critical_path([_task("x", 0, None, None)], {}, run_started=None) == []

    def test_parallelism_is_busy_time_over_wall_time(self) -> None:
        """Parallelism divides attempt seconds by run seconds; no wall time gives None."""
        assert report.parallelism(6.0, 3.0) == 2.0
        assert report.parallelism(1.0, None) is None
        assert report.run_wall(10.0, None, now=12.5) == 2.5
        assert report.run_wall(None, None, now=1.0) is None
