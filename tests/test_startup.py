"""
Start-up of the `uet` program: a command's module is imported only when it runs.

`uet run` of a one-task file must not pay for the views' modules, the plan's
record classes or `statistics`; `uet --help` still lists every command.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from uet_trio_cli import COMMAND_MODULES, main

from .conftest import run_uet


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    """Each module's commands are exactly the table's entries for it, by name."""
    for module in set(COMMAND_MODULES.values()):
        defined = importlib.import_module(f"uet_trio_cli.{module}").COMMANDS
        named = {name for name, where in COMMAND_MODULES.items() if where == module}
        assert {command.name for command in defined} == named, module


def test_help_lists_every_command() -> None:
    """`uet --help` shows every command with its summary, as if all were registered."""
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1].split()
    for name in COMMAND_MODULES:
        assert name in listed, name
    assert "Run the workflow in FLOW" in result.output


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    """A mistyped command exits 2 naming it, as before commands were loaded lazily."""
    done = run_uet("rnu", "flow.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "No such command 'rnu'" in done.stderr


def _python(code: str, flow: Path) -> None:
    """Run `code` in a fresh interpreter, `flow` its argument and directory; it must pass."""
    done = subprocess.run(
        [sys.executable, "-c", code, str(flow)],
        capture_output=True,
        text=True,
        check=False,
        cwd=flow.parent,
    )
    assert done.returncode == 0, done.stderr


def test_run_imports_only_what_running_needs(tmp_path: Path) -> None:
    """A one-task `uet run` imports neither the views' modules, nor the plan, nor statistics."""
    flow = tmp_path / "flow.toml"
    flow.write_text('[[tasks]]\nid = "a"\ncommand = ["true"]\n')
    code = (
        "import sys\n"
        "from uet_trio_cli import main\n"
        "try:\n"
        "    main(['run', '-q', sys.argv[1]])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "views = [m for m in sys.modules if m.startswith('uet_trio_cli._')\n"
        "         and m not in ('uet_trio_cli._common', 'uet_trio_cli._run',\n"
        "                       'uet_trio_cli._failures', 'uet_trio_cli._progress')]\n"
        "assert not views, views\n"
        "assert 'uet_trio.deciding.plan' not in sys.modules\n"
        "assert 'statistics' not in sys.modules\n"
        "assert 'uet_trio.running.engine' in sys.modules\n"
    )
    _python(code, flow)
    assert (tmp_path / ".uet" / "uet.db").exists()


def test_a_new_store_writes_at_the_synchronous_level_asked_for(tmp_path: Path) -> None:
    """The unsynced set-up of a new file ends before anything is recorded: NORMAL, or as asked."""
    from uet_trio import Store

    for level, number in (("NORMAL", 1), ("FULL", 2)):
        with Store.open(tmp_path / f"{level}.db", synchronous=level) as store:
            conn = store._conn
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == number
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with Store.open(tmp_path / f"{level}.db", synchronous=level) as again:
            assert again._conn.execute("PRAGMA synchronous").fetchone()[0] == number


def test_start_up_of_a_run_collects_garbage_rarely(tmp_path: Path) -> None:
    """The `uet` program raises the young generation's threshold: imports cost few collections."""
    flow = tmp_path / "flow.toml"
    flow.write_text('[[tasks]]\nid = "a"\ncommand = ["true"]\n')
    code = (
        "import gc, sys\n"
        "from uet_trio_cli import entry\n"
        "collections = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'stop' and collections.append(1))\n"
        "sys.argv = ['uet', 'run', '-q', sys.argv[1]]\n"
        "try:\n"
        "    entry()\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "assert len(collections) < 10, len(collections)\n"
    )
    _python(code, flow)
