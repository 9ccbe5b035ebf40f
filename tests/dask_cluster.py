"""
Real Dask clusters on the loopback address for the Dask executor's tests.

They run as ``dask scheduler`` and ``dask worker`` processes, not as a
`LocalCluster` inside pytest: a LocalCluster's worker processes would leave
multiprocessing's resource tracker as a child of the test process, and
later tests check that a run leaves no child behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
from distributed import Client

from .procs import wait_for

DASK = str(Path(sys.executable).with_name("dask"))
ROOT = Path(__file__).resolve().parent.parent
"""The repository: where the workers find the ``tests`` package."""
"""The ``dask`` command installed with distributed."""


@attrs.define
class ProcessCluster:
    """A ``dask scheduler`` process and ``dask worker`` processes, as users start them."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        """
        Stop the workers (and their own children), then the scheduler, and reap them.

        One after the other: a worker whose scheduler is closing waits out timeouts.
        """
        for process in (*self.workers, self.scheduler):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def process_cluster(
    directory: Path,
    workers: int = 1,
    threads: int = 2,
    groups: Sequence[Sequence[str]] = ((),),
) -> Iterator[ProcessCluster]:
    """
    Start ``dask scheduler`` and ``dask worker`` (with its nanny) on 127.0.0.1, dashboards too.

    One ``dask worker`` command per entry of `groups` (its extra arguments,
    such as ``--resources GPU=1``), each of `workers` workers of `threads`
    threads. Yields once the scheduler sees every worker.
    """
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    # The scheduler and the workers import the tests' callable tasks by name.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [
            *(DASK, "scheduler", "--host", "127.0.0.1", "--port", "0"),
            *("--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)),
        ],
        env=env,
        **quiet,
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(
            lambda: scheduler_file.exists() and "address" in scheduler_file.read_text(),
            "the scheduler file",
        )
        address = json.loads(scheduler_file.read_text())["address"]
        for extra in groups:
            command = [
                *(DASK, "worker", address, "--host", "127.0.0.1"),
                *("--dashboard-address", "127.0.0.1:0"),
                *("--nworkers", str(workers), "--nthreads", str(threads), *extra),
            ]
            started.append(subprocess.Popen(command, env=env, **quiet))
        with Client(address, timeout=20) as client:
            client.wait_for_workers(workers * len(groups), timeout=60)
        yield ProcessCluster(address, scheduler, started)
    finally:
        ProcessCluster("", scheduler, started).stop()


def worker_pids(address: str) -> dict[str, int]:
    """Each worker's address and the pid of its process, as the workers say."""
    with Client(address, timeout=10) as client:
        return dict(client.run(os.getpid))


def worker_resources(address: str) -> dict[str, dict[str, float]]:
    """Each worker's address and the resources it declares."""
    with Client(address, timeout=10) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    return {name: dict(info.get("resources", {})) for name, info in workers.items()}
