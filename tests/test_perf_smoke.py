"""Each core-runtime benchmark in perf/ runs end to end in a tiny single-value mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parent.parent / "perf"

CASES = {
    "bench_throughput.py": (["--tasks", "20"], "uet-dag-20 / xargs-flat:"),
    "bench_parallelism.py": (["--seconds", "0.1"], "achieved parallelism"),
    "bench_inprocess.py": (["--tasks", "300"], "with every event persisted"),
    "bench_persister.py": (["--events", "500"], "persister:"),
    "bench_startup.py": ([], "uet-validate-1000"),
    "bench_memory.py": (["--tasks", "300"], "3x events adds"),
    "bench_noop.py": (["--files", "20"], "uet / doit, wall:"),
    "bench_expansion.py": (["--files", "50,200"], "expand-shared: 4x the files took"),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_in_debug_mode(script: str, tmp_path: Path) -> None:
    """The script completes one value of every benchmark and prints its summary."""
    args, expected = CASES[script]
    done = subprocess.run(
        [sys.executable, str(PERF / script), "--debug-single-value", *args],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
    assert not list(tmp_path.glob("uet-perf-*")), "scratch directories are removed at exit"
