"""
``uet serve``: the web view, over plain HTTP and in Debian's headless Chromium.

One store holds a finished run (a failure with output on both streams, a
skipped dependent) and a live one: a real ``uet run`` whose tasks wait for
files the tests create. One real ``uet serve`` subprocess on a free loopback
port serves it for the whole module, and one browser (Playwright driving the
``chromium`` on PATH; never a downloaded one) is shared by the browser tests.
Every request the page makes is checked to stay on that server.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page, expect, sync_playwright
from uet_trio_cli import main

from uet_trio import RunStatus, TaskState, web
from uet_trio.web.data import ViewStore

from .conftest import UET, run_uet

DONE_FLOW = """
    [workflow]
    name = "web-done"
    max_workers = 2

    [[tasks]]
    id = "big"
    command = ["sh", "-c", "head -c 1100000 /dev/zero | tr '\\\\0' x; echo; echo the end"]

    [[tasks]]
    id = "a"
    command = ["sh", "-c", "echo hello a"]

    [[tasks]]
    id = "b"
    command = ["sh", "-c", "echo line1; echo line2; echo oops >&2; exit 3"]
    depends_on = ["a"]

    [[tasks]]
    id = "c"
    command = ["true"]
    depends_on = ["a"]

    [[tasks]]
    id = "d"
    command = ["true"]
    depends_on = ["b", "c"]

    [[tasks]]
    id = "flaky"
    command = [
        "sh", "-c",
        "if [ -e marker ]; then echo second try; exit 0; fi; touch marker; echo first try; exit 1",
    ]
    retries = 1
    backoff = { initial = 0.05, factor = 1.0, jitter = 0.0 }
"""

DONE_STATES = {
    "big": "succeeded",
    "a": "succeeded",
    "b": "failed",
    "c": "succeeded",
    "d": "skipped",
    "flaky": "succeeded",
}

LIVE_FLOW = """
    [workflow]
    name = "web-live"
    max_workers = 4

    [[tasks]]
    id = "first"
    command = ["true"]

    [[tasks]]
    id = "gate"
    command = ["sh", "-c", "while [ ! -e go-gate ]; do sleep 0.05; done"]
    depends_on = ["first"]

    [[tasks]]
    id = "chatter"
    command = [
        "sh", "-c",
        "echo first line; while [ ! -e go-chatter ]; do sleep 0.05; done; echo second line",
    ]
    depends_on = ["first"]

    [[tasks]]
    id = "last"
    command = ["sh", "-c", "while [ ! -e go-last ]; do sleep 0.05; done"]
    depends_on = ["first"]

    [[tasks]]
    id = "breaks"
    command = [
        "sh", "-c", "while [ ! -e go-breaks ]; do sleep 0.05; done; echo broken pipe >&2; exit 5"
    ]
"""

CHAIN_FLOW = """
    [workflow]
    name = "chain"
    max_workers = 2

    [[tasks]]
    id = "a"
    command = ["true"]

    [[tasks]]
    id = "b"
    command = ["sh", "-c", "sleep 0.2"]
    depends_on = ["a"]

    [[tasks]]
    id = "c"
    command = ["sh", "-c", "echo failing; exit 2"]
    depends_on = ["a", "b"]
"""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

WAIT_MS = 30_000
"""How long the browser waits for an expected change (a bound for hangs, not a speed check)."""


@attrs.frozen
class Served:
    """The module's store, runs and server."""

    directory: Path
    db: Path
    url: str
    done: str
    live: str


def _wait_for_row(db: Path, sql: str) -> Any:
    """Poll the store read-only until `sql` returns a row (at most a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                row = conn.execute(sql).fetchone()
            if row is not None:
                return row[0]
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no row for {sql}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("web")
    (directory / "done.toml").write_text(textwrap.dedent(DONE_FLOW))
    (directory / "live.toml").write_text(textwrap.dedent(LIVE_FLOW))
    db = directory / ".uet" / "uet.db"
    finished = run_uet("run", "done.toml", cwd=directory)
    assert finished.returncode == 1, finished.stderr
    live = subprocess.Popen(
        [*UET, "run", "live.toml"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [*UET, "serve", "--port", "0", "--db", str(db)],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done_id = _wait_for_row(db, "SELECT run_id FROM runs WHERE workflow = 'web-done'")
        # Every task has started: first has ended, the other four wait for their files.
        live_id = _wait_for_row(
            db,
            "SELECT run_id FROM attempts JOIN runs USING (run_id) "
            "WHERE workflow = 'web-live' AND out_path IS NOT NULL "
            "GROUP BY run_id HAVING count(*) = 5",
        )
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, server.stderr and server.stderr.read())
        url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        yield Served(directory, db, url, done_id, live_id)
    finally:
        for name in ("go-gate", "go-chatter", "go-last", "go-breaks"):
            (directory / name).touch()
        try:
            assert live.wait(timeout=60) == 1
        finally:
            if live.poll() is None:
                live.kill()
                live.wait()
            server.send_signal(signal.SIGINT)
            try:
                stopped = server.wait(timeout=30)
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()
                for stream in (server.stdout, server.stderr):
                    if stream is not None:
                        stream.close()
    assert stopped == 0


def _get(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _lower(error.headers.items()), error.read()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _json(url: str) -> Any:
    status, _, body = _get(url)
    assert status == 200, body
    return json.loads(body)


def _events(url: str, *, until: str) -> list[tuple[str, Any]]:
    """The server-sent events of `url`, up to and including the first named `until`."""
    found: list[tuple[str, Any]] = []
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        name = ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                found.append((name, json.loads(line[len("data: ") :])))
                if name == until:
                    return found
    raise AssertionError(f"the stream ended without {until!r}: {found}")


# ---------------------------------------------------------------- HTTP


class TestEndpoints:
    def test_runs_lists_both_runs_with_status_and_counts(self, served: Served) -> None:
        """/api/runs: the finished run (failed) and the live one (running), with counts."""
        runs = {run["run_id"]: run for run in _json(served.url + "/api/runs")["runs"]}
        assert runs[served.done]["status"] == "failed"
        assert runs[served.done]["counts"] == {"succeeded": 4, "failed": 1, "skipped": 1}
        assert runs[served.done]["duration"] > 0
        assert runs[served.live]["status"] == "running"
        assert runs[served.live]["task_count"] == 5

    def test_run_snapshot_has_tasks_edges_levels_and_failure_tails(self, served: Served) -> None:
        """A run's snapshot: every task's state and level, the file's edges, the tails."""
        snapshot = _json(f"{served.url}/api/runs/{served.done}")
        states = {task["task_id"]: task["state"] for task in snapshot["tasks"]}
        assert states == DONE_STATES
        assert snapshot["edge_source"] == "workflow"
        assert sorted(map(tuple, snapshot["edges"])) == [(1, 2), (1, 3), (2, 4), (3, 4)]
        assert [task["level"] for task in snapshot["tasks"]] == [0, 0, 1, 1, 2, 0]
        (failure,) = snapshot["failures"]
        assert (failure["task_id"], failure["exit_code"]) == ("b", 3)
        assert failure["stdout_tail"] == ["line1", "line2"]
        assert failure["stderr_tail"] == ["oops"]
        assert failure["stderr_unavailable"] is None
        assert sorted((a["task_id"], a["attempt"]) for a in snapshot["attempts"]) == [
            ("a", 1),
            ("b", 1),
            ("big", 1),
            ("c", 1),
            ("flaky", 1),
            ("flaky", 2),
        ]

    def test_live_stream_of_a_finished_run_sends_its_state_then_ends(self, served: Served) -> None:
        """/live?after=0 of a finished run: one update with every task, then "end"."""
        events = _events(f"{served.url}/api/runs/{served.done}/live?after=0", until="end")
        (name, update), (last, end) = events
        assert (name, last) == ("update", "end")
        assert {task["task_id"]: task["state"] for task in update["tasks"]} == DONE_STATES
        assert end["status"] == "failed"

    def test_task_detail_and_log_slices(self, served: Served) -> None:
        """A task's attempts and tails; a log slice is the attempt's exact bytes."""
        detail = _json(f"{served.url}/api/runs/{served.done}/task?id=b")
        assert detail["task"]["state"] == "failed"
        assert detail["attempts"][0]["argv"][0] == "sh"
        assert detail["tail"]["stderr_tail"] == ["oops"]
        status, headers, body = _get(
            f"{served.url}/api/runs/{served.done}/log?task=b&attempt=1&stream=out&offset=6"
        )
        assert (status, body) == (200, b"line2\n")
        assert (headers["x-next-offset"], headers["x-finished"]) == ("12", "1")

    def test_follow_of_a_finished_task_sends_its_output_then_ends(self, served: Served) -> None:
        """/follow: an attempt marker, the stream's text, then "end" for a finished task."""
        url = f"{served.url}/api/runs/{served.done}/follow?task=b&stream=err"
        events = _events(url, until="end")
        assert events == [
            ("attempt", {"attempt": 1}),
            ("chunk", {"attempt": 1, "text": "oops\n"}),
            ("end", {"attempts": 1, "state": "failed"}),
        ]

    def test_trace_is_the_runs_chrome_trace_as_a_download(self, served: Served) -> None:
        """/trace: the document `uet trace` writes, offered as a file."""
        status, headers, body = _get(f"{served.url}/api/runs/{served.done}/trace")
        assert status == 200
        assert headers["content-disposition"] == (
            f'attachment; filename="{served.done}.trace.json"'
        )
        slices = [e for e in json.loads(body)["traceEvents"] if e["ph"] == "X"]
        assert sorted((s["name"], s["args"]["attempt"]) for s in slices) == [
            ("a", 1),
            ("b", 1),
            ("big", 1),
            ("c", 1),
            ("flaky", 1),
            ("flaky", 2),
        ]

    def test_trace_of_a_live_run_ends_running_attempts_now(self, served: Served) -> None:
        """An attempt still running is a slice up to the moment of the trace, status running."""
        _, _, body = _get(f"{served.url}/api/runs/{served.live}/trace")
        trace = json.loads(body)
        (last,) = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["name"] == "last"]
        assert last["args"]["status"] == "running"
        assert last["args"]["exit_code"] is None
        assert last["dur"] > 0
        assert trace["otherData"]["status"] == "running"

    def test_follow_goes_from_attempt_to_attempt(self, served: Served) -> None:
        """A retried task's log is followed through each attempt in turn."""
        url = f"{served.url}/api/runs/{served.done}/follow?task=flaky&stream=out"
        assert _events(url, until="end") == [
            ("attempt", {"attempt": 1}),
            ("chunk", {"attempt": 1, "text": "first try\n"}),
            ("attempt", {"attempt": 2}),
            ("chunk", {"attempt": 2, "text": "second try\n"}),
            ("end", {"attempts": 2, "state": "succeeded"}),
        ]

    def test_follow_sends_only_the_end_of_a_long_log(self, served: Served) -> None:
        """Of 1,100,009 bytes of output, the last MiB is sent, after a note of what was skipped."""
        url = f"{served.url}/api/runs/{served.done}/follow?task=big&stream=out"
        events = _events(url, until="end")
        assert events[:2] == [
            ("attempt", {"attempt": 1}),
            ("chunk", {"attempt": 1, "skipped": 1_100_009 - 2**20}),
        ]
        text = "".join(data["text"] for name, data in events[2:] if name == "chunk")
        assert text == "x" * (2**20 - 9) + "\nthe end\n"
        assert events[-1] == ("end", {"attempts": 1, "state": "succeeded"})

    def test_unknown_runs_and_tasks_are_404_with_a_message(self, served: Served) -> None:
        """A run or task that does not exist is a 404 whose JSON names it."""
        status, _, body = _get(served.url + "/api/runs/no-such-run")
        assert status == 404
        assert "no-such-run" in json.loads(body)["error"]
        status, _, body = _get(f"{served.url}/api/runs/{served.done}/task?id=zz")
        assert status == 404
        assert "zz" in json.loads(body)["error"]
        status, _, body = _get(f"{served.url}/api/runs/{served.done}/task")
        assert status == 400

    def test_pages_carry_a_strict_content_security_policy(self, served: Served) -> None:
        """Pages and assets allow only this server's own script, style and connections."""
        for path in ("/", f"/runs/{served.done}", "/static/app.js"):
            status, headers, _ = _get(served.url + path)
            assert status == 200
            assert "default-src 'self'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"

    def test_requests_for_another_host_name_are_refused(self, served: Served) -> None:
        """On loopback, a request addressed to another name (DNS rebinding) gets 400."""
        status, _, _ = _get(served.url + "/api/runs", headers={"Host": "attacker.example"})
        assert status == 400
        status, _, _ = _get(served.url + "/api/runs", headers={"Host": "localhost"})
        assert status == 200


class TestStoreReads:
    """The view's reads of a store whose workflow file or logs have changed since the run."""

    @pytest.fixture
    def recorded(self, tmp_path: Path) -> tuple[Path, str]:
        flow = tmp_path / "chain.toml"
        flow.write_text(textwrap.dedent(CHAIN_FLOW))
        done = run_uet("run", flow.name, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        db = tmp_path / ".uet" / "uet.db"
        with ViewStore.open_view(db) as store:
            return db, store.last_run()

    def test_edges_come_from_the_events_when_the_workflow_file_changed(
        self, recorded: tuple[Path, str]
    ) -> None:
        """A changed file's edges are not trusted: each task gets the one that released it."""
        db, run_id = recorded
        with ViewStore.open_view(db) as store:
            assert store.run_snapshot(run_id)["edge_source"] == "workflow"
        flow = db.parent.parent / "chain.toml"
        flow.write_text(flow.read_text().replace('"true"', '"/bin/true"'))
        with ViewStore.open_view(db) as store:
            snapshot = store.run_snapshot(run_id)
        assert snapshot["edge_source"] == "events"
        # c waits for a and b; b ended last, so b released it.
        assert sorted(map(tuple, snapshot["edges"])) == [(0, 1), (1, 2)]
        assert [task["level"] for task in snapshot["tasks"]] == [0, 1, 2]

    def test_a_missing_log_is_reported_in_the_tails(self, recorded: tuple[Path, str]) -> None:
        """A failed task whose log files are gone shows why its tails are missing."""
        db, run_id = recorded
        shutil.rmtree(db.parent / "logs")
        with ViewStore.open_view(db) as store:
            (failure,) = store.run_snapshot(run_id)["failures"]
        assert failure["task_id"] == "c"
        assert failure["stdout_tail"] is None
        assert "log missing" in failure["stdout_unavailable"]


class TestAssets:
    def test_the_script_knows_every_state(self) -> None:
        """The page's lists of states and finished states are uet_trio's own."""
        script = (Path(web.__file__).parent / "static" / "app.js").read_text()

        def listed(name: str) -> list[str]:
            match = re.search(rf"const {name} = (?:new Set\()?\[([^\]]*)\]", script)
            assert match is not None, name
            return json.loads(f"[{match.group(1)}]")

        assert listed("STATES") == [state.value for state in TaskState]
        assert set(listed("FINISHED_TASK")) == {s.value for s in TaskState if s.finished}
        assert set(listed("FINISHED_RUN")) == {s.value for s in RunStatus if s.finished}
        css = (Path(web.__file__).parent / "static" / "app.css").read_text()
        for state in TaskState:
            assert f"svg rect.node.st-{state.value} {{ fill: var(--{state.value}); }}" in css


class TestCommand:
    def test_a_missing_store_is_not_created(self, tmp_path: Path) -> None:
        """`uet serve --db` of a file that does not exist exits 2 and creates nothing."""
        missing = tmp_path / "none" / "uet.db"
        result = CliRunner().invoke(main, ["serve", "--port", "0", "--db", str(missing)])
        assert result.exit_code == 2, result.output
        assert str(missing) in result.output
        assert not missing.parent.exists()

    def test_a_port_in_use_is_a_clear_error(self, served: Served) -> None:
        """Listening on a port already taken fails with a message naming it, exit 1."""
        port = served.url.rsplit(":", 1)[1]
        result = CliRunner().invoke(main, ["serve", "--port", port, "--db", str(served.db)])
        assert result.exit_code == 1
        assert f"cannot listen on 127.0.0.1:{port}" in result.output


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """
    Debian's headless chromium, driven by Playwright, shared by the module's tests.

    Playwright starts it with a new temporary profile (``--user-data-dir``)
    of its own, removed when the browser closes.
    """
    executable = shutil.which("chromium")
    assert executable is not None, "install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    """A fresh page that may reach only the server: any other request fails the test."""
    context = browser.new_context()
    opened = context.new_page()
    elsewhere: list[str] = []
    errors: list[str] = []

    def only_ours(route: Any) -> None:
        if route.request.url.startswith(served.url + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    opened.route("**/*", only_ours)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert elsewhere == []
    assert errors == []


class TestBrowser:
    def test_runs_list_shows_both_runs(self, page: Page, served: Served) -> None:
        """The runs page lists the finished run as failed and the live one as running."""
        page.goto(served.url + "/")
        expect(page.locator(f'tr[data-run="{served.done}"]')).to_have_attribute(
            "data-status", "failed", timeout=WAIT_MS
        )
        expect(page.locator(f'tr[data-run="{served.live}"]')).to_have_attribute(
            "data-status", "running", timeout=WAIT_MS
        )

    def test_run_page_shows_every_task_with_its_state(self, page: Page, served: Served) -> None:
        """Each task is a node of the graph and a row of the table, with its state."""
        page.goto(f"{served.url}/runs/{served.done}")
        for task_id, state in DONE_STATES.items():
            node = page.locator(f'#dag rect.node[data-task="{task_id}"]')
            expect(node).to_have_attribute("data-state", state, timeout=WAIT_MS)
        rows = page.locator("#tasks tbody tr")
        expect(rows).to_have_count(len(DONE_STATES))
        for n, (task_id, state) in enumerate(DONE_STATES.items()):
            expect(rows.nth(n)).to_contain_text(task_id)
            expect(rows.nth(n).locator(".badge")).to_have_attribute("data-state", state)
        expect(page.locator("#gantt rect.bar")).to_have_count(6)
        expect(page.locator("#failures .failure pre[data-stream=stderr]")).to_have_text("oops")
        page.hover('#dag rect.node[data-task="b"]')
        expect(page.locator("#tip")).to_have_text("b — failed")
        page.hover("#gantt rect.bar.at-failed >> nth=0")
        expect(page.locator("#tip")).to_contain_text(" exit ")

    def test_a_task_finishing_in_the_live_run_changes_colour_without_reload(
        self, page: Page, served: Served
    ) -> None:
        """The gate task turns from running to succeeded on the open page, which never reloads."""
        page.goto(f"{served.url}/runs/{served.live}")
        gate = page.locator('#dag rect.node[data-task="gate"]')
        expect(gate).to_have_attribute("data-state", "running", timeout=WAIT_MS)
        expect(page.locator("#live")).to_have_text("live")
        page.evaluate("window.stillTheSamePage = true")
        fill = gate.evaluate("node => getComputedStyle(node).fill")
        (served.directory / "go-gate").touch()
        expect(gate).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
        assert gate.evaluate("node => getComputedStyle(node).fill") != fill
        assert page.evaluate("window.stillTheSamePage") is True

    def test_a_task_failing_in_the_live_run_shows_its_tail_without_reload(
        self, page: Page, served: Served
    ) -> None:
        """A failure in the live run appears among the failed tasks, with its stderr."""
        page.goto(f"{served.url}/runs/{served.live}")
        breaks = page.locator('#dag rect.node[data-task="breaks"]')
        expect(breaks).to_have_attribute("data-state", "running", timeout=WAIT_MS)
        expect(page.locator("#failures-title")).to_have_text("Failed tasks (0)")
        page.evaluate("window.stillTheSamePage = true")
        (served.directory / "go-breaks").touch()
        card = page.locator('#failures .failure[data-task="breaks"]')
        expect(card.locator("pre[data-stream=stderr]")).to_have_text("broken pipe", timeout=WAIT_MS)
        expect(card).to_contain_text("exit 5")
        expect(breaks).to_have_attribute("data-state", "failed")
        assert page.evaluate("window.stillTheSamePage") is True

    def test_a_failed_tasks_page_shows_its_output_tail(self, page: Page, served: Served) -> None:
        """The failed task's page shows the last lines of both its streams."""
        page.goto(f"{served.url}/runs/{served.done}/task?id=b")
        expect(page.locator("#task-state .badge")).to_have_attribute(
            "data-state", "failed", timeout=WAIT_MS
        )
        expect(page.locator("#tail pre[data-stream=stdout]")).to_have_text("line1\nline2")
        expect(page.locator("#tail pre[data-stream=stderr]")).to_have_text("oops")

    def test_a_running_tasks_log_is_followed(self, page: Page, served: Served) -> None:
        """The log of a running task grows on the page as the task writes, then completes."""
        page.goto(f"{served.url}/runs/{served.live}/task?id=chatter")
        log = page.locator("#log")
        expect(log).to_contain_text("first line", timeout=WAIT_MS)
        (served.directory / "go-chatter").touch()
        expect(log).to_contain_text("second line", timeout=WAIT_MS)
        expect(page.locator("#log-status")).to_have_text("complete", timeout=WAIT_MS)
        expect(page.locator("#task-state .badge")).to_have_attribute(
            "data-state", "succeeded", timeout=WAIT_MS
        )
