"""Looking at processes through /proc, for tests that check nothing is left running."""

from __future__ import annotations


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
