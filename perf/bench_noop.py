"""
No-op rebuilds: a whole `uet run` with nothing to do, against doit, make and ninja.

The build is `--files` source files ``src/N.txt``, each copied to
``out/N.txt`` by a task of its own (one input, one output), written four
ways, each tool in its own scratch directory with its own copy of the
sources:

- uet: one task with ``foreach = { src = "src/*.txt" }``, ``inputs``,
  ``outputs`` and ``cp {inputs} {outputs}``; the store is ``.uet/uet.db``
  in that directory.
- doit: a ``dodo.py`` yielding one task per file with ``file_dep`` and
  ``targets`` (doit's default checker: size and time first, MD5 when the
  time differs).
- make: a Makefile with one pattern rule over ``$(wildcard src/*.txt)``,
  timed as written (``make``) and without the built-in rules (``make -r``,
  as large Makefiles set it): with them, make searches its built-in
  implicit rules for a way to remake every source, which is most of its
  no-op time here.
- ninja: a ``build.ninja`` listing one ``build`` line per file (ninja does
  not glob; its generators write the list, as this script does).

Each tool builds once, untimed; then each no-op is checked once, untimed,
to have run nothing (``uet run -n`` says "0 would run", every line of
``doit`` says "--" (up to date), ``make -q`` exits 0, ``ninja -n`` says "no
work to do"), which also warms the page cache for every tool alike. Then
each round times one whole no-op process of each tool (``uet run``,
``doit -n 1``, ``make -j8``, ``make -r -j8``, ``ninja -j8``), the order
rotating by one every round so a slow spell of the shared machine falls on
all of them alike. Each value is the wall time and the CPU time (user and
system) of that process. The manager prints the medians, uet's median as a
fraction of doit's and the median of that fraction within each round, in
both, all from this invocation; ``-o`` writes the values as a pyperf suite.

With ``--steps``, the rounds also time commands that each stop at a part
of uet's no-op, in uet's directory (report only): ``python -c pass``,
``uet --help`` (start-up and the command line's imports), ``uet validate``
(loading the file and expanding the ``foreach``), ``uet run -n`` (the
up-to-date checks, against the store, writing nothing) and ``uet run -q``
(the run without its line per task). ``--profile RUNS`` instead builds
uet's project and prints where its no-op spends its time under cProfile
(see `profile`).

``--baseline-uet PATH`` also times another uet (another checkout's
venv's ``bin/uet``, say) in the same rotation, as ``uet-base``, in a
project of its own that it built, and prints uet's time as a fraction of
that one's: a change to the no-op measured against what it changed, in
the same invocation.

uet's store keeps every run, so the last round's store holds one recorded
run per round; that is what a project that re-runs its build sees.

    python perf/bench_noop.py --files 1000 --rounds 21 --steps -o noop.json
    python perf/bench_noop.py --files 10000 --rounds 5 --baseline-uet /tmp/old/venv/bin/uet
    python perf/bench_noop.py --files 10000 --rounds 3 --steps
    python perf/bench_noop.py --files 1000 --profile 15
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyperf
import workloads as w

JOBS = 8
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Tool:
    """One build tool: how its build file is written, its no-op, and the check of that no-op."""

    name: str
    write: Callable[[Path, int], None]
    build: list[str]
    noop: list[str]
    check: Callable[[Path, int], None]


def _write_uet(directory: Path, files: int) -> None:
    (directory / "flow.toml").write_text(
        "[workflow]\n"
        'name = "noop"\n'
        f"max_workers = {JOBS}\n\n"
        "[[tasks]]\n"
        'id = "copy"\n'
        'foreach = { src = "src/*.txt" }\n'
        'inputs = ["{src}"]\n'
        'outputs = ["out/{src.stem}.txt"]\n'
        'command = ["cp", "{inputs}", "{outputs}"]\n'
    )


def _write_doit(directory: Path, files: int) -> None:
    # doit makes no directories for targets (uet, make's order-only
    # prerequisite and ninja do), so the outputs' one is made here.
    (directory / "out").mkdir()
    (directory / "dodo.py").write_text(
        "import glob\n"
        "import os\n\n\n"
        "def task_copy():\n"
        "    for src in sorted(glob.glob('src/*.txt')):\n"
        "        out = os.path.join('out', os.path.basename(src))\n"
        "        yield {'name': src, 'actions': [['cp', src, out]],\n"
        "               'file_dep': [src], 'targets': [out]}\n"
    )


def _write_make(directory: Path, files: int) -> None:
    (directory / "Makefile").write_text(
        "SRC := $(wildcard src/*.txt)\n"
        "OUT := $(patsubst src/%.txt,out/%.txt,$(SRC))\n\n"
        "all: $(OUT)\n\n"
        "out/%.txt: src/%.txt | out\n"
        "\tcp $< $@\n\n"
        "out:\n"
        "\tmkdir -p out\n"
    )


def _write_ninja(directory: Path, files: int) -> None:
    lines = ["rule cp", "  command = cp $in $out", ""]
    lines += [f"build out/{i}.txt: cp src/{i}.txt" for i in range(files)]
    (directory / "build.ninja").write_text("\n".join(lines) + "\n")


def _output(directory: Path, argv: list[str]) -> str:
    """
    What `argv` printed; raises if it failed.

    The output is only searched and shown, and a parallel build's is not
    always valid UTF-8 (one 10,000-file build's was not), so bytes that do
    not decode are replaced.
    """
    done = subprocess.run(
        argv, cwd=directory, capture_output=True, encoding="utf-8", errors="replace", check=False
    )
    if done.returncode:
        raise RuntimeError(f"{argv} exited {done.returncode} in {directory}: {done.stderr}")
    return done.stdout


def _check_uet(directory: Path, files: int, uet: str = w.UET) -> None:
    said = _output(directory, [uet, "run", "-n", "--db", ".uet/uet.db", "flow.toml"])
    if f"0 would run, {files} up to date" not in said:
        raise RuntimeError(f"uet's no-op would run something:\n{said[-2000:]}")


def _check_doit(directory: Path, files: int) -> None:
    lines = _output(directory, [w.DOIT, "-n", "1"]).splitlines()
    if len(lines) != files or not all(line.startswith("-- ") for line in lines):
        raise RuntimeError(f"doit's no-op ran something:\n{lines[:20]}")


def _check_make(*flags: str) -> Callable[[Path, int], None]:
    """The check of make's no-op with `flags`: ``make -q`` exits 0 when nothing would run."""

    def check(directory: Path, files: int) -> None:
        question = subprocess.run(["make", "-q", *flags], cwd=directory, check=False)
        if question.returncode:
            raise RuntimeError(f"make -q {' '.join(flags)} exited {question.returncode}")

    return check


def _check_ninja(directory: Path, files: int) -> None:
    said = _output(directory, ["ninja", "-n"])
    if "no work to do" not in said:
        raise RuntimeError(f"ninja's no-op would run something:\n{said[-2000:]}")


TOOLS = (
    Tool(
        "uet",
        _write_uet,
        [w.UET, "run", "-q", "--db", ".uet/uet.db", "flow.toml"],
        [w.UET, "run", "--db", ".uet/uet.db", "flow.toml"],
        _check_uet,
    ),
    Tool(
        "doit",
        _write_doit,
        [w.DOIT, "-n", str(JOBS), "-P", "thread"],
        [w.DOIT, "-n", "1"],
        _check_doit,
    ),
    Tool("make", _write_make, ["make", "-s", f"-j{JOBS}"], ["make", f"-j{JOBS}"], _check_make()),
    Tool(
        "make-r",
        _write_make,
        ["make", "-r", "-s", f"-j{JOBS}"],
        ["make", "-r", f"-j{JOBS}"],
        _check_make("-r"),
    ),
    Tool("ninja", _write_ninja, ["ninja", f"-j{JOBS}"], ["ninja", f"-j{JOBS}"], _check_ninja),
)


def prepare(root: Path, tool: Tool, files: int) -> Path:
    """A built project of `files` copies for `tool`, its no-op checked; its directory."""
    directory = w.fresh_dir(root / tool.name)
    sources = directory / "src"
    sources.mkdir()
    for i in range(files):
        (sources / f"{i}.txt").write_text(f"source file {i}\n" * 8)
    tool.write(directory, files)
    _output(directory, tool.build)
    copied = sorted(path.name for path in (directory / "out").iterdir())
    if copied != sorted(f"{i}.txt" for i in range(files)):
        raise RuntimeError(f"{tool.name}'s build wrote {len(copied)} of {files} outputs")
    tool.check(directory, files)
    return directory


STEPS = {
    "python": [sys.executable, "-c", "pass"],
    "uet-help": [w.UET, "--help"],
    "uet-validate": [w.UET, "validate", "flow.toml"],
    "uet-dry-run": [w.UET, "run", "-n", "--db", ".uet/uet.db", "flow.toml"],
    "uet-quiet": [w.UET, "run", "-q", "--db", ".uet/uet.db", "flow.toml"],
}
"""With ``--steps``, commands timed in uet's directory that each do a part of its no-op."""


def run_timed(argv: list[str], directory: Path) -> tuple[float, float]:
    """
    One whole run of `argv`: its wall time and the CPU time (user and system) it used.

    The CPU time, read from the children's resource usage, moves less than
    the wall time when other work shares the machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = w.time_command(1, argv, directory)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def measure(
    files: int, rounds: int, steps: bool, baseline: str | None = None
) -> dict[str, list[float]]:
    """
    Each command's wall times in seconds, one per round, the order rotating each round.

    The CPU times are under the command's name with ``-cpu`` appended.
    With `baseline` (another ``uet``), that one's no-op is timed too, as
    ``uet-base``, in a copy of uet's built project.
    """
    root = w.scratch(f"noop-{files}")
    commands = {tool.name: (tool.noop, prepare(root, tool, files)) for tool in TOOLS}
    if baseline is not None:
        # Built by the baseline itself: signatures and the stat cache are
        # kept by directory and path, so a copy of uet's project would
        # look never built.
        uet = TOOLS[0]
        base = Tool(
            "uet-base",
            uet.write,
            [baseline, *uet.build[1:]],
            [baseline, *uet.noop[1:]],
            lambda directory, files: _check_uet(directory, files, baseline),
        )
        commands[base.name] = (base.noop, prepare(root, base, files))
    if steps:
        commands |= {name: (argv, commands["uet"][1]) for name, argv in STEPS.items()}
    names = list(commands)
    times: dict[str, list[float]] = {}
    for turn in range(rounds):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            wall, cpu = run_timed(*commands[name])
            times.setdefault(name, []).append(wall)
            times.setdefault(f"{name}-cpu", []).append(cpu)
    return {key: times[key] for name in names for key in (name, f"{name}-cpu")}


def summary(files: int, times: dict[str, list[float]]) -> None:
    """Medians, and uet's time as a fraction of doit's, in wall and in CPU time."""
    print(f"\nno-op rebuild of {files} files, whole processes, {len(times['uet'])} rounds:")
    print(f"  {'':<12} {'wall median':>12} {'wall min':>10} {'CPU median':>12}")
    median = {name: statistics.median(values) for name, values in times.items()}
    for name in times:
        if not name.endswith("-cpu"):
            print(
                f"  {name:<12} {median[name] * 1000:9.1f} ms {min(times[name]) * 1000:7.1f} ms"
                f" {median[name + '-cpu'] * 1000:9.1f} ms"
            )
    for kind, label in (("", "wall"), ("-cpu", "CPU")):
        uet, doit = times["uet" + kind], times["doit" + kind]
        paired = statistics.median(u / d for u, d in zip(uet, doit, strict=True))
        print(
            f"  uet / doit, {label}: {median['uet' + kind] / median['doit' + kind]:.2f}"
            f" (median of per-round ratios {paired:.2f}; target <= 0.5)"
        )
    for name in ("make", "make-r", "ninja"):
        print(f"  uet / {name}, wall: {median['uet'] / median[name]:.1f}")
    if "uet-base" in times:
        for kind, label in (("", "wall"), ("-cpu", "CPU")):
            uet, base = times["uet" + kind], times["uet-base" + kind]
            paired = statistics.median(u / b for u, b in zip(uet, base, strict=True))
            print(
                f"  uet / uet-base, {label}: {median['uet' + kind] / median['uet-base' + kind]:.2f}"
                f" (median of per-round ratios {paired:.2f})"
            )


def profile(files: int, runs: int) -> None:
    """
    Where uet's no-op spends its time: `runs` no-op runs under cProfile, after one build.

    Each function's time is the least it took over the runs: on a shared
    machine a run that is descheduled charges that pause to whichever
    function it was in, and the least of several runs leaves that out.
    Printed: the ten largest self times, then uet's own functions and the
    imports by cumulative time.
    """
    uet = TOOLS[0]
    directory = prepare(w.scratch(f"profile-{files}"), uet, files)
    stats = []
    for run in range(runs):
        path = directory / f"noop-{run}.prof"
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(path), *uet.noop],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        stats.append(pstats.Stats(str(path)).stats)
    functions = set.intersection(*(set(run) for run in stats))

    def least(function: tuple[str, int, str], field: int) -> float:
        return min(run[function][field] for run in stats)

    def show(function: tuple[str, int, str]) -> str:
        file, line, name = function
        where = name if file == "~" else f"{'/'.join(Path(file).parts[-2:])}:{line}({name})"
        return (
            f"  {least(function, 2) * 1000:7.1f} ms self {least(function, 3) * 1000:7.1f} ms cumul"
            f" {int(least(function, 1)):6d} calls  {where}"
        )

    print(f"\nuet's no-op of {files} files under cProfile, least of {runs} runs per function:")
    print(" largest self times:")
    for function in sorted(functions, key=lambda f: least(f, 2), reverse=True)[:10]:
        print(show(function))
    print(" uet's own functions and the imports, by cumulative time:")
    own = [
        f
        for f in functions
        if str(REPO) in f[0] or (f[2] == "_find_and_load" and "importlib" in f[0])
    ]
    for function in sorted(own, key=lambda f: least(f, 3), reverse=True)[:20]:
        print(show(function))


def save(path: str, results: dict[int, dict[str, list[float]]]) -> None:
    """The values as a pyperf suite, one benchmark per command (wall or CPU) and size."""
    benchmarks = [
        pyperf.Benchmark(
            [
                pyperf.Run(
                    values,
                    metadata={"name": f"noop-{name}-{files}", "unit": "second", "loops": 1},
                )
            ]
        )
        for files, times in results.items()
        for name, values in times.items()
    ]
    pyperf.BenchmarkSuite(benchmarks).dump(path, replace=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--files", type=int, nargs="+", default=[1000])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--debug-single-value", action="store_true", help="one round")
    parser.add_argument(
        "--steps", action="store_true", help="also time the parts of uet's no-op (report only)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="RUNS",
        help="instead, profile uet's no-op RUNS times and print where its time goes",
    )
    parser.add_argument(
        "--baseline-uet",
        metavar="PATH",
        help="also time this uet's no-op (another version), as uet-base, in the same rotation",
    )
    parser.add_argument("-o", "--output", help="write the values as a pyperf JSON suite")
    args = parser.parse_args()
    # The commands see a shell's defaults: the untimed builds leave bytecode
    # caches, so `uet` starts as an installed package does (pip compiled
    # doit's), and standard output is buffered as usual.
    for variable in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        os.environ.pop(variable, None)
    if args.profile:
        for files in args.files:
            profile(files, args.profile)
        return
    rounds = 1 if args.debug_single_value else args.rounds
    results = {files: measure(files, rounds, args.steps, args.baseline_uet) for files in args.files}
    for files, times in results.items():
        summary(files, times)
    if args.output:
        save(args.output, results)


if __name__ == "__main__":
    main()
