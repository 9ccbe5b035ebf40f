"""
A state directory other users can write to: the writing commands warn, and still work.

Real directories with real modes (root still sees the mode bits, even though
it bypasses them), and the real `uet` program.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from uet_trio import Store, writable_by_others

from .conftest import run_uet

FLOW = '[workflow]\nname = "ww"\n[[tasks]]\nid = "t"\ncommand = ["true"]\n'


def shared(path: Path, mode: int = 0o777) -> Path:
    """Create `path` (and parents) with exactly `mode` (umask aside)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path


def private_tree(tmp_path: Path) -> Path:
    """tmp_path made private, so only what a test opens up is flagged."""
    os.chmod(tmp_path, 0o700)
    return tmp_path


def test_a_private_tree_is_not_flagged(tmp_path: Path) -> None:
    """0700 directories under a private tree: nothing to say (even under /tmp, mode 1777)."""
    base = private_tree(tmp_path)
    assert writable_by_others(base / ".uet" / "uet.db") == []
    shared(base / ".uet", 0o700)
    assert writable_by_others(base / ".uet" / "uet.db") == []


def test_the_store_directory_and_log_root_are_flagged_even_when_sticky(tmp_path: Path) -> None:
    """Anyone may create entries in a sticky directory too: the store's own ones are flagged."""
    base = private_tree(tmp_path)
    store_dir = shared(base / "ww", 0o1777)
    logs = shared(store_dir / "logs")
    assert writable_by_others(store_dir / "uet.db") == [store_dir, logs]
    os.chmod(store_dir, 0o700)
    assert writable_by_others(store_dir / "uet.db") == [logs]
    other_logs = shared(base / "elsewhere" / "logs", 0o707)
    assert writable_by_others(store_dir / "uet.db", log_root=other_logs) == [other_logs]


def test_a_directory_above_is_flagged_only_without_the_sticky_bit(tmp_path: Path) -> None:
    """An open parent lets anyone swap the store's directory; a sticky one (like /tmp) does not."""
    base = private_tree(tmp_path)
    parent = shared(base / "parent", 0o1777)
    store_dir = shared(parent / ".uet", 0o700)
    assert writable_by_others(store_dir / "uet.db") == []
    os.chmod(parent, 0o777)
    assert writable_by_others(store_dir / "uet.db") == [parent]
    # A store directory not created yet: its parent is what matters.
    assert writable_by_others(parent / "new" / "uet.db") == [parent]


@pytest.mark.parametrize("command", ["run", "gc"])
def test_uet_warns_about_a_world_writable_store_directory(tmp_path: Path, command: str) -> None:
    """Real `uet run --db ww/uet.db` (and `uet gc`) with ww 0777: a warning, and the work done."""
    base = private_tree(tmp_path)
    ww = shared(base / "ww")
    flow = base / "flow.toml"
    flow.write_text(FLOW)
    db = ww / "uet.db"
    args = ["run", flow] if command == "run" else ["gc", "--keep", "0"]
    if command == "gc":
        Store.open(db).close()  # gc collects an existing store; it never creates one
    done = run_uet(*args, "--db", db, cwd=base)
    assert done.returncode == 0, done.stderr
    warning = (
        f"uet: warning: {ww} is writable by other users; anyone there could replace the "
        f"database or plant a symlink; chmod o-w {ww}"
    )
    assert warning in done.stderr
    assert warning not in done.stdout
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if command == "run":
            assert conn.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
    finally:
        conn.close()
    # Fixed as the warning says: no warning; a read command never warns.
    os.chmod(ww, 0o755)
    again = run_uet(*args, "--db", db, cwd=base)
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr
    os.chmod(ww, 0o777)
    viewed = run_uet("runs", "--db", db, cwd=base)
    assert viewed.returncode == 0, viewed.stderr
    assert "warning" not in viewed.stderr
