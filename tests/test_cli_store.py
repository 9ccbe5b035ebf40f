"""
Which store a command uses: `uet run FLOW` keeps it beside the workflow file,
the views find the nearest one upward as git finds ``.git``, never create
one, and can browse one on read-only media.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import UET, run_uet

FLOW = """
    [workflow]
    name = "found"

    [[tasks]]
    id = "hello"
    command = ["sh", "-c", "echo hello"]
"""

VIEWS = [
    ["runs"],
    ["show", "--last"],
    ["events", "--last"],
    ["logs", "--last", "hello"],
    ["tools"],
    ["gc", "--keep", "1"],
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """proj/flow.toml run once from a sibling directory: (the tree's root)."""
    root = tmp_path_factory.mktemp("store")
    (root / "proj" / "sub" / "deeper").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    (root / "proj" / "flow.toml").write_text(textwrap.dedent(FLOW))
    done = run_uet("run", "../proj/flow.toml", cwd=root / "elsewhere")
    assert done.returncode == 0, done.stderr
    return root


def _no_store_above(directory: Path) -> None:
    for parent in (directory, *directory.parents):
        if (parent / ".uet" / "uet.db").is_file():
            pytest.skip(f"{parent} holds a store of its own, which every view below would find")


def test_run_keeps_its_store_beside_the_workflow(project: Path) -> None:
    assert (project / "proj" / ".uet" / "uet.db").is_file()
    assert list((project / "proj" / ".uet" / "logs").iterdir())
    assert not (project / "elsewhere" / ".uet").exists()


def test_views_find_the_nearest_store_upward(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From proj/sub/deeper, `uet runs` reads proj/.uet/uet.db; -v says so on stderr."""
    monkeypatch.delenv("UET_DB", raising=False)
    monkeypatch.chdir(project / "proj" / "sub" / "deeper")
    result = CliRunner().invoke(main, ["runs", "--json", "-v"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [row["workflow"] for row in json.loads(result.stdout)] == ["found"]
    store = project / "proj" / ".uet" / "uet.db"
    assert result.stderr == f"uet: reading the store {store}\n"
    shown = CliRunner().invoke(main, ["logs", "--last", "hello"], catch_exceptions=False)
    assert (shown.exit_code, shown.stdout) == (0, "hello\n")


def test_help_names_the_store_that_would_be_read(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "proj" / "sub")
    for command in ("runs", "show", "events", "logs", "tools", "gc"):
        text = CliRunner().invoke(main, [command, "--help"], terminal_width=400).output
        assert f"here: {project / 'proj' / '.uet' / 'uet.db'}." in text, command


@pytest.mark.parametrize("args", VIEWS, ids=lambda args: args[0])
def test_a_view_with_no_store_exits_2_and_creates_none(tmp_path: Path, args: list[str]) -> None:
    _no_store_above(tmp_path)
    done = run_uet(*args, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr == (
        "uet: error: no uet store here or in any parent directory; "
        "run a workflow first or pass --db\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_missing_db_path_is_not_created(tmp_path: Path) -> None:
    done = run_uet("show", "--last", "--db", tmp_path / "x" / "uet.db", cwd=tmp_path)
    assert done.returncode == 2
    assert "no uet store at" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_uet_db_names_the_store(project: Path, tmp_path: Path) -> None:
    store = project / "proj" / ".uet" / "uet.db"
    done = run_uet(
        "runs", "--json", cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "UET_DB": str(store)}
    )
    assert done.returncode == 0, done.stderr
    assert [row["workflow"] for row in json.loads(done.stdout)] == ["found"]


def _can_bind_read_only() -> bool:
    """Whether this system lets an unprivileged mount namespace bind a directory read-only."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as directory:
        probe = subprocess.run(
            ["unshare", "-rm", "mount", "--bind", "-o", "ro", directory, directory],
            capture_output=True,
            check=False,
        )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _can_bind_read_only(), reason="needs unshare -rm and a read-only bind mount"
)
def test_a_store_on_read_only_media_can_be_browsed(project: Path, tmp_path: Path) -> None:
    """The project mounted read-only (a new mount namespace): the views read it."""
    mount = tmp_path / "ro"
    mount.mkdir()
    uet = " ".join(UET)
    script = (
        f"mount --bind -o ro {project / 'proj'} {mount} && cd {mount}/sub && "
        f"! touch {mount}/probe 2>/dev/null && {uet} runs --json && {uet} show --last --json "
        f"&& {uet} logs --last hello && {uet} events --last --jsonl"
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert '"workflow": "found"' in done.stdout
    assert "hello\n" in done.stdout
    left = {path.name for path in (project / "proj" / ".uet").glob("uet.db-*")}
    assert left <= {"uet.db-checked"}, "a view left a log or shared-memory file"
