"""
Benchmark 1: whole `uet run` processes of short tasks against xargs, make, ninja and doit.

Each value is one complete process, start-up and persistence included, from a
clean directory (database, logs and tool state removed before, untimed). All
tools run the same `true` commands with 8 jobs: `xargs -P 8` on the flat list
(it knows no dependencies), `make -j8`, `ninja -j8` (where installed) and
`doit -n 8` on the same graph as uet (see `workloads`; ninja's edges name
outputs no command makes, so every edge runs every time, after its inputs'
edges). After the runs, the manager process prints tasks per second and uet's
ratio to xargs, ninja and doit, all from this one invocation.

    python perf/bench_throughput.py --tasks 1000 5000 -o throughput.json
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyperf
import workloads as w

JOBS = 8
NINJA = shutil.which("ninja")


def write_build_ninja(path: Path, tasks: int, shape: str) -> Path:
    """A ``build.ninja`` with one edge per node running ``true`` after its dependencies' edges."""
    lines = ["rule true", "  command = true", ""]
    for name, deps in w.graph(tasks, shape):
        lines.append(f"build {name}: true {' '.join(deps)}".rstrip())
    path.write_text("\n".join(lines) + "\n")
    return path


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--tasks", *map(str, args.tasks)])
    if args.skip_doit:
        cmd.append("--skip-doit")


def main() -> None:
    runner = pyperf.Runner(processes=3, values=1, warmups=0, loops=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--tasks", type=int, nargs="+", default=[1000, 5000])
    runner.argparser.add_argument("--skip-doit", action="store_true")
    args = runner.parse_args()
    results: dict[str, pyperf.Benchmark | None] = {}
    for tasks in args.tasks:
        root = w.scratch(f"throughput-{tasks}")
        items = root / "items.txt"
        items.write_text("".join(f"{i}\n" for i in range(tasks)))
        xargs = ["xargs", "-P", str(JOBS), "-n", "1", "true"]
        results[f"xargs-flat-{tasks}"] = runner.bench_time_func(
            f"xargs-flat-{tasks}", w.time_command, xargs, root, None, items
        )
        for shape in w.SHAPES:
            make_dir = w.fresh_dir(root / f"make-{shape}")
            w.write_makefile(make_dir / "Makefile", tasks, shape)
            results[f"make-{shape}-{tasks}"] = runner.bench_time_func(
                f"make-{shape}-{tasks}",
                w.time_command,
                ["make", "-s", f"-j{JOBS}", "-f", "Makefile"],
                make_dir,
            )
            if NINJA is not None:
                ninja_dir = w.fresh_dir(root / f"ninja-{shape}")
                write_build_ninja(ninja_dir / "build.ninja", tasks, shape)
                results[f"ninja-{shape}-{tasks}"] = runner.bench_time_func(
                    f"ninja-{shape}-{tasks}",
                    w.time_command,
                    [NINJA, f"-j{JOBS}"],
                    ninja_dir,
                    lambda d=ninja_dir: _clear(d, ".ninja_*"),
                )
            if shape == "dag" and not args.skip_doit:
                doit_dir = w.fresh_dir(root / "doit-dag")
                w.write_dodo(doit_dir / "dodo.py", tasks, shape)
                results[f"doit-dag-{tasks}"] = runner.bench_time_func(
                    f"doit-dag-{tasks}",
                    w.time_command,
                    [w.DOIT, "-n", str(JOBS), "-P", "process"],
                    doit_dir,
                    lambda d=doit_dir: _clear(d, ".doit.db*"),
                )
            uet_dir = w.fresh_dir(root / f"uet-{shape}")
            w.write_uet_flow(uet_dir / "flow.toml", tasks, shape, JOBS)
            results[f"uet-{shape}-{tasks}"] = runner.bench_time_func(
                f"uet-{shape}-{tasks}",
                w.time_command,
                [w.UET, "run", "-q", "--db", ".uet/uet.db", "flow.toml"],
                uet_dir,
                lambda d=uet_dir: shutil.rmtree(d / ".uet", ignore_errors=True),
            )
    if args.worker or args.worker_task is not None:
        return
    _summary(args.tasks, results)


def _clear(directory: Path, pattern: str) -> None:
    for path in directory.glob(pattern):
        path.unlink()


def _summary(task_counts: list[int], results: dict[str, pyperf.Benchmark | None]) -> None:
    print("\ntasks/s (mean of values) and uet's ratios, all from this invocation:")
    for tasks in task_counts:
        rate = {
            name: tasks / bench.mean()
            for name, bench in results.items()
            if bench is not None and name.endswith(f"-{tasks}")
        }
        for name, value in rate.items():
            print(f"  {name:<16} {value:8.0f} tasks/s")
        xargs = rate.get(f"xargs-flat-{tasks}")
        doit = rate.get(f"doit-dag-{tasks}")
        for shape in w.SHAPES:
            uet = rate.get(f"uet-{shape}-{tasks}")
            if uet is None or xargs is None:
                continue
            line = f"  uet-{shape}-{tasks} / xargs-flat: {uet / xargs:.2f}"
            ninja = rate.get(f"ninja-{shape}-{tasks}")
            if ninja is not None:
                line += f"; / ninja-{shape}: {uet / ninja:.2f}"
            if doit is not None:
                line += f"; / doit-dag: {uet / doit:.2f}"
            print(line)


if __name__ == "__main__":
    main()
