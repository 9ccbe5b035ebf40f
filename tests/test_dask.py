"""
The Dask executor against real clusters: worker processes on 127.0.0.1.

Most tests share one cluster of ``dask scheduler`` and ``dask worker``
processes (two workers of two threads); the ones that kill workers or the
scheduler start their own; the CLI starts a `LocalCluster` for ``--dask
local:N``. Commands are real processes on
the workers; the store is a real SQLite file; the CLI is the real ``uet``.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from distributed import Client

from uet_trio import (
    AttemptStatus,
    ClusterLost,
    EventKind,
    RunStatus,
    Store,
    TaskSpec,
    TaskState,
    WorkflowError,
    WorkflowSpec,
    open_dask_runner,
    open_run,
    parse_workflow,
    read_output,
    run_workflow,
)

from .conftest import UET, run_uet
from .dask_cluster import ProcessCluster, process_cluster, worker_pids, worker_resources
from .procs import alive, wait_for
from .test_event_schema import mixed_spec, problems


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    """``dask scheduler`` and ``dask worker`` processes, shared by this module's tests."""
    # Two worker processes of two threads, one declaring a GPU (for TestResources).
    groups = (("--resources", "GPU=1"), ())
    with process_cluster(tmp_path_factory.mktemp("cluster"), 1, 2, groups) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster(processes: ProcessCluster) -> str:
    """The address of the cluster this module's tests share (2 workers x 2 threads)."""
    return processes.address


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip() != "", f"{path.name}")
    return int(path.read_text())


class TestRuns:
    async def test_a_mixed_run_on_dask_records_what_a_local_run_does(
        self, cluster: str, tmp_path: Path
    ) -> None:
        """Successes, retries, a timeout, a skip, a fallback, callables: as locally, same schema."""
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                assert (runner.threads, runner.workers) == (4, 16)
                result = await run_workflow(
                    mixed_spec(tmp_path), store=store, runner=runner, kill_grace=0.5
                )
            events = store.events(result.run_id)
            attempts = store.attempts(result.run_id)
        assert result.states == {
            "ok": TaskState.SUCCEEDED,
            "flaky": TaskState.FAILED,
            "after_flaky": TaskState.SKIPPED,
            "slow": TaskState.FAILED,
            "routed": TaskState.SUCCEEDED,
            "tolerated": TaskState.FAILED,
            "after_tolerated": TaskState.SUCCEEDED,
            "call": TaskState.SUCCEEDED,
            "raises": TaskState.FAILED,
        }
        assert problems(events) == []
        slow = [a for a in attempts if a.task_id == "slow"]
        assert [a.status for a in slow] == [AttemptStatus.TIMED_OUT]
        commands = [a for a in attempts if a.argv is not None]
        assert all(a.pid is not None and a.out_path is not None for a in commands)
        assert {e.kind for e in events} >= {EventKind.ATTEMPT_SPAWNED, EventKind.TASK_SKIPPED}

    async def test_commands_run_on_the_workers_with_the_attempt_environment(
        self, cluster: str, tmp_path: Path
    ) -> None:
        """The command's parent is a worker process; it sees UET_*, runs in the flow's directory."""
        (tmp_path / "here.txt").write_text("found\n")
        spec = WorkflowSpec(
            name="where",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(
                    id="where",
                    command=[
                        "sh",
                        "-c",
                        'echo "$PPID $UET_TASK_ID $UET_ATTEMPT $UET_IDEMPOTENCY_KEY"; cat here.txt',
                    ],
                )
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                result = await run_workflow(spec, store=store, runner=runner)
            (attempt,) = store.attempts(result.run_id)
            events = store.events(result.run_id)
        assert result.status is RunStatus.SUCCEEDED
        parent, task, number, key, found = read_output(attempt).decode().split()
        assert int(parent) in worker_pids(cluster).values()
        (spawned,) = [e for e in events if e.kind == EventKind.ATTEMPT_SPAWNED]
        assert worker_pids(cluster)[spawned.data["address"]] == int(parent)
        assert (task, number, key) == ("where", "1", f"{result.run_id}/where/1")
        assert found == "found"

    async def test_output_streams_while_the_attempt_runs(
        self, cluster: str, tmp_path: Path
    ) -> None:
        """The first line is in the local log file before the command has ended."""
        go = tmp_path / "go"
        spec = WorkflowSpec(
            name="stream",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(
                    id="talk",
                    command=[
                        "sh",
                        "-c",
                        "echo first; echo warn >&2; "
                        "while [ ! -e go ]; do sleep 0.02; done; echo second",
                    ],
                )
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with (
                open_dask_runner(cluster) as runner,
                open_run(spec, store=store, runner=runner) as run,
            ):
                # Both streams' first lines, while the command waits for `go`.
                while True:
                    attempts = store.attempts(run.run_id)
                    if (
                        attempts
                        and read_output(attempts[0]) == b"first\n"
                        and read_output(attempts[0], stderr=True) == b"warn\n"
                    ):
                        break
                    await trio.sleep(0.02)
                go.touch()
            (attempt,) = store.attempts(run.run_id)
        assert read_output(attempt) == b"first\nsecond\n"
        assert attempt.out_length == len(b"first\nsecond\n")

    async def test_large_output_arrives_whole(self, cluster: str, tmp_path: Path) -> None:
        """Megabytes on both streams, in order and complete, next to another attempt's output."""
        writer = (
            "import sys; sys.stdout.buffer.write(bytes(range(256)) * 12000); "
            "sys.stderr.buffer.write(b'e' * 3000000)"
        )
        spec = WorkflowSpec(
            name="big",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(id="big", command=["python3", "-c", writer]),
                TaskSpec(id="small", command=["echo", "after"], depends_on=["big"]),
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                result = await run_workflow(spec, store=store, runner=runner, max_workers=1)
            big, small = sorted(store.attempts(result.run_id), key=lambda a: a.task_id)
        assert result.status is RunStatus.SUCCEEDED
        assert read_output(big) == bytes(range(256)) * 12000
        assert read_output(big, stderr=True) == b"e" * 3000000
        assert read_output(small) == b"after\n"
        assert small.out_offset == big.out_length

    async def test_a_command_that_cannot_start_fails_like_locally(
        self, cluster: str, tmp_path: Path
    ) -> None:
        spec = WorkflowSpec(
            name="missing",
            base_dir=tmp_path,
            tasks=[TaskSpec(id="nope", command=["no-such-command-here"])],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                result = await run_workflow(spec, store=store, runner=runner)
            (attempt,) = store.attempts(result.run_id)
        assert attempt.exit_code == 127
        assert attempt.error == "command not found: no-such-command-here"


class TestStopping:
    async def test_a_timeout_stops_the_remote_group_grandchildren_included(
        self, cluster: str, tmp_path: Path
    ) -> None:
        """SIGTERM to the group at the deadline; a leader ignoring it: SIGKILL after the grace."""
        spec = WorkflowSpec(
            name="timeouts",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(
                    id="polite",
                    command=["sh", "-c", "sleep 300 & echo $! > polite.pid; wait"],
                    timeout=0.5,
                ),
                TaskSpec(
                    id="stubborn",
                    command=[
                        "sh",
                        "-c",
                        "trap '' TERM; sleep 300 & echo $! > stubborn.pid; "
                        "while :; do sleep 0.05; done",
                    ],
                    timeout=0.5,
                ),
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                result = await run_workflow(spec, store=store, runner=runner, kill_grace=0.3)
            attempts = {a.task_id: a for a in store.attempts(result.run_id)}
        assert attempts["polite"].status is AttemptStatus.TIMED_OUT
        assert attempts["polite"].signal == signal.SIGTERM
        assert attempts["stubborn"].status is AttemptStatus.TIMED_OUT
        assert attempts["stubborn"].signal == signal.SIGKILL
        for name in ("polite", "stubborn"):
            pid = read_pid(tmp_path / f"{name}.pid")
            wait_for(lambda pid=pid: not alive(pid), f"{name}'s background sleep gone", timeout=20)

    async def test_cancelling_the_run_stops_every_remote_attempt(
        self, cluster: str, tmp_path: Path
    ) -> None:
        """The embedding application's cancel: each remote group is gone before the run returns."""
        spec = WorkflowSpec(
            name="cancel",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(id=f"t{n}", command=["sh", "-c", f"sleep 60 & echo $! > t{n}.pid; wait"])
                for n in range(3)
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                with trio.CancelScope() as scope:
                    async with open_run(
                        spec, store=store, runner=runner, max_workers=3, kill_grace=0.3
                    ) as run:
                        for n in range(3):
                            await trio.to_thread.run_sync(read_pid, tmp_path / f"t{n}.pid")
                        await trio.sleep(0.1)
                        scope.cancel()
                pids = [read_pid(tmp_path / f"t{n}.pid") for n in range(3)]
                assert not any(alive(pid) for pid in pids)
            attempts = store.attempts(run.run_id)
        assert run.status is RunStatus.CANCELLED
        assert {a.status for a in attempts} == {AttemptStatus.CANCELLED}


def flow_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flow.toml"
    path.write_text(body)
    return path


class TestCommandLine:
    def test_uet_run_dask_and_uet_logs(self, cluster: str, tmp_path: Path) -> None:
        """The real uet on a cluster by address, then its output through uet logs."""
        flow_file(
            tmp_path,
            '[workflow]\nname = "cli"\n'
            '[[tasks]]\nid = "hello"\ncommand = ["sh", "-c", "echo hello from $UET_TASK_ID"]\n'
            '[[tasks]]\nid = "then"\ncommand = ["true"]\ndepends_on = ["hello"]\n',
        )
        ran = run_uet("run", "flow.toml", "--dask", cluster, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert "2 succeeded" in ran.stdout
        logs = run_uet("logs", "--last", "hello", cwd=tmp_path)
        assert logs.stdout == "hello from hello\n"
        with Store.open(tmp_path / ".uet" / "uet.db") as store:
            # Four attempts per thread of the cluster's 2 x 2.
            assert store.get_run(store.last_run()).max_workers == 16

    def test_the_workflow_and_the_environment_name_the_cluster(
        self, cluster: str, tmp_path: Path
    ) -> None:
        """[workflow] dask and UET_DASK say what --dask says; the option wins."""
        flow_file(
            tmp_path,
            f'[workflow]\nname = "keyed"\ndask = "{cluster}"\n'
            '[[tasks]]\nid = "parent"\ncommand = ["sh", "-c", "echo $PPID"]\n',
        )
        task = {"id": "x", "command": ["true"]}
        assert parse_workflow(
            {"workflow": {"name": "k", "dask": cluster}, "tasks": [task]}
        ).dask == (cluster)
        ran = run_uet("run", "flow.toml", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        logs = run_uet("logs", "--last", "parent", cwd=tmp_path)
        assert int(logs.stdout) in worker_pids(cluster).values()
        bad = run_uet("run", "flow.toml", cwd=tmp_path, env={**os.environ, "UET_DASK": "nope"})
        assert bad.returncode == 5
        assert "expected tcp://HOST:PORT, local, local:N or local:NxT" in bad.stderr

    def test_ctrl_c_leaves_no_remote_process(self, cluster: str, tmp_path: Path) -> None:
        """SIGINT to the real uet: exit 130 once every remote group is gone."""
        flow_file(
            tmp_path,
            '[workflow]\nname = "sigint"\nkill_grace = 0.5\n'
            + "".join(
                f'[[tasks]]\nid = "t{n}"\n'
                f'command = ["sh", "-c", "sleep 60 & echo $! > t{n}.pid; wait"]\n'
                for n in range(2)
            ),
        )
        uet = subprocess.Popen(
            [*UET, "run", "flow.toml", "--dask", cluster],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            pids = [read_pid(tmp_path / f"t{n}.pid") for n in range(2)]
            uet.send_signal(signal.SIGINT)
            _, err = uet.communicate(timeout=60)
        finally:
            if uet.poll() is None:
                uet.kill()
                uet.wait()
        assert uet.returncode == 130, err
        assert not any(alive(pid) for pid in pids)


class TestClusterErrors:
    async def test_an_unreachable_scheduler_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(ClusterLost, match="cannot reach the Dask scheduler"):
            async with open_dask_runner("tcp://127.0.0.1:9", connect_timeout=0.5):
                pass


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[str]:
    """A cluster of two single-threaded workers for one test, which may kill its workers."""
    with process_cluster(tmp_path / "cluster", workers=2, threads=1) as cluster:
        yield cluster.address


class TestWorkerLoss:
    async def test_a_killed_worker_gives_a_lost_attempt_and_a_retry_elsewhere(
        self, own_cluster: str, tmp_path: Path
    ) -> None:
        """kill -9 of the worker: attempt 1 lost (naming it), no silent re-run, attempt 2 runs."""
        script = (
            'echo "$UET_ATTEMPT" >> starts; '
            'if [ "$UET_ATTEMPT" = 1 ]; then '
            "sleep 300 & echo $! > bg.pid; echo $PPID > worker.pid; wait; fi; echo done"
        )
        spec = parse_workflow(
            {
                "workflow": {"name": "loss"},
                "tasks": [
                    {
                        "id": "victim",
                        "command": ["sh", "-c", script],
                        "retries": 1,
                        "backoff": {"initial": 0.5, "jitter": 0},
                    }
                ],
            },
            base_dir=tmp_path,
        )
        workers = {pid: address for address, pid in worker_pids(own_cluster).items()}
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(own_cluster) as runner:
                async with open_run(spec, store=store, runner=runner, max_workers=2) as run:
                    worker = await trio.to_thread.run_sync(read_pid, tmp_path / "worker.pid")
                    background = read_pid(tmp_path / "bg.pid")
                    os.kill(worker, signal.SIGKILL)
                # Long enough for Dask's own re-run of the killed task (about 0.5 s).
                await trio.sleep(1.5)
            first, second = store.attempts(run.run_id)
        assert run.status is RunStatus.SUCCEEDED
        assert first.status is AttemptStatus.LOST
        assert first.error == f"worker {workers[worker]} was lost mid-attempt"
        assert second.status is AttemptStatus.SUCCEEDED
        assert read_output(second) == b"done\n"
        assert (tmp_path / "starts").read_text() == "1\n2\n"
        wait_for(lambda: not alive(background), "the lost attempt's background gone", timeout=20)


LONG_FIRST_ATTEMPT = (
    'echo "$UET_ATTEMPT" >> starts; '
    'if [ "$UET_ATTEMPT" = 1 ]; then sleep 300 & echo $! > bg.pid; wait; fi; echo finished'
)
"""A task whose first attempt runs until stopped, leaving a background process to look for."""


def interrupted_flow(tmp_path: Path) -> None:
    """A flow of a quick task and one whose first attempt waits to be interrupted."""
    flow_file(
        tmp_path,
        '[workflow]\nname = "interrupted"\nkill_grace = 0.5\n'
        '[[tasks]]\nid = "quick"\ncommand = ["true"]\n'
        f"[[tasks]]\nid = \"long\"\ncommand = ['sh', '-c', '{LONG_FIRST_ATTEMPT}']\n",
    )


class TestSeparateProcesses:
    def test_a_flow_runs_on_a_scheduler_and_workers_started_by_hand(
        self, processes: ProcessCluster, tmp_path: Path
    ) -> None:
        flow_file(
            tmp_path,
            '[workflow]\nname = "by-hand"\n'
            + "".join(
                f'[[tasks]]\nid = "t{n}"\ncommand = ["sh", "-c", "echo $PPID"]\n' for n in range(4)
            ),
        )
        ran = run_uet("run", "flow.toml", "--dask", processes.address, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert "4 succeeded" in ran.stdout
        parents = {int(run_uet("logs", "--last", f"t{n}", cwd=tmp_path).stdout) for n in range(4)}
        assert parents <= set(worker_pids(processes.address).values())

    def test_uet_killed_then_resumed(self, processes: ProcessCluster, tmp_path: Path) -> None:
        """kill -9 of uet: its remote attempt stops with the link; resume: lost, then finished."""
        interrupted_flow(tmp_path)
        uet = subprocess.Popen(
            [*UET, "run", "flow.toml", "--dask", processes.address],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            background = read_pid(tmp_path / "bg.pid")
        finally:
            uet.kill()
            uet.wait()
        wait_for(lambda: not alive(background), "the remote attempt stopped", timeout=20)
        resumed = run_uet("resume", "--last", "--dask", processes.address, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        with Store.open(tmp_path / ".uet" / "uet.db") as store:
            long = store.attempts(store.last_run(), "long")
        assert [a.status for a in long] == [AttemptStatus.LOST, AttemptStatus.SUCCEEDED]
        assert read_output(long[1]) == b"finished\n"
        assert (tmp_path / "starts").read_text() == "1\n2\n"

    def test_the_scheduler_lost_mid_run_stops_it_and_resume_finishes_elsewhere(
        self, tmp_path: Path
    ) -> None:
        """kill -9 of the scheduler: uet stops its attempts, exits 5; resume on a new cluster."""
        interrupted_flow(tmp_path)
        with process_cluster(tmp_path / "cluster", workers=1, threads=2) as cluster:
            uet = subprocess.Popen(
                [*UET, "run", "flow.toml", "--dask", cluster.address],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                background = read_pid(tmp_path / "bg.pid")
                cluster.scheduler.kill()
                _, err = uet.communicate(timeout=60)
            finally:
                if uet.poll() is None:
                    uet.kill()
                    uet.wait()
            assert uet.returncode == 5, err
            assert "lost the Dask scheduler" in err
            wait_for(lambda: not alive(background), "the remote attempt stopped", timeout=20)
        resumed = run_uet("resume", "--last", "--dask", "local:1", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert (tmp_path / "starts").read_text() == "1\n2\n"
        with Store.open(tmp_path / ".uet" / "uet.db") as store:
            run = store.get_run(store.last_run())
            long = store.attempts(run.run_id, "long")
        assert run.status is RunStatus.SUCCEEDED
        assert long[-1].status is AttemptStatus.SUCCEEDED


class TestSlurmExample:
    def test_the_slurm_example_generates_its_job_script(self) -> None:
        """examples/dask_slurm.py (docs/scale-out.md) builds a SLURMCluster; no Slurm needed."""
        path = Path(__file__).resolve().parent.parent / "examples" / "dask_slurm.py"
        loaded = importlib.util.spec_from_file_location("dask_slurm", path)
        assert loaded is not None and loaded.loader is not None
        example = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(example)
        with example.make_cluster(
            scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
        ) as cluster:
            script = cluster.job_script()
            address = cluster.scheduler_address
        assert script.startswith("#!/usr/bin/env bash")
        for line in ("#SBATCH -p normal", "#SBATCH -A my-project", "#SBATCH --cpus-per-task=8"):
            assert line in script.splitlines()
        assert "#SBATCH -t 02:00:00" in script
        assert f"source {sys.prefix}/bin/activate" in script
        worker = script.splitlines()[-1]
        assert "distributed.cli.dask_worker" in worker
        assert f"{address} " in worker and "--nthreads 8" in worker


@pytest.mark.stress
def test_the_dask_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """perf/bench_dask.py on tiny numbers: both clusters, every variant, the summary lines."""
    script = Path(__file__).resolve().parent.parent / "perf" / "bench_dask.py"
    done = subprocess.run(
        [sys.executable, str(script), "--tasks", "20", "--rounds", "1", "--seconds", "0.2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "uet-dask / plain-dask tasks/s:" in done.stdout
    assert "parallelism median" in done.stdout


async def worker_pid() -> int:
    """A callable task: the pid of the process that awaits it."""
    await trio.lowlevel.checkpoint()
    return os.getpid()


async def slow_callable() -> None:
    """A callable task that outlasts its timeout."""
    await trio.sleep(30)


class TestCallables:
    async def test_callables_run_on_the_workers(self, cluster: str, tmp_path: Path) -> None:
        """An embedded run's callable is shipped to a worker; its value, error, timeout recorded."""
        spec = WorkflowSpec(
            name="calls",
            base_dir=tmp_path,
            tasks=[
                TaskSpec(id="where", call=worker_pid),
                TaskSpec(id="slow", call=slow_callable, timeout=0.3),
            ],
        )
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                result = await run_workflow(spec, store=store, runner=runner)
            attempts = {a.task_id: a for a in store.attempts(result.run_id)}
        assert attempts["where"].status is AttemptStatus.SUCCEEDED
        assert attempts["where"].result in worker_pids(cluster).values()
        assert attempts["slow"].status is AttemptStatus.TIMED_OUT


class TestResources:
    async def test_a_tools_resources_place_its_attempts(self, cluster: str, tmp_path: Path) -> None:
        """resources = { GPU = 1 }: the tool's attempts run only on the worker that declares it."""
        spec = parse_workflow(
            {
                "workflow": {"name": "gpus"},
                "tools": {
                    "gpu": {
                        "command": ["sh", "-c", "echo $PPID"],
                        "kinds": ["train"],
                        "resources": {"GPU": 1},
                    }
                },
                "tasks": [{"id": f"g{n}", "kind": "train"} for n in range(4)]
                + [{"id": f"c{n}", "command": ["sh", "-c", "echo $PPID"]} for n in range(4)],
            },
            base_dir=tmp_path,
        )
        pids = worker_pids(cluster)
        (gpu,) = [pids[name] for name, held in worker_resources(cluster).items() if held.get("GPU")]
        with Store.open(tmp_path / "u.db") as store:
            async with open_dask_runner(cluster) as runner:
                result = await run_workflow(spec, store=store, runner=runner)
            attempts = store.attempts(result.run_id)
        assert result.status is RunStatus.SUCCEEDED
        parents = {a.task_id: int(read_output(a)) for a in attempts}
        assert {parents[f"g{n}"] for n in range(4)} == {gpu}
        assert set(parents.values()) <= set(pids.values())

    def test_resources_must_be_numbers(self) -> None:
        document = {
            "workflow": {"name": "bad"},
            "tools": {"gpu": {"command": ["true"], "kinds": ["k"], "resources": {"GPU": "one"}}},
            "tasks": [{"id": "t", "kind": "k"}],
        }
        with pytest.raises(WorkflowError, match="expected a number") as raised:
            parse_workflow(document)
        assert raised.value.field == "tools.gpu.resources.GPU"


def peak_rss_of_workers(address: str) -> dict[str, int]:
    """Each worker process's peak resident size so far, in KiB."""
    with Client(address, timeout=10) as client:
        return dict(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def test_a_hundred_megabytes_of_output_fill_no_memory(
    processes: ProcessCluster, tmp_path: Path
) -> None:
    """100 MB printed remotely: whole in the log file, no process's peak memory grows by it."""
    size = 100 * 1024 * 1024
    writer = (
        "import sys\nchunk = bytes(range(256)) * 4096\n"
        f"for _ in range({size} // len(chunk)):\n    sys.stdout.buffer.write(chunk)\n"
    )
    (tmp_path / "writer.py").write_text(writer)
    flow_file(
        tmp_path,
        '[workflow]\nname = "big"\n[[tasks]]\nid = "big"\ncommand = ["python3", "writer.py"]\n',
    )
    # A parent of its own, whose only child is uet, reports uet's peak.
    measure = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    workers_before = peak_rss_of_workers(processes.address)
    uet = subprocess.run(
        [sys.executable, "-c", measure, *UET, "run", "flow.toml", "--dask", processes.address],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert uet.returncode == 0, uet.stderr
    uet_peak = int(uet.stdout)
    workers_after = peak_rss_of_workers(processes.address)
    with Store.open(tmp_path / ".uet" / "uet.db") as store:
        (attempt,) = store.attempts(store.last_run())
    assert attempt.out_length == size
    assert read_output(attempt, skip=size - 256) == bytes(range(256))
    # A copy of the output would add 100 MiB (102,400 KiB) to a peak.
    assert uet_peak < 100 * 1024
    for address, before in workers_before.items():
        assert workers_after[address] - before < 50 * 1024
