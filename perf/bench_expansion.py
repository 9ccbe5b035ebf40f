"""
Expanding a ``foreach`` over a glob of N files, for N = 10,000 and 100,000.

The workflow is a build's: one compile instance per ``src/**/*.c`` file
(1,000 files per directory), each with its own input and an output
``build/{src.stem}.o``, and a link step whose input glob ``build/**/*.o``
matches every declared output, so its dependencies are inferred. Timed is
`parse_workflow` of that document: globbing, rendering every instance's
paths and command, resolving the link's glob, and validating the spec.

- ``expand-N``: as above.
- ``expand-shared-N``: every instance also reads ``include/*.h``, a glob
  all instances share (matched once, not once per instance).
- ``glob-N``: the baseline in the same run, Python's recursive
  ``glob.glob`` of the same pattern, sorted: listing the files alone.

Linear means the time per file is the same at 10,000 and 100,000 files.

    python perf/bench_expansion.py -o expansion.json
    python perf/bench_expansion.py --files 2000,20000     # smaller sizes
"""

from __future__ import annotations

import glob
import time
from pathlib import Path
from typing import Any

import pyperf
import workloads as w

from uet_trio.workflow.loader import parse_workflow

PER_DIR = 1_000
HEADERS = 20


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--files", args.files, "--root", args.root])


def main() -> None:
    runner = pyperf.Runner(processes=3, values=3, warmups=1, add_cmdline_args=add_args)
    runner.argparser.add_argument(
        "--files", default="10000,100000", help="comma-separated file counts"
    )
    runner.argparser.add_argument("--root", help="where the trees are (set for worker processes)")
    args = runner.parse_args()
    sizes = [int(size) for size in args.files.split(",")]
    if args.root is None:
        # Built once by the main process; its workers only read them.
        scratch = w.scratch("expansion")
        for size in sizes:
            _tree(scratch / str(size), size)
        args.root = str(scratch)
    results: dict[tuple[str, int], pyperf.Benchmark | None] = {}
    for size in sizes:
        root = Path(args.root, str(size))
        results["glob", size] = runner.bench_time_func(f"glob-{size}", _time_glob, root)
        for name, shared in (("expand", False), ("expand-shared", True)):
            document = _document(shared)
            results[name, size] = runner.bench_time_func(
                f"{name}-{size}", _time_expand, document, root, size
            )
    if args.worker or any(bench is None for bench in results.values()):
        return
    medians = {key: bench.median() for key, bench in results.items() if bench is not None}
    print()
    for size in sizes:
        base = medians["glob", size]
        print(f"{size:>7} files: glob {base:.3f} s")
        for name in ("expand", "expand-shared"):
            seconds = medians[name, size]
            print(
                f"{'':>14}{name:<14} {seconds:.3f} s = {seconds / base:.1f}x glob, "
                f"{seconds / size * 1e6:.1f} us per file"
            )
    small, large = sizes[0], sizes[-1]
    if large != small:
        for name in ("glob", "expand", "expand-shared"):
            growth = medians[name, large] / medians[name, small]
            print(f"{name}: {large / small:.0f}x the files took {growth:.1f}x the time")


def _tree(root: Path, size: int) -> None:
    """A project at `root` of `size` empty ``.c`` files in directories of 1,000, and headers."""
    for i in range(size):
        directory = root / "src" / f"d{i // PER_DIR:04}"
        if i % PER_DIR == 0:
            directory.mkdir(parents=True)
        (directory / f"f{i:07}.c").touch()
    (root / "include").mkdir()
    for i in range(HEADERS):
        (root / "include" / f"h{i}.h").touch()


def _document(shared: bool) -> dict[str, Any]:
    """The build workflow as a parsed document (what TOML or JSON loading would give)."""
    inputs = ["{src}", "include/*.h"] if shared else ["{src}"]
    return {
        "workflow": {"name": "expansion"},
        "tasks": [
            {
                "id": "compile",
                "foreach": {"src": "src/**/*.c"},
                "command": ["cc", "-Iinclude", "-c", "{src}", "-o", "{outputs}"],
                "inputs": inputs,
                "outputs": ["build/{src.stem}.o"],
            },
            {
                "id": "link",
                "command": ["cc", "-o", "{outputs}", "{inputs}"],
                "inputs": ["build/**/*.o"],
                "outputs": ["app"],
            },
        ],
    }


def _time_glob(loops: int, root: Path) -> float:
    start = time.process_time()
    for _ in range(loops):
        sorted(glob.glob("src/**/*.c", root_dir=root, recursive=True))
    return time.process_time() - start


def _time_expand(loops: int, document: dict[str, Any], root: Path, size: int) -> float:
    start = time.process_time()
    for _ in range(loops):
        spec = parse_workflow(document, base_dir=root)
        assert len(spec.tasks) == size + 1
    return time.process_time() - start


if __name__ == "__main__":
    main()
