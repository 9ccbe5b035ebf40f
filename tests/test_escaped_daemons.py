"""
Daemons that leave their attempt's process group (``setsid``), against a real ``uet run``.

The ``uet`` command makes itself a child subreaper, so a task's descendant
that calls ``setsid`` and is orphaned comes back to it, and is SIGKILLed and
reaped when its attempt ends: succeeded, timed out or cancelled by Ctrl-C.
Each task here carries ``ESCAPE_TEST=<tmp_path>`` in its environment, which
every descendant inherits: the test checks that no such process survives
(and kills any that does, whatever the outcome). Processes that are not the
attempt's (another attempt's, one without the key) are never killed; and the
library alone, embedded without the opt-in, leaves the process a plain one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from uet_trio import Store, TaskSpec, WorkflowSpec, run_workflow

from .conftest import UET, literal, run_uet
from .procs import alive, stat_fields, wait_for

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="child subreapers are Linux's"
)

# Lists the children of uet (this script's parent) other than itself that are
# zombies or carry ESCAPE_TEST: what an earlier attempt would have left.
CHECK_CHILDREN = """
import glob, os, sys
parent = os.getppid()
left = []
for path in glob.glob(f"/proc/{parent}/task/*/children"):
    for pid in open(path).read().split():
        if int(pid) == os.getpid():
            continue
        try:
            state = open(f"/proc/{pid}/stat", "rb").read().rsplit(b")", 1)[1].split()[0]
            environ = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if state == b"Z" or b"ESCAPE_TEST=" in environ:
            left.append((pid, state))
print(left)
sys.exit(1 if left else 0)
"""


def marked(tmp_path: Path) -> list[int]:
    """Live processes whose environment holds this test's ``ESCAPE_TEST`` marker."""
    marker = f"ESCAPE_TEST={tmp_path}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0") and alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Callable[[], list[int]]]:
    """What survives of the test's processes; whatever does is killed at the end."""
    yield lambda: marked(tmp_path)
    for pid in marked(tmp_path):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def flow(tmp_path: Path, tasks: str, workers: int = 1) -> Path:
    """A workflow file whose tasks (TOML `tasks`, with ``{env}``) carry the test's marker."""
    path = tmp_path / "flow.toml"
    env = f'env = {{ ESCAPE_TEST = "{tmp_path}" }}'
    header = f'[workflow]\nname = "escape"\nmax_workers = {workers}\nkill_grace = 0.2\n'
    path.write_text(header + tasks.replace("{env}", env))
    return path


def store_checks(db: Path) -> tuple[str, dict[str, str]]:
    """The run's status and its tasks' states, once the database is checked whole."""
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Store.open(db, readonly=True) as store:
        (run,) = store.list_runs()
        return run.status, {t.task_id: t.state for t in store.tasks(run.run_id)}


def daemon_pids(tmp_path: Path) -> list[int]:
    """The daemons the tasks noted (``*.pid`` files)."""
    return [int(p.read_text()) for p in sorted(tmp_path.glob("*.pid"))]


def gone(pid: int) -> bool:
    """Whether `pid` neither runs nor waits as a zombie."""
    return stat_fields(pid) is None or not alive(pid)


def daemon(name: str, prefix: str = "") -> str:
    """
    Shell words that start ``sleep 300`` in a session of its own, noting its
    pid in ``<name>.pid`` once it has left the group (`prefix` runs before it).
    """
    note = f"echo $$ > {name}.tmp; mv {name}.tmp {name}.pid; exec sleep 300"
    return f"setsid {prefix}sh -c '{note}'"


def until(name: str) -> str:
    """Shell words that wait for ``<name>.pid``."""
    return f"while [ ! -e {name}.pid ]; do sleep 0.01; done"


def command(script: str) -> str:
    """A TOML ``command`` running `script` with sh."""
    return f"command = {json.dumps(['sh', '-c', script])}"


# The daemon started in the background, and by a subshell that exits at once.
FORMS = {
    "setsid": f"{daemon('daemon')} & {until('daemon')}",
    "double-fork": f"({daemon('daemon')} &) ; {until('daemon')}",
}
BOTH = f"{daemon('daemon')} & ({daemon('double')} &) ; {until('daemon')}; {until('double')}"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_daemon_of_a_successful_task_is_stopped_and_reaped(
    tmp_path: Path, leftovers: Callable[[], list[int]], form: str
) -> None:
    tasks = f"""
[[tasks]]
id = "a"
{command(FORMS[form])}
{{env}}

[[tasks]]
id = "check"
depends_on = ["a"]
command = {json.dumps([sys.executable, "-c", literal(CHECK_CHILDREN)])}
"""
    path = flow(tmp_path, tasks)
    done = run_uet("run", path, "--db", tmp_path / "uet.db", cwd=tmp_path)
    # `check` ran while uet still ran: none of a's processes was its child, not even a zombie.
    assert done.returncode == 0, done.stdout + done.stderr
    (pid,) = daemon_pids(tmp_path)
    assert gone(pid)
    assert leftovers() == []
    states = {"a": "succeeded", "check": "succeeded"}
    assert store_checks(tmp_path / "uet.db") == ("succeeded", states)


def test_daemon_of_a_timed_out_task_is_stopped(
    tmp_path: Path, leftovers: Callable[[], list[int]]
) -> None:
    tasks = f"""
[[tasks]]
id = "a"
timeout = 1
{command(BOTH + "; exec sleep 300")}
{{env}}
"""
    path = flow(tmp_path, tasks)
    done = run_uet("run", path, "--db", tmp_path / "uet.db", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "timed out" in done.stdout
    assert len(daemon_pids(tmp_path)) == 2
    assert all(gone(pid) for pid in daemon_pids(tmp_path))
    assert leftovers() == []
    assert store_checks(tmp_path / "uet.db") == ("failed", {"a": "failed"})


def test_daemon_is_stopped_on_ctrl_c(tmp_path: Path, leftovers: Callable[[], list[int]]) -> None:
    tasks = f"""
[[tasks]]
id = "a"
{command(BOTH + "; touch started; exec sleep 300")}
{{env}}
"""
    path = flow(tmp_path, tasks)
    process = subprocess.Popen(
        [*UET, "run", str(path), "--db", str(tmp_path / "uet.db")],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for((tmp_path / "started").exists, "the daemons to start", timeout=30)
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert len(daemon_pids(tmp_path)) == 2
    assert all(gone(pid) for pid in daemon_pids(tmp_path))
    assert leftovers() == []
    assert store_checks(tmp_path / "uet.db") == ("cancelled", {"a": "cancelled"})


# Both orphans still run (not even zombies); then `keeper` may end.
CHECK_ALIVE = """
import sys
pids = [int(open(n).read()) for n in ("kept.pid", "keyless.pid")]
states = [open(f"/proc/{p}/stat", "rb").read().rsplit(b")", 1)[1].split()[0] for p in pids]
open("release", "w").close()
sys.exit(0 if b"Z" not in states else 1)
"""


def test_processes_not_of_the_ending_attempt_are_never_killed(
    tmp_path: Path, leftovers: Callable[[], list[int]]
) -> None:
    """
    `keeper` leaves two orphans to uet while it runs: one with its key, one
    that dropped it. `other` ends meanwhile (its sweep sees both as uet's
    children and must leave them); `check` confirms both still run, then
    releases `keeper`, whose own end stops the keyed orphan. The keyless one,
    in a session of its own, is out of reach and outlives the run (the test
    kills it); so does a process outside uet that carries a look-alike key.
    """
    outsider = subprocess.Popen(
        ["sleep", "300"],
        env={**os.environ, "ESCAPE_TEST": str(tmp_path), "UET_IDEMPOTENCY_KEY": "x/keeper/1"},
    )
    keyless = daemon("keyless", prefix="env -u UET_IDEMPOTENCY_KEY ")
    keeper = (
        f"({daemon('kept')} &) ; ({keyless} &) ; {until('kept')}; {until('keyless')}; "
        "while [ ! -e release ]; do sleep 0.02; done"
    )
    tasks = f"""
[[tasks]]
id = "keeper"
timeout = 30
{command(keeper)}
{{env}}

[[tasks]]
id = "other"
{command(until("kept") + "; " + until("keyless"))}
{{env}}

[[tasks]]
id = "check"
depends_on = ["other"]
command = {json.dumps([sys.executable, "-c", literal(CHECK_ALIVE)])}
"""
    try:
        path = flow(tmp_path, tasks, workers=3)
        done = run_uet("run", path, "--db", tmp_path / "uet.db", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        kept = int((tmp_path / "kept.pid").read_text())
        left = int((tmp_path / "keyless.pid").read_text())
        assert gone(kept)
        assert sorted(leftovers()) == sorted([left, outsider.pid])
        states = {"keeper": "succeeded", "other": "succeeded", "check": "succeeded"}
        assert store_checks(tmp_path / "uet.db") == ("succeeded", states)
    finally:
        outsider.kill()
        outsider.wait()


def _is_subreaper() -> int:
    """This process's PR_GET_CHILD_SUBREAPER, asked of libc directly."""
    value = ctypes.c_int(-1)
    assert ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


async def test_embedded_library_leaves_the_process_no_subreaper(tmp_path: Path) -> None:
    assert _is_subreaper() == 0
    spec = WorkflowSpec(name="plain", tasks=(TaskSpec(id="t", command=("true",)),))
    with Store.open(tmp_path / "uet.db") as store:
        result = await run_workflow(spec, store=store)
    assert result.status == "succeeded"
    assert _is_subreaper() == 0
