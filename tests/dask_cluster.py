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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
from distributed import Client

from .procs import wait_for


def worker_pids(address: str) -> dict[str, int]:
    """Each worker's address and the pid of its process, as the workers say."""
    with Client(address, timeout=10) as client:
        return dict(client.run(os.getpid))


DASK = str(Path(sys.executable).with_name("dask"))
ROOT = Path(__file__).resolve().parent.parent
"""The repository: where the workers find the ``tests`` package."""
"""The ``dask`` command installed with distributed."""


@attrs.define
class ProcessCluster:
    """A ``dask scheduler`` process and a ``dask worker`` process, as users start them."""

    address: str
    scheduler: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    def stop(self) -> None:
        """
        Stop the worker (and its own children), then the scheduler, and reap them.

        One after the other: a worker whose scheduler is closing waits out timeouts.
        """
        for process in (self.worker, self.scheduler):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def process_cluster(
    directory: Path, workers: int = 1, threads: int = 2
) -> Iterator[ProcessCluster]:
    """
    Start ``dask scheduler`` and ``dask worker`` (with its nanny) on 127.0.0.1, dashboards too.

    Yields once the scheduler sees every worker.
    """
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    # The scheduler and the workers import the tests' callable tasks by name.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [
            DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(scheduler_file),
        ],
        env=env,
        **quiet,
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_for(
            lambda: scheduler_file.exists() and "address" in scheduler_file.read_text(),
            "the scheduler file",
        )
        address = json.loads(scheduler_file.read_text())["address"]
        worker = subprocess.Popen(
            [
                DASK,
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--dashboard-address",
                "127.0.0.1:0",
                "--nworkers",
                str(workers),
                "--nthreads",
                str(threads),
            ],
            env=env,
            **quiet,
        )
        with Client(address, timeout=20) as client:
            client.wait_for_workers(workers, timeout=60)
        cluster = ProcessCluster(address, scheduler, worker)
        yield cluster
    finally:
        ProcessCluster("", scheduler, worker or scheduler).stop()
