"""
A huge command: the kernel refuses it, and the store keeps only a bounded prefix of it.

A task with a 3 MB argument fails with 126 (``E2BIG``); its argv is recorded
cut to `SHOWN_ARG_BYTES` per argument with its full size (``argv_bytes``),
so the database stays small, while the command executed is never cut.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from uet_trio import Store
from uet_trio.deciding.settings import SHOWN_ARG_BYTES, SHOWN_ARGV_BYTES, bounded_argv

from .conftest import run_uet

HUGE = 3 * 1024 * 1024


def test_small_commands_are_kept_whole() -> None:
    """The common case: the same tuple back, no size."""
    argv = ("sh", "-c", "echo " + "é" * 1000)
    assert bounded_argv(argv) == (argv, None)
    many = tuple(["x" * 100] * 600)  # 60,000 bytes: under both bounds
    assert bounded_argv(many) == (many, None)


def test_a_long_argument_is_cut_to_a_prefix_that_says_its_size() -> None:
    """Each argument at most SHOWN_ARG_BYTES, marked with its full size; others untouched."""
    big = "a" + "é" * 5000  # 10,001 bytes; the cut falls inside a two-byte character
    shown, size = bounded_argv(("echo", big, "end"))
    assert size == 4 + 10_001 + 3
    assert shown[0] == "echo" and shown[2] == "end"
    assert shown[1].endswith("...[10001 bytes]")
    prefix = shown[1].removesuffix("...[10001 bytes]")
    assert prefix.encode("utf-8", "surrogateescape") == big.encode()[:SHOWN_ARG_BYTES]


def test_too_many_arguments_end_in_a_count() -> None:
    """Past SHOWN_ARGV_BYTES in all, the rest become one marker saying how many."""
    argv = tuple(f"{i:04d}" + "x" * 996 for i in range(200))  # 200,000 bytes
    shown, size = bounded_argv(argv)
    assert size == 200_000
    whole = len(shown) - 2  # the arguments kept whole; then a cut one, then the count
    assert shown[-1] == f"...[{200 - whole - 1} more arguments]"
    assert shown[:whole] == argv[:whole]
    cut = shown[-2].removesuffix("...[1000 bytes]")
    assert argv[whole].startswith(cut)
    assert sum(len(arg.encode()) for arg in (*shown[:whole], cut)) == SHOWN_ARGV_BYTES


def test_a_3mb_argument_fails_with_126_and_the_store_stays_small(tmp_path: Path) -> None:
    """Real `uet run`: exit 1 (attempt 126), database under 1 MB, `uet events` shows the prefix."""
    argument = "a" * HUGE
    flow = tmp_path / "flow.toml"
    flow.write_text(
        f'[workflow]\nname = "huge"\n[[tasks]]\nid = "big"\ncommand = ["echo", "{argument}"]\n'
    )
    db = tmp_path / ".uet" / "uet.db"
    done = run_uet("run", flow, "--db", db, "-q", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    stored = sum(path.stat().st_size for path in db.parent.glob("uet.db*"))
    assert stored < 1024 * 1024, stored
    with Store.open(db) as store:
        run_id = store.last_run()
        (attempt,) = store.attempts(run_id)
        assert attempt.exit_code == 126
        assert attempt.argv is not None
        assert attempt.argv[0] == "echo"
        assert attempt.argv[1] == "a" * SHOWN_ARG_BYTES + f"...[{HUGE} bytes]"
        assert store.integrity_check() == "ok"
    conn = sqlite3.connect(db)
    try:
        (data,) = conn.execute("SELECT data FROM events WHERE kind = 'attempt_started'").fetchone()
    finally:
        conn.close()
    assert json.loads(data)["argv_bytes"] == 4 + HUGE
    shown = run_uet("events", "--last", "--db", db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"argv_bytes={4 + HUGE}" in shown.stdout
    assert f"...[{HUGE} bytes]" in shown.stdout
    assert len(shown.stdout) < 64 * 1024
