"""
Whether a run that the store shows unfinished still has a live runner.

A run's row names its owner, the process running it (`RunRecord.owner_pid`
and `owner_start`, its start time); the row is cleared of them when the run
ends. A run that is recorded as not finished while that very process is gone
was left behind by a runner that died without ending it (kill -9, a power
cut): it is *crashed*, and waits for ``uet resume``. The store cannot tell
this by itself, since it records only what the runner wrote, so the check
lives here, beside /proc, and views (``uet runs``, ``uet show``, followers)
ask it rather than repeat it.
"""

from __future__ import annotations

from ..recording.records import RunRecord
from .executors.procfs import process_alive


def run_crashed(record: RunRecord) -> bool:
    """
    Whether `record` is an unfinished run whose owning process is gone.

    A finished run is never crashed, nor is one that names no owner (pid
    0 or none, as runs created directly through the store do). The owner is
    identified by pid and start time, so a recycled pid does not keep a
    dead run looking alive (where /proc is missing, any process holding the
    pid does: see `process_alive`).

    A caller that read `record` some time ago should read it again when this
    says True: a runner that ended normally since then has recorded the run
    as finished before exiting.
    """
    if record.status.finished or not record.owner_pid:
        return False
    return not process_alive(record.owner_pid, record.owner_start)
