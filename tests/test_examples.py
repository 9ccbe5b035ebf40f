"""
The files in examples/ run end to end through the real ``uet`` program.

Each runs from a copy in tmp_path, so the outputs it writes and the store it
keeps stay out of the source tree. The C build needs the system's ``cc``.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from .conftest import run_uet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CC = shutil.which("cc")


@pytest.mark.parametrize("name", ["hello.toml", "diamond.json", "fanout.toml", "cbuild/flow.toml"])
def test_every_example_validates(cli: CliRunner, name: str) -> None:
    result = cli.invoke(main, ["validate", str(EXAMPLES / name)])
    assert result.exit_code == 0, result.output
    assert ": ok: workflow" in result.output


def test_fanout_expands_to_the_same_54_task_build(tmp_path: Path) -> None:
    """
    48 compile units (6 modules x 8 parts), link after every one of them,
    three test shards after link, package after the shards: all succeed, in that order.
    """
    flow = tmp_path / "fanout.toml"
    shutil.copy(EXAMPLES / "fanout.toml", flow)
    done = run_uet("run", flow, "--workers", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "54 succeeded" in done.stdout
    with sqlite3.connect(tmp_path / ".uet" / "uet.db") as conn:
        ended = conn.execute(
            "SELECT task_id, seq FROM events WHERE kind = 'task_succeeded' ORDER BY seq"
        ).fetchall()
        started = dict(
            conn.execute(
                "SELECT task_id, min(seq) FROM events WHERE kind = 'attempt_started' "
                "GROUP BY task_id"
            ).fetchall()
        )
    finished = dict(ended)
    compiles = [task for task in finished if task.startswith("compile[")]
    tests = [task for task in finished if task.startswith("test[")]
    assert len(compiles) == 48 and "compile[module=cli,part=p8]" in compiles
    assert sorted(tests) == ["test[shard=1]", "test[shard=2]", "test[shard=3]"]
    assert min(started[task] for task in compiles) > finished["prepare"]
    assert started["link"] > max(finished[task] for task in compiles)
    assert min(started[task] for task in tests) > finished["link"]
    assert started["package"] > max(finished[task] for task in tests)


@pytest.mark.skipif(CC is None, reason="needs a C compiler on PATH as cc")
def test_the_c_build_builds_checks_and_rebuilds_only_what_changed(tmp_path: Path) -> None:
    """
    First run: four compiles, link, check. Second: only the check (no
    outputs) runs. A comment in one file recompiles that file and stops
    there (same object code); a real change relinks, and the check catches it.
    """
    project = tmp_path / "cbuild"
    shutil.copytree(EXAMPLES / "cbuild", project, ignore=shutil.ignore_patterns("build", ".uet"))

    first = run_uet("run", "flow.toml", cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "6 succeeded" in first.stdout
    calc = subprocess.run(
        [project / "build" / "calc", "4", "5"], capture_output=True, text=True, check=True
    )
    assert calc.stdout == "sum 9\nproduct 20\n"
    assert sorted(p.name for p in (project / "build").rglob("*.o")) == [
        "main.o",
        "print.o",
        "product.o",
        "sum.o",
    ]

    second = run_uet("run", "flow.toml", cwd=project)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "5 up to date, 1 succeeded" in second.stdout

    source = project / "src" / "math" / "sum.c"
    source.write_text(source.read_text() + "/* a comment changes no object code */\n")
    third = run_uet("run", "flow.toml", cwd=project)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "4 up to date, 2 succeeded" in third.stdout
    assert "ok      compile[src=src/math/sum.c]" in third.stdout
    assert "link" not in third.stdout

    source.write_text(source.read_text().replace("total += values[i]", "total -= values[i]"))
    fourth = run_uet("run", "flow.toml", cwd=project)
    assert fourth.returncode == 1
    assert "ok      link" in fourth.stdout and "FAILED  check" in fourth.stdout
