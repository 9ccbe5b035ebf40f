"""
Reaching a Dask cluster for a run: its address, its size, and closing it.

`connect` takes ``tcp://HOST:PORT`` (a scheduler) or ``local``,
``local:N``, ``local:NxT`` (a `LocalCluster` started for the run, on
127.0.0.1) and returns the client; `reachable_host` is the address of this
machine that the cluster's workers can reach, for the attempt links
(`dask_link`); `total_threads` is how many attempts the cluster can run at
once. Blocking calls, run in threads by `dask.open_dask_runner`. Kept apart
from the runner, which only submits and follows attempts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

from ...errors import UetError

_LOCAL = re.compile(r"local(?::(\d+)(?:x(\d+))?)?\Z")


class ClusterLost(UetError):
    """The Dask scheduler cannot be reached (any more): the run cannot go on there."""

    exit_code = 5


def connect(address: str, timeout: float) -> tuple[Any, Any]:
    """(cluster or None, client) for `address` (blocking: run in a thread)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise ClusterLost(
            "--dask needs the distributed package: pip install 'uet-trio[dask]'"
        ) from error
    local = _LOCAL.match(address)
    if local is not None:
        workers = int(local.group(1) or os.cpu_count() or 1)
        threads = int(local.group(2) or 1)
        if workers < 1 or threads < 1:
            raise ClusterLost(f"--dask {address}: workers and threads must be positive")
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
        try:
            return cluster, Client(cluster)  # type: ignore[no-untyped-call]
        except BaseException:
            cluster.close()
            raise
    if not address.startswith(("tcp://", "tls://")):
        raise ClusterLost(
            f"--dask {address!r}: expected tcp://HOST:PORT, local, local:N or local:NxT"
        )
    try:
        return None, Client(address, timeout=timeout)  # type: ignore[no-untyped-call]
    except OSError as error:
        raise ClusterLost(f"cannot reach the Dask scheduler at {address}: {error}") from error


def total_threads(client: Any) -> int:
    """The cluster's total worker threads (at least 1)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def reachable_host(scheduler: str) -> str:
    """The address of ours the workers can reach: loopback for a loopback scheduler."""
    host = urlsplit(scheduler).hostname or "127.0.0.1"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return "127.0.0.1"
    from distributed.utils import get_ip

    return str(get_ip(host))  # type: ignore[no-untyped-call]


def close(cluster: Any, client: Any) -> None:
    """Close the client, then the cluster we started (blocking: run in a thread)."""
    with contextlib.suppress(Exception):
        client.close(timeout=5)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)
