"""
Run a workflow's attempts on Slurm compute nodes, through dask-jobqueue.

    python examples/dask_slurm.py FLOW [--jobs N]      # submit N worker jobs, run FLOW on them
    python examples/dask_slurm.py --print-job-script   # show the sbatch script, submit nothing

Run it on a login node, in the virtual environment that has uet-trio and
dask-jobqueue installed, on the file system the compute nodes share: each
Slurm job starts one Dask worker (8 threads: 8 attempts at once) that runs
commands in the same directories as here, and `uet` (started from here)
records the run in ``.uet/`` beside FLOW. See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from typing import Any

from dask_jobqueue import SLURMCluster

CORES = 8
"""Cores per Slurm job: its one worker's threads, so the attempts it runs at once."""


def make_cluster(**overrides: Any) -> SLURMCluster:
    """The Slurm cluster: edit queue, account, size and walltime for your site."""
    options: dict[str, Any] = {
        "queue": "normal",
        "account": "my-project",
        "cores": CORES,
        "processes": 1,
        "memory": "16GB",
        "walltime": "02:00:00",
        # Each job starts the worker with this environment's Python.
        "job_script_prologue": [f"source {sys.prefix}/bin/activate"],
    }
    options.update(overrides)
    return SLURMCluster(**options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flow", nargs="?", help="the workflow file")
    parser.add_argument("--jobs", type=int, default=4, help="Slurm jobs (workers) to start")
    parser.add_argument("--print-job-script", action="store_true")
    args = parser.parse_args(argv)
    with make_cluster() as cluster:
        if args.print_job_script:
            print(cluster.job_script())
            return 0
        if args.flow is None:
            parser.error("FLOW is required")
        cluster.scale(jobs=args.jobs)
        # The workers join as Slurm starts the jobs: give uet their threads up front.
        workers = str(args.jobs * CORES)
        uet = shutil.which("uet") or "uet"
        return subprocess.call(
            [uet, "run", args.flow, "--dask", cluster.scheduler_address, "-j", workers]
        )


if __name__ == "__main__":
    sys.exit(main())
