"""Shared fixtures: a store in tmp_path, workflow files, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from uet_trio import Store

UET = [str(Path(sys.executable).with_name("uet"))]
"""The installed console script, run as a real subprocess."""


def literal(text: str) -> str:
    """`text` as a command template: its braces doubled, so no placeholder is read in it."""
    return text.replace("{", "{{").replace("}", "}}")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's database lives."""
    return tmp_path / ".uet" / "uet.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """A real SQLite store in a file under tmp_path."""
    with Store.open(db_path) as opened:
        yield opened


@pytest.fixture
def write_flow(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a workflow file (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "flow.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli() -> CliRunner:
    """click's in-process runner."""
    return CliRunner()


def run_uet(
    *args: str | os.PathLike[str], cwd: Path, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run the real `uet` program in a subprocess."""
    return subprocess.run(
        [*UET, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
