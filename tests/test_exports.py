"""
The public face of uet_trio: the lazy export table and the typed re-exports agree.

`uet_trio/__init__.py` names every public name twice: in `_EXPORTS`, which
loads it on first use, and in the ``TYPE_CHECKING`` block, which is what type
checkers and editors see. The two are read from the source and compared, so
a name added to one and not the other, or taken from different modules, fails
here; then every name must load and be the very object its module defines.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import uet_trio


def typed_reexports() -> dict[str, str]:
    """Name -> module (relative to uet_trio) of each import under ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(uet_trio.__file__).read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "expected one `if TYPE_CHECKING:` block"
    names: dict[str, str] = {}
    for statement in blocks[0].body:
        assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
        assert statement.level == 1 and statement.module is not None, ast.dump(statement)
        for alias in statement.names:
            # `import X as X` is the explicit re-export form type checkers honour.
            assert alias.asname == alias.name, f"{alias.name} is not re-exported as itself"
            assert alias.name not in names, f"{alias.name} is imported twice"
            names[alias.name] = statement.module
    return names


def test_lazy_table_and_typed_reexports_name_the_same_names_from_the_same_modules() -> None:
    assert typed_reexports() == uet_trio._EXPORTS
    assert sorted(uet_trio._EXPORTS) == uet_trio.__all__


def test_every_exported_name_resolves_to_its_modules_object() -> None:
    for name, module in uet_trio._EXPORTS.items():
        defined = getattr(importlib.import_module(f"uet_trio.{module}"), name)
        assert getattr(uet_trio, name) is defined, name


def test_validating_does_not_import_trio(tmp_path: Path) -> None:
    """`uet validate` loads and checks a workflow without importing Trio (fast start-up)."""
    flow = tmp_path / "flow.toml"
    flow.write_text('[[tasks]]\nid = "a"\ncommand = ["true"]\n')
    code = (
        "import sys\n"
        "from uet_trio_cli import main\n"
        "try:\n"
        "    main(['validate', sys.argv[1]])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "assert 'trio' not in sys.modules, 'trio imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(flow)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "ok: workflow" in done.stdout


def test_help_imports_no_trio_engine_or_store() -> None:
    """`uet --help` stays fast: the commands import the library only when they run."""
    code = (
        "import sys\n"
        "from uet_trio_cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('trio', 'uet_trio.running', 'uet_trio.recording.store', 'uet_trio.deciding')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'trio' or m.startswith(heavy)]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Usage: " in done.stdout
