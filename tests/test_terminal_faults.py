"""
A terminal or pipe that goes away under a real ``uet`` process.

The work is the point and the terminal only a view. SIGHUP (a closed
terminal) stops a run like SIGTERM: exit 129, every process group stopped,
the run recorded ``cancelled``. A stdout or stderr that goes away (a pipe
whose reader closed, a terminal that hung up, a descriptor closed at start)
only drops output: the run goes on to its end, records everything, and
exits with its own code, with nothing on stderr but what uet means to say.
The commands that only show the store stop quietly with 141 (128 + SIGPIPE)
when their reader leaves.

Every test starts the installed ``uet`` program in a session of its own and
ends by checking ``PRAGMA integrity_check`` and that no process it started
survives.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from uet_trio import Store, StoreError, read_output

from .conftest import UET
from .procs import alive, stat_fields, wait_for

EXIT_HUP = 129
EXIT_PIPE = 141

SPAWNERS = ("a", "b")

LONG_FLOW = """
[workflow]
name = "hangup"
max_workers = 2
kill_grace = 5

# Each task starts a grandchild in its process group, notes its pid, then waits.
[tools.spawner]
command = ["sh", "-c", "f=gc.$UET_TASK_ID; sleep 60 & echo $! > $f.tmp; mv $f.tmp $f; wait"]
kinds = ["spawn"]

[[tasks]]
id = "a"
kind = "spawn"

[[tasks]]
id = "b"
kind = "spawn"

[[tasks]]
id = "after"
command = ["true"]
depends_on = ["a", "b"]
"""

GATED_FLOW = """
[workflow]
name = "gated"
max_workers = 2

# The first task waits until the test has closed the output, so that every
# later line is written to a stream that is gone.
[[tasks]]
id = "gate"
command = ["sh", "-c", "while [ ! -e gate.open ]; do sleep 0.01; done; echo gate"]
{tasks}
"""

STEP = """
[[tasks]]
id = "step-{n}"
command = ["sh", "-c", "echo out-{n}; echo err-{n} >&2; exit {code}"]
depends_on = ["gate"]
"""

STEPS = 6


def gated_flow(tmp_path: Path, *, failing: bool = False) -> Path:
    """A workflow of a gate task and `STEPS` tasks after it; with `failing`, step-0 exits 3."""
    steps = "".join(STEP.format(n=n, code=3 if failing and n == 0 else 0) for n in range(STEPS))
    flow = tmp_path / "flow.toml"
    flow.write_text(GATED_FLOW.format(tasks=steps))
    return flow


def group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) processes whose process group is one of `pgids`."""
    members = []
    for entry in os.listdir("/proc"):
        fields = stat_fields(entry) if entry.isdigit() else None
        if fields is not None and fields[0] not in (b"Z", b"X") and int(fields[2]) in pgids:
            members.append(int(entry))
    return members


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` through a fresh connection."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


class Uet:
    """A real ``uet`` process in a session of its own, started in `tmp_path`."""

    def __init__(self, tmp_path: Path, args: list[str], **streams: Any) -> None:
        self.process = subprocess.Popen(
            [*UET, *args],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **streams,
        )

    def wait(self, timeout: float = 60) -> int:
        """Wait for `uet` to exit; its status."""
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole session's group if `uet` still runs (cleanup after a failure)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Uet]]:
    """
    Start real `uet` processes; afterwards none of them, and no task's process
    group, may be left (whatever a failed test leaves is killed).
    """
    started: list[Uet] = []

    def begin(*args: str | Path, **streams: Any) -> Uet:
        uet = Uet(tmp_path, [str(arg) for arg in args], **streams)
        started.append(uet)
        return uet

    yield begin
    for uet in started:
        uet.kill()
    db = tmp_path / "uet.db"
    pgids: set[int] = set()
    if db.exists():
        with Store.open(db, readonly=True) as store:
            for run in store.list_runs():
                pgids |= {a.pid for a in store.attempts(run.run_id) if a.pid is not None}
    leftover = group_members(pgids)
    for pid in leftover:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not leftover, f"processes of the run survived: {leftover}"


def records(db: Path) -> tuple[str, dict[str, str]]:
    """The only run's status and its task states; the store must pass its integrity check."""
    assert integrity(db) == "ok"
    with Store.open(db, readonly=True) as store:
        (run,) = store.list_runs()
        assert run.owner_pid is None
        events = store.events(run.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].kind == "run_finished"
        return run.status, {t.task_id: t.state for t in store.tasks(run.run_id)}


def closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone (the caller closes it)."""
    read, write = os.pipe()
    os.close(read)
    return write


# ---------------------------------------------------------------- SIGHUP


class Terminal:
    """A pseudo-terminal: `uet` writes to its slave side; closing the master hangs it up."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        flags = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.seen = b""

    def streams(self) -> dict[str, int]:
        """Popen arguments writing stdout and stderr to the terminal."""
        return {"stdout": self.slave, "stderr": self.slave}

    def started(self) -> None:
        """The child holds the slave now: the test keeps only the master."""
        os.close(self.slave)

    def drain(self) -> bytes:
        """Read what `uet` has written so far (so the terminal never fills up)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.master, 65536):
                self.seen += chunk
        return self.seen

    def close(self) -> None:
        """Hang up: later writes to the slave fail with EIO."""
        self.drain()
        os.close(self.master)


def spawned(tmp_path: Path, db: Path, terminal: Terminal | None = None) -> Callable[[], bool]:
    """Whether every spawner task noted its grandchild and the store recorded its process."""

    def check() -> bool:
        if terminal is not None:
            terminal.drain()
        if not all((tmp_path / f"gc.{task}").exists() for task in SPAWNERS):
            return False
        try:
            with Store.open(db, readonly=True) as store:
                runs = store.list_runs()
                attempts = store.attempts(runs[0].run_id) if runs else []
        except StoreError:
            return False
        return sum(a.pid is not None and a.status == "running" for a in attempts) == len(SPAWNERS)

    return check


def assert_hung_up(tmp_path: Path, db: Path, run_id: str | None = None) -> None:
    """The run is `cancelled`, every task too, and nothing it started runs any more."""
    grandchildren = [int((tmp_path / f"gc.{task}").read_text()) for task in SPAWNERS]
    assert integrity(db) == "ok"
    with Store.open(db, readonly=True) as store:
        run = store.get_run(run_id) if run_id else store.list_runs()[0]
        assert run.status == "cancelled"
        assert run.owner_pid is None
        assert {t.task_id: t.state for t in store.tasks(run.run_id)} == {
            "a": "cancelled",
            "b": "cancelled",
            "after": "cancelled",
        }
        events = store.events(run.run_id)
        assert events[-1].kind == "run_finished"
        assert events[-1].data["status"] == "cancelled"
        pgids = {a.pid for a in store.attempts(run.run_id) if a.pid is not None}
    wait_for(lambda: not group_members(pgids), "the run's process groups to empty", timeout=10)
    assert not any(alive(pid) for pid in grandchildren)


def test_sighup_from_a_closed_terminal_cancels_the_run(
    start: Callable[..., Uet], tmp_path: Path
) -> None:
    """
    `uet run` on a terminal (progress line drawn) that closes, then SIGHUP:
    exit 129, every process group stopped, the run recorded `cancelled`.
    """
    (tmp_path / "flow.toml").write_text(LONG_FLOW)
    db = tmp_path / "uet.db"
    terminal = Terminal()
    uet = start("run", "flow.toml", "--db", db, **terminal.streams())
    terminal.started()
    wait_for(spawned(tmp_path, db, terminal), "the tasks to start their grandchildren", timeout=60)
    wait_for(lambda: b"running" in terminal.drain(), "the progress line", timeout=10)
    terminal.close()
    os.kill(uet.process.pid, signal.SIGHUP)
    assert uet.wait() == EXIT_HUP
    assert_hung_up(tmp_path, db)


def test_sighup_stops_uet_resume(start: Callable[..., Uet], tmp_path: Path) -> None:
    """`uet resume` takes the same path: a hangup cancels the resumed run, exit 129."""
    (tmp_path / "flow.toml").write_text(LONG_FLOW)
    db = tmp_path / "uet.db"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    first = start("run", "flow.toml", "--db", db, **pipes)
    wait_for(spawned(tmp_path, db), "the first run's tasks to start", timeout=60)
    first.process.send_signal(signal.SIGHUP)
    _, err = first.process.communicate(timeout=60)
    assert first.process.returncode == EXIT_HUP, err
    with Store.open(db, readonly=True) as store:
        (run_id,) = [run.run_id for run in store.list_runs()]
    for task in SPAWNERS:
        (tmp_path / f"gc.{task}").unlink()
    again = start("resume", run_id, "--db", db, **pipes)
    wait_for(spawned(tmp_path, db), "the resumed tasks to start", timeout=60)
    again.process.send_signal(signal.SIGHUP)
    out, err = again.process.communicate(timeout=60)
    assert again.process.returncode == EXIT_HUP, err
    assert b"Traceback" not in err
    assert b"cancelled" in out
    assert_hung_up(tmp_path, db, run_id)


# ---------------------------------------------------------------- a reader that leaves


@pytest.mark.parametrize(
    ("args", "merged"),
    [((), False), (("--verbose",), False), ((), True)],
    ids=["lines", "verbose", "stderr-too"],
)
@pytest.mark.parametrize("failing", [False, True], ids=["ok", "failing"])
def test_run_goes_on_when_the_reader_leaves_after_the_first_line(
    start: Callable[..., Uet],
    tmp_path: Path,
    args: tuple[str, ...],
    merged: bool,
    failing: bool,
) -> None:
    """
    ``uet run | head -1`` (and ``2>&1 | head -1``): the run finishes, every
    task is recorded, the exit code is the run's own, nothing on stderr.
    """
    flow = gated_flow(tmp_path, failing=failing)
    db = tmp_path / "uet.db"
    stderr = subprocess.STDOUT if merged else subprocess.PIPE
    uet = start("run", flow, "--db", db, *args, stdout=subprocess.PIPE, stderr=stderr)
    assert uet.process.stdout is not None
    assert uet.process.stdout.readline()
    uet.process.stdout.close()
    (tmp_path / "gate.open").touch()
    err: IO[bytes] | None = uet.process.stderr
    assert uet.wait() == (1 if failing else 0)
    if err is not None:
        assert err.read() == b""
        err.close()
    status, states = records(db)
    steps = {f"step-{n}": "succeeded" for n in range(STEPS)}
    if failing:
        assert status == "failed"
        steps["step-0"] = "failed"
    else:
        assert status == "succeeded"
    assert states == {"gate": "succeeded", **steps}


@pytest.mark.parametrize(
    "args",
    [(), ("--json",), ("--quiet",), ("--verbose",)],
    ids=["lines", "json", "quiet", "verbose"],
)
def test_run_with_no_reader_from_the_start(
    start: Callable[..., Uet], tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Every write of the run (first line to summary or JSON) meets a closed pipe: exit 0."""
    flow = gated_flow(tmp_path)
    (tmp_path / "gate.open").touch()
    db = tmp_path / "uet.db"
    write = closed_pipe()
    try:
        uet = start("run", flow, "--db", db, *args, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    _, err = uet.process.communicate(timeout=60)
    assert uet.process.returncode == 0
    assert err == b""
    assert records(db)[0] == "succeeded"


def test_a_terminal_that_goes_away_mid_run_only_drops_output(
    start: Callable[..., Uet], tmp_path: Path
) -> None:
    """
    The progress line's terminal closes (no signal comes): later writes fail
    with EIO, the run goes on to its end and exits 0.
    """
    flow = gated_flow(tmp_path)
    db = tmp_path / "uet.db"
    terminal = Terminal()
    uet = start("run", flow, "--db", db, **terminal.streams())
    terminal.started()
    wait_for(lambda: b"running" in terminal.drain(), "the progress line", timeout=60)
    terminal.close()
    (tmp_path / "gate.open").touch()
    assert uet.wait() == 0
    assert records(db) == (
        "succeeded",
        {"gate": "succeeded", **{f"step-{n}": "succeeded" for n in range(STEPS)}},
    )


# ---------------------------------------------------------------- streams closed at start


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
@pytest.mark.parametrize("failing", [False, True], ids=["ok", "failing"])
@pytest.mark.usefixtures("start")
def test_run_with_a_standard_stream_closed_at_start(
    tmp_path: Path, closed: str, failing: bool
) -> None:
    """
    ``uet run >&-`` (or stderr, or both, closed): the run completes and is
    recorded, the exit code is the run's own, and each task's log holds only
    what the task wrote (no output of uet's lands in a file that took a
    free standard descriptor).
    """
    flow = gated_flow(tmp_path, failing=failing)
    (tmp_path / "gate.open").touch()
    db = tmp_path / "uet.db"
    process = subprocess.run(
        [
            "sh",
            "-c",
            f'exec "$0" "$@" {closed}',
            *UET,
            "run",
            str(flow),
            "--db",
            str(db),
            "--verbose",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )
    assert process.returncode == (1 if failing else 0), process.stderr
    if "2>&-" not in closed:
        assert process.stderr == b""
    if closed.startswith(">&-"):
        assert process.stdout == b""
    status, states = records(db)
    assert status == ("failed" if failing else "succeeded")
    assert states["step-1"] == "succeeded"
    with Store.open(db, readonly=True) as store:
        run_id = store.list_runs()[0].run_id
        for n in range(STEPS):
            attempt = store.find_attempt(run_id, f"step-{n}")
            assert attempt is not None
            assert read_output(attempt, stderr=False) == f"out-{n}\n".encode()
            assert read_output(attempt, stderr=True) == f"err-{n}\n".encode()


# ---------------------------------------------------------------- views


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """A store with one finished run whose task `gate` printed a line."""
    flow = gated_flow(tmp_path)
    (tmp_path / "gate.open").touch()
    db = tmp_path / "uet.db"
    done = subprocess.run(
        [*UET, "run", str(flow), "--db", str(db), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return db


VIEWS = [
    ("events", "--last"),
    ("events", "--last", "--jsonl"),
    ("events", "--last", "--json"),
    ("logs", "--last", "step-1"),
    ("runs",),
    ("runs", "--json"),
    ("show", "--last"),
    ("show", "--last", "--json"),
]


@pytest.mark.parametrize("view", VIEWS, ids=[" ".join(view) for view in VIEWS])
def test_a_view_whose_reader_left_stops_quietly(
    start: Callable[..., Uet], recorded: Path, view: tuple[str, ...]
) -> None:
    """``uet events | head`` and its kin: exit 141 (128 + SIGPIPE), nothing on stderr."""
    write = closed_pipe()
    try:
        uet = start(*view, "--db", recorded, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    _, err = uet.process.communicate(timeout=60)
    assert uet.process.returncode == EXIT_PIPE, err
    assert err == b""
    assert integrity(recorded) == "ok"


@pytest.mark.parametrize("view", VIEWS, ids=[" ".join(view) for view in VIEWS])
def test_a_view_with_stdout_closed_at_start_succeeds(recorded: Path, view: tuple[str, ...]) -> None:
    """With nowhere to print (``uet runs >&-``), a view has nothing to fail on: exit 0."""
    process = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', *UET, *view, "--db", str(recorded)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stderr == b""


def test_an_error_for_a_stderr_nobody_reads_keeps_its_exit_code(tmp_path: Path) -> None:
    """uet's own error message is dropped, not fatal: a missing workflow file is still exit 2."""
    write = closed_pipe()
    try:
        process = subprocess.run(
            [*UET, "run", str(tmp_path / "missing.toml"), "--db", str(tmp_path / "uet.db")],
            stdout=write,
            stderr=write,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert process.returncode == 2


@pytest.mark.usefixtures("start")
def test_a_warning_for_a_stderr_nobody_reads_does_not_stop_the_run(tmp_path: Path) -> None:
    """
    The store's directory is writable by others, so `uet run` warns on stderr
    before it starts; with stdout and stderr both pipes nobody reads, the run
    still happens and exits 0.
    """
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    db = shared / "uet.db"
    flow = gated_flow(tmp_path)
    (tmp_path / "gate.open").touch()
    heard = subprocess.run(
        [*UET, "run", str(flow), "--db", str(shared / "heard.db")],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert heard.returncode == 0
    assert b"writable by other users" in heard.stderr
    write = closed_pipe()
    try:
        unheard = subprocess.run(
            [*UET, "run", str(flow), "--db", str(db)],
            cwd=tmp_path,
            stdout=write,
            stderr=write,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert unheard.returncode == 0
    assert records(db)[0] == "succeeded"


@pytest.mark.usefixtures("start")
def test_logs_whose_reader_leaves_mid_output_stops_quietly(tmp_path: Path) -> None:
    """
    ``uet logs RUN TASK | head -1`` on output far larger than a pipe holds:
    the reader leaves mid-write, uet exits 141 with nothing on stderr.
    """
    flow = tmp_path / "flow.toml"
    flow.write_text('[[tasks]]\nid = "big"\ncommand = ["seq", "1", "300000"]\n')
    db = tmp_path / "uet.db"
    done = subprocess.run(
        [*UET, "run", str(flow), "--db", str(db), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    logs = subprocess.Popen(
        [*UET, "logs", "--last", "big", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert logs.stdout is not None
    assert logs.stdout.readline() == b"1\n"
    logs.stdout.close()
    _, err = logs.communicate(timeout=60)
    assert logs.returncode == EXIT_PIPE, err
    assert err == b""
    assert integrity(db) == "ok"
