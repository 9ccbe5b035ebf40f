"""Looking at processes through /proc, for tests that check nothing is left running."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def stat_fields(pid: int | str) -> list[bytes] | None:
    """
    The fields of /proc/<pid>/stat after the command name (state first), or None.

    The command name may hold spaces and parentheses, so fields are counted
    from the last closing parenthesis: [0] state, [1] ppid, [2] pgrp.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper counts as gone)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll `condition` (real clock) until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
