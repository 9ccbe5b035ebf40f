"""
Benchmark: ``uet serve``, a large run's page in a real browser, and the server's memory.

Builds (once, in the pyperf manager process) a store holding two simulated
runs of layered workflows (`uet_trio.testing.simulate` with scripted
outcomes, 5% of attempts failing once and retried): a large one of `--tasks`
tasks (default 10,000) and a small baseline of `--small` tasks (default 10).
Each pyperf worker process starts one real ``uet serve`` on a free loopback
port and one headless Debian ``chromium`` (Playwright, ``executable_path``
from PATH), and times:

- ``run-page-large`` / ``run-page-small``: from navigating a fresh tab to a
  run's page until the page has drawn it (the page marks ``<html
  data-drawn="run">`` once its graph, timeline, failures and table are in
  the document); each value is preceded by an untimed load of the other
  run's page, so the two are measured interleaved, in the same conditions;
- ``server-peak-rss``: the server's peak resident set size (``VmHWM``, in
  bytes) after it has served the large page three times.

The manager prints the medians, the ratio of the large page to the small
one, and the peak RSS in MiB.

    python perf/bench_serve.py -o serve.json
    python perf/bench_serve.py --tasks 1000 --fast      # quick look
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyperf

UET = str(Path(sys.executable).with_name("uet"))
LARGE = "bench-large"
SMALL = "bench-small"
LAYERS = 10
RETRIED = 0.05
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _flow_text(name: str, tasks: int) -> str:
    """A layered workflow: task j of layer k waits for tasks j and j+1 of layer k-1."""
    layers = min(LAYERS, tasks)
    width = max(1, tasks // layers)
    lines = [f'[workflow]\nname = "{name}"\n']
    for layer in range(layers):
        for j in range(width):
            lines.append(f'[[tasks]]\nid = "l{layer}_{j}"\ncommand = ["true"]')
            if layer:
                deps = sorted({f"l{layer - 1}_{j}", f"l{layer - 1}_{(j + 1) % width}"})
                lines.append("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]")
            lines.append("")
    return "\n".join(lines)


def _fraction(task_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def build_store(directory: Path, tasks: int, small: int) -> Path:
    """Record the large and the small simulated run into ``directory/uet.db``."""
    from uet_trio.recording.store import Store
    from uet_trio.testing import FakeRunner, Outcome, simulate
    from uet_trio.workflow.loader import load_workflow

    def outcome(task_id: str, attempt: int) -> Outcome:
        duration = 0.01 + 0.2 * _fraction(task_id, "duration")
        failed = attempt == 1 and _fraction(task_id, "fail") < RETRIED
        return Outcome(duration, exit_code=1 if failed else 0)

    db = directory / "uet.db"
    with Store.open(db) as store:
        for run_id, count in ((LARGE, tasks), (SMALL, small)):
            flow = directory / f"{run_id}.toml"
            flow.write_text(_flow_text(run_id, count))
            spec = load_workflow(flow)
            simulate(spec, FakeRunner(outcome), max_workers=8, store=store, run_id=run_id)
    return db


class Session:
    """One worker process's server and browser, started on first use and stopped at exit."""

    def __init__(self, db: str) -> None:
        from playwright.sync_api import sync_playwright

        self.server = subprocess.Popen(
            [UET, "serve", "--port", "0", "--db", db],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.server.stdout is not None
        self.url = self.server.stdout.readline().split(" at ", 1)[1].split()[0].rstrip("/")
        self.playwright = sync_playwright().start()
        chromium = shutil.which("chromium")
        assert chromium is not None, "install Debian's chromium (apt-get install chromium)"
        self.browser = self.playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        atexit.register(self.close)

    def load(self, run_id: str) -> float:
        """Seconds from navigating a new tab to `run_id`'s page until it is drawn."""
        page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            start = time.perf_counter()
            page.goto(f"{self.url}/runs/{run_id}")
            page.wait_for_selector("html[data-drawn=run]", timeout=120_000)
            return time.perf_counter() - start
        finally:
            page.close()

    def peak_rss(self) -> int:
        """The server's peak resident set size so far, in bytes."""
        status = Path(f"/proc/{self.server.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(kib) * 1024

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()
        self.server.terminate()
        self.server.wait()
        if self.server.stdout is not None:
            self.server.stdout.close()


_session: Session | None = None


def session(db: str) -> Session:
    global _session
    if _session is None:
        _session = Session(db)
    return _session


def time_page(loops: int, db: str, measured: str, other: str) -> float:
    """`loops` loads of `measured`, each after an untimed load of `other`; total seconds."""
    current = session(db)
    total = 0.0
    for _ in range(loops):
        current.load(other)
        total += current.load(measured)
    return total


def server_rss(loops: int, db: str) -> float:
    """The server's peak RSS after three loads of the large page (bytes; `loops` ignored)."""
    current = session(db)
    for _ in range(3):
        current.load(LARGE)
    return float(current.peak_rss())


def add_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--tasks", str(args.tasks), "--small", str(args.small), "--db", args.db])


def main() -> None:
    runner = pyperf.Runner(processes=4, values=3, warmups=1, loops=1, add_cmdline_args=add_args)
    runner.argparser.add_argument("--tasks", type=int, default=10_000)
    runner.argparser.add_argument("--small", type=int, default=10)
    runner.argparser.add_argument("--db", default="", help="An existing store (built if empty).")
    args = runner.parse_args()
    scratch = None
    if not args.db:
        scratch = tempfile.mkdtemp(prefix="uet-perf-serve-")
        args.db = str(build_store(Path(scratch), args.tasks, args.small))
    large = runner.bench_time_func("run-page-large", time_page, args.db, LARGE, SMALL)
    small = runner.bench_time_func("run-page-small", time_page, args.db, SMALL, LARGE)
    rss = runner.bench_time_func("server-peak-rss", server_rss, args.db, metadata={"unit": "byte"})
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if large is None or small is None or rss is None:
        return  # a worker process: the manager prints the summary
    print()
    print(
        f"run page of {args.tasks} tasks: {large.median() * 1000:.0f} ms median; "
        f"of {args.small} tasks: {small.median() * 1000:.0f} ms; "
        f"ratio {large.median() / small.median():.1f}x"
    )
    print(f"uet serve peak RSS: {rss.median() / 2**20:.1f} MiB median")


if __name__ == "__main__":
    main()
