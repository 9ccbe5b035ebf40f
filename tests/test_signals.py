"""
Graceful shutdown of a real ``uet run`` process on SIGINT and SIGTERM.

Each test starts the installed ``uet`` program with `subprocess.Popen` (a
job started with ``&`` by a non-interactive shell would ignore SIGINT), waits
until its tasks have spawned background grandchildren, signals it with
`os.kill`, and then checks what is left: no process of the run's process
groups, the run recorded ``cancelled`` with every event up to the signal, and
the exit status 130 or 143.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from uet_trio import Store, StoreError

from .conftest import UET
from .procs import alive, stat_fields

TASKS = ("a", "b", "c")

FLOW = """
[workflow]
name = "signals"
max_workers = 3
kill_grace = {grace}

# Each task starts two grandchildren in its process group, notes one of them,
# then waits; {trap} decides whether the task and its children ignore SIGTERM.
[tools.spawner]
command = [
    "sh", "-c",
    "{trap} f=gc.$UET_TASK_ID; sleep 60 & echo $! > $f.tmp; sleep 60 & mv $f.tmp $f; wait",
]
kinds = ["spawn"]

[[tasks]]
id = "a"
kind = "spawn"

[[tasks]]
id = "b"
kind = "spawn"

[[tasks]]
id = "c"
kind = "spawn"

"""

LATER = """
[[tasks]]
id = "later-{n}"
command = ["true"]
depends_on = ["a", "b", "c"]
"""


def group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) processes whose process group is one of `pgids`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is None or fields[0] in (b"Z", b"X"):
            continue
        if int(fields[2]) in pgids:
            members.append(int(entry))
    return members


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Started:
    """A real `uet run` in flight; `wait_started` waits for its grandchildren."""

    def __init__(
        self, tmp_path: Path, *, grace: float, ignore_term: bool, later: int, args: tuple[str, ...]
    ) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "uet.db"
        self.later = later
        trap = "trap '' TERM;" if ignore_term else ""
        flow = tmp_path / "flow.toml"
        tasks = "".join(LATER.format(n=n) for n in range(later))
        flow.write_text(FLOW.format(grace=grace, trap=trap) + tasks)
        self.process = subprocess.Popen(
            [*UET, "run", str(flow), "--db", str(self.db), *args],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.grandchildren: list[int] = []

    def wait_started(self) -> None:
        """Wait until every task has its grandchildren and the store records its process."""
        notes = [self.tmp_path / f"gc.{t}" for t in TASKS]
        wait_for(
            lambda: all(note.exists() for note in notes) and self.spawns_recorded(),
            60,
            "every task to start its grandchildren and the store to record its process",
        )
        self.grandchildren = [int(note.read_text()) for note in notes]

    def spawns_recorded(self) -> bool:
        """
        Whether the store holds the process of every task's attempt (False
        while the database or its schema does not exist yet).
        """
        try:
            with Store.open(self.db, readonly=True) as store:
                runs = store.list_runs()
                attempts = store.attempts(runs[0].run_id) if runs else []
        except StoreError:
            return False
        return sum(a.pid is not None for a in attempts) == len(TASKS)

    def signal(self, signum: int) -> None:
        """Send `signum` to the `uet` process."""
        os.kill(self.process.pid, signum)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for `uet` to exit; its status, stdout and stderr."""
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def kill(self) -> None:
        """SIGKILL `uet` if it is still running (cleanup after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """Start a real `uet run`; whatever a failed test leaves running is killed."""
    started: list[Started] = []

    def begin(*args: str, grace: float = 5, ignore_term: bool = False, later: int = 1) -> Started:
        run = Started(tmp_path, grace=grace, ignore_term=ignore_term, later=later, args=args)
        started.append(run)
        run.wait_started()
        return run

    yield begin
    noted = [note.read_text().strip() for note in tmp_path.glob("gc.*")]
    grandchildren = {int(pid) for pid in noted if pid.isdigit()}
    for run in started:
        run.kill()
    for pid in grandchildren:
        fields = stat_fields(pid)
        with contextlib.suppress(OSError):
            # Still ours only if it runs in this test's directory (not a recycled pid).
            if fields is not None and Path(f"/proc/{pid}/cwd").resolve() == tmp_path.resolve():
                os.killpg(int(fields[2]), signal.SIGKILL)


def assert_cleanly_cancelled(run: Started) -> None:
    """Nothing of the run's groups remains; the store holds the whole cancelled run."""
    with Store.open(run.db) as store:
        (record,) = store.list_runs()
        assert record.status == "cancelled"
        assert record.owner_pid is None
        attempts = store.attempts(record.run_id)
        pgids = {a.pid for a in attempts if a.pid is not None}
        assert len(pgids) == len(TASKS)
        wait_for(lambda: not group_members(pgids), 10, "the run's process groups to empty")
        wait_for(
            lambda: not any(alive(pid) for pid in run.grandchildren), 10, "the grandchildren to go"
        )
        assert {a.task_id: a.status for a in attempts} == {t: "cancelled" for t in TASKS}
        states = [t.state for t in store.tasks(record.run_id)]
        assert states == ["cancelled"] * (len(TASKS) + run.later)
        events = store.events(record.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        spawned = {e.task_id for e in events if e.kind == "attempt_spawned"}
        assert spawned == set(TASKS)
        assert events[-1].kind == "run_finished"
        assert events[-1].data["status"] == "cancelled"
        assert events[-1].seq == record.last_seq


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_signal_cancels_the_run_and_its_process_groups(
    start: Callable[..., Started], signum: int, status: int
) -> None:
    """One signal: every group is stopped, the run is `cancelled`, the exit status says which."""
    run = start()
    run.signal(signum)
    code, out, err = run.finish()
    assert code == status, err
    assert "cancelled" in out
    assert "Traceback" not in err
    assert_cleanly_cancelled(run)


def test_processes_ignoring_sigterm_are_killed_after_the_grace(
    start: Callable[..., Started],
) -> None:
    """Tasks that ignore SIGTERM get SIGKILL once `--kill-grace` has passed."""
    run = start("--kill-grace", "0.5", ignore_term=True)
    run.signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 143, err
    assert_cleanly_cancelled(run)


def test_second_sigint_skips_the_rest_of_the_grace(start: Callable[..., Started]) -> None:
    """With a 600 s grace, a second Ctrl-C kills the SIGTERM-ignoring groups at once."""
    run = start(grace=600, ignore_term=True)
    run.signal(signal.SIGINT)
    time.sleep(0.5)
    assert run.process.poll() is None, "uet exited before the grace period was over"
    run.signal(signal.SIGINT)
    code, _, err = run.finish(timeout=60)
    assert code == 130, err
    assert_cleanly_cancelled(run)


def test_a_run_with_thousands_of_unfinished_tasks_is_recorded_completely(
    start: Callable[..., Started],
) -> None:
    """Cancelling records more events than a subscriber buffers, and still exits cleanly."""
    run = start(later=1500)
    run.signal(signal.SIGINT)
    code, _, err = run.finish()
    assert code == 130, err
    assert "Traceback" not in err
    assert_cleanly_cancelled(run)
