"""What an install puts on a system: the `uet` command under names of our own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_command_line_installs_as_uet_trio_cli_not_cli(tmp_path: Path) -> None:
    """Another distribution's top-level ``cli`` package cannot shadow ours, nor ours it."""
    code = (
        "import importlib.util, uet_trio_cli; "
        "assert importlib.util.find_spec('cli') is None, importlib.util.find_spec('cli')"
    )
    # -I: no current directory, no user site, so only what is installed is seen.
    subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, check=True)


def test_python_dash_m_uet_trio_is_the_uet_command(tmp_path: Path) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text('[workflow]\nname = "w"\n[[tasks]]\nid = "a"\ncommand = ["true"]\n')
    done = subprocess.run(
        [sys.executable, "-I", "-m", "uet_trio", "validate", str(flow)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{flow}: ok: workflow 'w', 1 task in 1 level")
    bad = subprocess.run(
        [sys.executable, "-I", "-m", "uet_trio", "validate", str(tmp_path / "missing.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "missing.toml" in bad.stderr
