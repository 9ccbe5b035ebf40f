"""Real Dask clusters on the loopback address for the Dask executor's tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster


@contextmanager
def local_cluster(workers: int = 2, threads: int = 2) -> Iterator[str]:
    """A `LocalCluster` of worker processes, every port on 127.0.0.1; yields its address."""
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as cluster:
        yield str(cluster.scheduler_address)


def worker_pids(address: str) -> dict[str, int]:
    """Each worker's address and the pid of its process, as the workers say."""
    with Client(address, timeout=10) as client:
        return dict(client.run(os.getpid))
