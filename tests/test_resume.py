"""
Resume: a run whose runner died (kill -9) is finished by ``uet resume``.

The tests run the real ``uet`` program: they kill it with SIGKILL mid-run,
inspect what the store recorded, resume, and check that succeeded tasks did
not run again, that the attempt left running was marked lost and its process
group (still running, orphaned) was killed, and that both parts form one
gap-free event sequence. Also: the lease that keeps two resumers apart,
resuming missing and succeeded runs, ``--retry-failed``, and the refusal to
resume with a changed workflow file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from uet_trio import RunConflict, Store, StoreError
from uet_trio.recording.records import NewRun
from uet_trio.running.executors.procfs import kill_group_if_owned, process_alive, process_start_time

from .conftest import UET, run_uet
from .procs import alive, wait_for

# Every task notes "<task> <attempt>" in `lines` when it starts. Attempt 1 of
# `hang` starts a grandchild, records it in `gc` and waits for it (60 s):
# it is the attempt the runner dies under. Later attempts of `hang` finish.
FLOW = """
[workflow]
name = "resumable"
max_workers = 2

[tools.step]
command = ["sh", "-c", "echo \\"$UET_TASK_ID $UET_ATTEMPT\\" >> lines; sleep 0.1", "step"]
kinds = ["step"]

[[tasks]]
id = "s1"
kind = "step"

[[tasks]]
id = "s2"
kind = "step"
depends_on = ["s1"]

[[tasks]]
id = "side"
kind = "step"

[[tasks]]
id = "hang"
command = [
    "sh", "-c",
    "echo hang $UET_ATTEMPT >> lines; [ $UET_ATTEMPT = 1 ] || exit 0; sleep 60 & echo $! >gc; wait",
]
depends_on = ["s2"]

[[tasks]]
id = "s4"
kind = "step"
depends_on = ["hang"]
"""

TASKS = {"s1", "s2", "side", "hang", "s4"}


def read_store(db: Path) -> Store | None:
    """The store opened read-only, or None while it does not exist yet."""
    try:
        return Store.open(db, readonly=True)
    except StoreError:
        return None


def started_lines(tmp_path: Path) -> Counter[str]:
    """How many attempts of each task started, from the `lines` file."""
    path = tmp_path / "lines"
    text = path.read_text() if path.exists() else ""
    return Counter(line.split()[0] for line in text.splitlines())


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """
    Background `uet` processes of a test; any still running at the end are
    killed, and so is the grandchild noted in `gc` if a failed test left it.
    """
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()
    noted = tmp_path / "gc"
    if noted.exists() and alive(int(noted.read_text())):
        os.kill(int(noted.read_text()), signal.SIGKILL)


def spawn_uet(
    processes: list[subprocess.Popen[str]], *args: str | os.PathLike[str], cwd: Path
) -> subprocess.Popen[str]:
    """Start the real `uet` program in the background."""
    process = subprocess.Popen(
        [*UET, *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    return process


def running_attempt(db: Path, task_id: str) -> bool:
    """
    Whether the store shows `task_id`'s attempt running with its process
    recorded (False while the database or its schema does not exist yet).
    """
    store = read_store(db)
    if store is None:
        return False
    with store:
        try:
            runs = store.list_runs()
            attempts = store.attempts(runs[0].run_id, task_id) if runs else []
        except StoreError:
            return False
    return bool(attempts) and attempts[-1].status == "running" and attempts[-1].pid is not None


def kill_mid_run(
    processes: list[subprocess.Popen[str]], tmp_path: Path, flow: Path, db: Path
) -> str:
    """Start `uet run`, SIGKILL it while `hang` attempt 1 runs; return the run id."""
    process = spawn_uet(processes, "run", flow, "--db", db, cwd=tmp_path)
    wait_for(
        lambda: (tmp_path / "gc").exists() and running_attempt(db, "hang"),
        "hang's first attempt to be running and recorded",
    )
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    with Store.open(db, readonly=True) as store:
        (run,) = store.list_runs()
        return run.run_id


class TestResumeAfterKill:
    def test_resume_finishes_the_run_without_repeating_successes(
        self, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        """kill -9, then `uet resume`: all succeed, successes kept, the orphan group killed."""
        flow = tmp_path / "flow.toml"
        flow.write_text(FLOW)
        db = tmp_path / "uet.db"
        run_id = kill_mid_run(processes, tmp_path, flow, db)
        orphan = int((tmp_path / "gc").read_text())
        assert alive(orphan), "the dead runner's grandchild should still be running"
        with Store.open(db, readonly=True) as store:
            record = store.get_run(run_id)
            assert record.status == "running"
            kept = {t.task_id for t in store.tasks(run_id) if t.state == "succeeded"}
            before = len(store.events(run_id))
            (lost,) = store.attempts(run_id, "hang")
        assert {"s1", "s2"} <= kept
        assert "hang" not in kept

        done = run_uet("resume", run_id, "--db", db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "succeeded" in done.stdout

        assert not alive(orphan)
        assert lost.pid is not None
        assert not alive(lost.pid)
        lines = started_lines(tmp_path)
        assert set(lines) == TASKS
        assert {task for task, n in lines.items() if n > 1} == {"hang"}
        assert lines["hang"] == 2
        with Store.open(db, readonly=True) as store:
            record = store.get_run(run_id)
            assert record.status == "succeeded"
            assert record.owner_pid is None
            assert {t.task_id: t.state for t in store.tasks(run_id)} == dict.fromkeys(
                TASKS, "succeeded"
            )
            assert [(a.attempt, a.status) for a in store.attempts(run_id, "hang")] == [
                (1, "lost"),
                (2, "succeeded"),
            ]
            events = store.events(run_id)
            assert len(store.list_runs()) == 1
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].seq == record.last_seq
        resumed_at = next(i for i, e in enumerate(events) if e.kind == "run_resumed")
        assert resumed_at == before
        assert [e.kind for e in events].count("run_started") == 1
        lost_events = [e for e in events if e.kind == "attempt_lost"]
        assert [(e.task_id, e.attempt) for e in lost_events] == [("hang", 1)]
        assert lost_events[0].data["group_killed"] is True
        after = events[resumed_at:]
        started_again = {e.task_id for e in after if e.kind == "attempt_started"}
        assert started_again.isdisjoint(kept)
        assert events[-1].kind == "run_finished"
        assert events[-1].data["status"] == "succeeded"

    def test_orphans_of_an_exited_leader_are_killed_on_resume(
        self, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        """The attempt's leader exits after the runner died; its background child is found."""
        release = "while [ ! -e release ]; do sleep 0.05; done"
        flow = tmp_path / "flow.toml"
        flow.write_text(FLOW.replace("echo $! >gc; wait", "echo $! >gc; " + release))
        db = tmp_path / "uet.db"
        run_id = kill_mid_run(processes, tmp_path, flow, db)
        orphan = int((tmp_path / "gc").read_text())
        with Store.open(db, readonly=True) as store:
            (lost,) = store.attempts(run_id, "hang")
        assert lost.pid is not None
        (tmp_path / "release").touch()
        # Until init reaps the exited leader, its zombie still holds the pgid;
        # wait until it is gone, so that only the orphan is left of the group.
        leader = Path(f"/proc/{lost.pid}")
        wait_for(lambda: not leader.exists(), "the lost attempt's leader to be reaped")
        assert alive(orphan)

        done = run_uet("resume", run_id, "--db", db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: not alive(orphan), "the orphan to be killed", timeout=10)
        with Store.open(db, readonly=True) as store:
            (lost_event,) = store.events(run_id, kinds=["attempt_lost"])
        assert lost_event.data["group_killed"] is True

    def test_second_resumer_is_refused_while_the_first_runs(
        self, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        """While one `uet resume --last` holds the run, another resume exits 3 naming it."""
        wait_gate = "while [ ! -e gate ]; do sleep 0.05; done; exit 0"
        gated = FLOW.replace("|| exit 0", "|| {{ " + wait_gate + "; }}")
        flow = tmp_path / "flow.toml"
        flow.write_text(gated)
        db = tmp_path / "uet.db"
        run_id = kill_mid_run(processes, tmp_path, flow, db)
        first = spawn_uet(processes, "resume", "--last", "--db", db, cwd=tmp_path)
        wait_for(
            lambda: started_lines(tmp_path)["hang"] == 2, "the resumed run to start hang again"
        )

        second = run_uet("resume", run_id, "--db", db, cwd=tmp_path)
        assert second.returncode == 3
        assert f"run {run_id} is being run by process {first.pid}" in second.stderr
        retry = run_uet("run", flow, "--retry-failed", run_id, "--db", db, cwd=tmp_path)
        assert retry.returncode == 3
        assert "is being run by process" in retry.stderr

        (tmp_path / "gate").touch()
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert started_lines(tmp_path)["hang"] == 2
        with Store.open(db, readonly=True) as store:
            assert store.get_run(run_id).status == "succeeded"


class TestResumeRefusals:
    def test_missing_run_exits_3(self, tmp_path: Path) -> None:
        """A run id the store does not know is a clear error with exit status 3."""
        done = run_uet("resume", "no-such-run", "--db", tmp_path / "uet.db", cwd=tmp_path)
        assert done.returncode == 3
        assert "no run matches 'no-such-run'" in done.stderr

    def test_succeeded_run_is_left_alone(self, tmp_path: Path) -> None:
        """Resuming (or retrying) a succeeded run runs nothing, records nothing, says so."""
        flow = tmp_path / "flow.toml"
        flow.write_text(FLOW.replace("[ $UET_ATTEMPT = 1 ] || exit 0; ", "exit 0; "))
        db = tmp_path / "uet.db"
        assert run_uet("run", flow, "--db", db, cwd=tmp_path).returncode == 0
        with Store.open(db, readonly=True) as store:
            (run,) = store.list_runs()
            events = len(store.events(run.run_id))
        done = run_uet("resume", run.run_id, "--db", db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"run {run.run_id} already succeeded; nothing to resume" in done.stdout
        retry = run_uet("run", flow, "--retry-failed", run.run_id, "--db", db, cwd=tmp_path)
        assert retry.returncode == 0, retry.stderr
        assert f"run {run.run_id} already succeeded; nothing to retry" in retry.stdout
        assert started_lines(tmp_path) == dict.fromkeys(TASKS, 1)
        with Store.open(db, readonly=True) as store:
            assert len(store.events(run.run_id)) == events

    def test_changed_workflow_is_refused_without_force(
        self, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        """After the file changed, resume exits 3 and runs nothing; --force resumes."""
        flow = tmp_path / "flow.toml"
        flow.write_text(FLOW)
        db = tmp_path / "uet.db"
        run_id = kill_mid_run(processes, tmp_path, flow, db)
        flow.write_text(FLOW.replace("sleep 0.1", "sleep 0.2"))
        with Store.open(db, readonly=True) as store:
            events = len(store.events(run_id))

        refused = run_uet("resume", run_id, "--db", db, cwd=tmp_path)
        assert refused.returncode == 3
        assert "different version of workflow 'resumable'" in refused.stderr
        assert "--force" in refused.stderr
        with Store.open(db, readonly=True) as store:
            assert len(store.events(run_id)) == events
            assert store.get_run(run_id).status == "running"

        forced = run_uet("resume", run_id, "--force", "--db", db, cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
        with Store.open(db, readonly=True) as store:
            assert store.get_run(run_id).status == "succeeded"


class TestRetryFailed:
    FLOW = """
        [workflow]
        name = "retry-failed"

        [[tasks]]
        id = "flaky"
        command = ["sh", "-c", "echo flaky >> lines; test -e fixed"]

        [[tasks]]
        id = "down"
        command = ["sh", "-c", "echo down >> lines"]
        depends_on = ["flaky"]

        [[tasks]]
        id = "ok"
        command = ["sh", "-c", "echo ok >> lines"]
        """

    def test_failed_and_skipped_tasks_run_again_under_the_same_run(
        self, tmp_path: Path, write_flow: Callable[[str], Path]
    ) -> None:
        """`uet run FLOW --retry-failed RUN`: new attempts for flaky and down, ok kept."""
        flow = write_flow(self.FLOW)
        db = tmp_path / "uet.db"
        first = run_uet("run", flow, "--db", db, cwd=tmp_path)
        assert first.returncode == 1
        with Store.open(db, readonly=True) as store:
            (run,) = store.list_runs()
            states = {t.task_id: t.state for t in store.tasks(run.run_id)}
        assert states == {"flaky": "failed", "down": "skipped", "ok": "succeeded"}

        (tmp_path / "fixed").touch()
        again = run_uet("run", flow, "--retry-failed", run.run_id, "--db", db, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert started_lines(tmp_path) == {"flaky": 2, "down": 1, "ok": 1}
        with Store.open(db, readonly=True) as store:
            assert [r.run_id for r in store.list_runs()] == [run.run_id]
            assert store.get_run(run.run_id).status == "succeeded"
            assert [(a.attempt, a.status) for a in store.attempts(run.run_id, "flaky")] == [
                (1, "failed"),
                (2, "succeeded"),
            ]
            events = store.events(run.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        ends = [e.data["status"] for e in events if e.kind == "run_finished"]
        assert ends == ["failed", "succeeded"]


class TestOwnership:
    def test_a_group_is_killed_only_when_its_leader_is_the_process_started(self) -> None:
        """A pgid whose recorded start time does not match (a recycled pid) is left alone."""
        child = subprocess.Popen(["sleep", "60"], start_new_session=True)
        try:
            start = process_start_time(child.pid)
            assert start is not None
            assert kill_group_if_owned(child.pid, start + 1) is False
            assert kill_group_if_owned(child.pid, None) is False
            assert child.poll() is None
            assert kill_group_if_owned(child.pid, start) is True
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            child.kill()
            child.wait()

    def test_leaderless_group_members_are_killed_only_with_the_attempt_key(self) -> None:
        """After the leader exits, only members carrying UET_IDEMPOTENCY_KEY=<key> are killed."""
        env = {**os.environ, "UET_IDEMPOTENCY_KEY": "run/task/1"}
        leader = subprocess.Popen(
            ["sh", "-c", "sleep 60 >/dev/null & echo $!"],
            start_new_session=True,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = leader.communicate(timeout=30)
        orphan = int(out)
        try:
            assert alive(orphan)
            assert kill_group_if_owned(leader.pid, 12345, "run/task/2") is False
            assert alive(orphan)
            assert kill_group_if_owned(leader.pid, 12345, "run/task/1") is True
            wait_for(lambda: not alive(orphan), "the orphan to die", timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan, signal.SIGKILL)

    def test_claim_takes_a_run_only_from_a_dead_owner(self, store: Store) -> None:
        """The lease names pid and start time: a live owner refuses, a recycled pid does not."""
        me = os.getpid()
        my_start = process_start_time(me)
        assert my_start is not None
        for run_id, start in (("live", my_start), ("recycled", my_start + 1)):
            store.create_run(
                NewRun(
                    run_id=run_id,
                    workflow="w",
                    owner_pid=me,
                    owner_start=start,
                    task_ids=["t"],
                )
            )
        with pytest.raises(RunConflict, match=f"being run by process {me}"):
            store.claim_run("live", owner_pid=1, owner_start=0, owner_alive=process_alive)
        claimed = store.claim_run("recycled", owner_pid=1, owner_start=0, owner_alive=process_alive)
        assert (claimed.owner_pid, claimed.owner_start) == (1, 0)
