"""
Up-to-date checks with real files and real commands: what runs again, and why.

`copy` fans out over two sources and drops their comment lines into
``out/``; `count` reads every output of `copy` (a glob over declared
outputs, so it depends on them) and writes their size. A comment added to a
source re-runs that copy only: its output comes out byte-identical, so
`count` stays up to date (early cutoff).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from uet_trio_cli import main

from uet_trio import Store, TaskSpec, TaskState, load_workflow, run_workflow

from .conftest import UET, literal, run_uet
from .procs import wait_for

FLOW = """
[workflow]
name = "files"
max_workers = 2

[[tasks]]
id = "copy"
foreach = { name = ["a", "b"] }
inputs = ["src/{name}.txt"]
outputs = ["out/{name}.txt"]
command = ["sh", "-c", 'grep -v "^#" "$1" > "$2"', "sh", "{inputs}", "{outputs}"]

[[tasks]]
id = "count"
inputs = ["out/*.txt"]
outputs = ["count.txt"]
command = ["sh", "-c", 'cat "$@" | wc -c > count.txt', "sh", "{inputs}"]
"""

A, B, COUNT = "copy[name=a]", "copy[name=b]", "count"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("alpha\n")
    (tmp_path / "src" / "b.txt").write_text("beta\n")
    (tmp_path / "flow.toml").write_text(FLOW)
    return tmp_path


def run(project: Path, flow: str = "flow.toml", **options: object) -> dict[str, TaskState]:
    """One real run of the workflow file, recorded in the project's store; the tasks' states."""

    async def main() -> dict[str, TaskState]:
        with Store.open(project / ".uet" / "uet.db") as store:
            result = await run_workflow(load_workflow(project / flow), store=store, **options)  # type: ignore[arg-type]
        return dict(result.states)

    return trio.run(main)


def ran(states: dict[str, TaskState]) -> set[str]:
    assert set(states.values()) <= {TaskState.SUCCEEDED, TaskState.UP_TO_DATE}, states
    return {task for task, state in states.items() if state is TaskState.SUCCEEDED}


def test_the_second_run_runs_nothing(project: Path) -> None:
    assert ran(run(project)) == {A, B, COUNT}
    assert (project / "count.txt").read_text().split() == ["11"]
    assert ran(run(project)) == set()


def test_a_no_op_rerun_records_one_event_per_task(project: Path) -> None:
    """
    Found up to date before the run starts, each task is recorded with its
    ``task_up_to_date`` alone, in the row state and the views read.
    """
    run(project)
    assert ran(run(project)) == set()
    with Store.open(project / ".uet" / "uet.db") as store:
        run_id = store.last_run()
        kinds = [(event.kind, event.task_id) for event in store.events(run_id)]
        assert kinds == [
            ("run_started", None),
            ("task_up_to_date", A),
            ("task_up_to_date", B),
            ("task_up_to_date", COUNT),
            ("run_finished", None),
        ]
        assert {task.state for task in store.tasks(run_id)} == {TaskState.UP_TO_DATE}
        assert store.ready_causes(run_id) == {}
    shown = run_uet("runs", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert run_id in shown.stdout


def test_a_run_stopped_while_settling_is_recorded_as_it_stopped(tmp_path: Path) -> None:
    """
    Cancelled between two parts of the settled tasks, a no-op records those
    it finished as up to date and the rest as cancelled, rows and events
    alike; resuming it checks the rest the usual way.
    """
    from uet_trio import EventKind, RunStatus, WorkflowSpec, open_run
    from uet_trio.testing import FakeRunner

    (tmp_path / "out").mkdir()
    tasks = []
    for i in range(600):
        (tmp_path / "out" / f"{i}.txt").write_text(f"{i}\n")
        tasks.append(TaskSpec(id=f"t{i}", command=["true"], outputs=[f"out/{i}.txt"]))
    spec = WorkflowSpec(name="many", base_dir=tmp_path, tasks=tasks)

    async def main() -> None:
        with Store.open(tmp_path / "uet.db") as store:
            await run_workflow(spec, store=store, runner=FakeRunner())
            with trio.CancelScope() as scope:
                async with open_run(spec, store=store, runner=FakeRunner()) as run:
                    # Room for one event: the run waits for this reader at
                    # the second, so the cancellation comes while it settles.
                    with run.events(1, kinds={EventKind.TASK_UP_TO_DATE}) as settled:
                        async for _ in settled:
                            scope.cancel()
            assert run.result is not None and run.result.status is RunStatus.CANCELLED
            rows = {task.task_id: task.state for task in store.tasks(run.run_id)}
            last = {e.task_id: e.kind for e in store.events(run.run_id) if e.task_id}
            assert set(rows.values()) == {TaskState.UP_TO_DATE, TaskState.CANCELLED}
            assert 0 < list(rows.values()).count(TaskState.UP_TO_DATE) < len(tasks)
            assert rows == {
                task: TaskState.UP_TO_DATE
                if kind == EventKind.TASK_UP_TO_DATE
                else TaskState.CANCELLED
                for task, kind in last.items()
            }
            resumed = await run_workflow(spec, store=store, runner=FakeRunner(), resume=run.run_id)
            assert set(resumed.states.values()) == {TaskState.UP_TO_DATE}

    trio.run(main)


def test_a_changed_input_reruns_its_task_and_what_reads_its_output(project: Path) -> None:
    run(project)
    (project / "src" / "a.txt").write_text("alphabet\n")
    assert ran(run(project)) == {A, COUNT}
    assert (project / "count.txt").read_text().split() == ["14"]


def test_identical_output_stops_the_rerun_there(project: Path) -> None:
    """A comment changes the source, not what `copy` writes: `count` stays up to date."""
    run(project)
    (project / "src" / "a.txt").write_text("# a comment\nalpha\n")
    assert ran(run(project)) == {A}


def test_touching_without_changing_reruns_nothing(project: Path) -> None:
    run(project)
    source = project / "src" / "b.txt"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns + 10**9, stat.st_mtime_ns + 10**9))
    assert ran(run(project)) == set()


def test_a_changed_command_reruns_it(project: Path) -> None:
    run(project)
    flow = project / "flow.toml"
    flow.write_text(
        FLOW.replace('outputs = ["count.txt"]', 'outputs = ["count.txt"]\nenv = { X = "1" }')
    )
    assert ran(run(project)) == {COUNT}


def test_a_deleted_output_reruns_its_producer_only(project: Path) -> None:
    run(project)
    (project / "out" / "b.txt").unlink()
    assert ran(run(project)) == {B}


def test_an_output_changed_by_hand_is_not_trusted(project: Path) -> None:
    run(project)
    (project / "count.txt").write_text("999\n")
    assert ran(run(project)) == {COUNT}
    assert (project / "count.txt").read_text().split() == ["11"]


def test_always_make_runs_everything(project: Path) -> None:
    run(project)
    assert ran(run(project, always_make=True)) == {A, B, COUNT}
    assert ran(run(project)) == set()


def test_a_missing_declared_output_fails_the_task_and_skips_downstream(
    tmp_path: Path, store: Store
) -> None:
    (tmp_path / "flow.toml").write_text(
        textwrap.dedent(
            """
            [[tasks]]
            id = "forgets"
            outputs = ["made/it.txt"]
            command = ["true"]

            [[tasks]]
            id = "reads"
            inputs = ["made/it.txt"]
            command = ["cat", "{inputs}"]
            """
        )
    )
    spec = load_workflow(tmp_path / "flow.toml")
    result = trio.run(lambda: run_workflow(spec, store=store))
    assert result.states == {"forgets": TaskState.FAILED, "reads": TaskState.SKIPPED}
    (attempt,) = store.attempts(result.run_id, "forgets")
    assert attempt.error == "declared output missing after the command succeeded: made/it.txt"
    assert (tmp_path / "made").is_dir()  # the output's directory was made for it


def test_a_failed_attempt_leaves_no_output_it_wrote(tmp_path: Path, store: Store) -> None:
    (tmp_path / "kept.txt").write_text("from an earlier success\n")
    (tmp_path / "flow.toml").write_text(
        textwrap.dedent(
            """
            [[tasks]]
            id = "half"
            outputs = ["out/new.txt", "kept.txt"]
            command = ["sh", "-c", "echo partial > out/new.txt; exit 3"]
            """
        )
    )
    spec = load_workflow(tmp_path / "flow.toml")
    result = trio.run(lambda: run_workflow(spec, store=store))
    assert result.states == {"half": TaskState.FAILED}
    assert not (tmp_path / "out" / "new.txt").exists()
    assert (tmp_path / "kept.txt").read_text() == "from an earlier success\n"


def test_ok_exit_codes_count_as_success_and_keep_outputs(tmp_path: Path, store: Store) -> None:
    (tmp_path / "flow.toml").write_text(
        textwrap.dedent(
            """
            [[tasks]]
            id = "five"
            outputs = ["r.txt"]
            ok_exit_codes = [0, 5]
            command = ["sh", "-c", "echo r > r.txt; exit 5"]
            """
        )
    )
    spec = load_workflow(tmp_path / "flow.toml")
    assert trio.run(lambda: run_workflow(spec, store=store)).states == {"five": TaskState.SUCCEEDED}
    assert (tmp_path / "r.txt").read_text() == "r\n"


def test_killed_runner_output_is_never_trusted(project: Path) -> None:
    """
    kill -9 of `uet` while both copies have half written their outputs; the
    workflow and `a`'s input then go back to what the last success saw. The
    signatures match again, but the outputs are not what that success
    recorded: both run again.
    """
    run(project)
    flow = project / "flow.toml"
    script = 'echo partial > "$2"; touch started; while [ ! -e release ]; do sleep 0.02; done'
    flow.write_text(
        FLOW.replace(
            """command = ["sh", "-c", 'grep -v "^#" "$1" > "$2"', "sh", "{inputs}", "{outputs}"]""",
            f"command = {json.dumps(['sh', '-c', literal(script), 'sh', '{inputs}', '{outputs}'])}",
        )
    )
    (project / "src" / "a.txt").write_text("changed\n")
    uet = subprocess.Popen(
        [*UET, "run", "flow.toml", "-j", "2"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        outputs = [project / "out" / name for name in ("a.txt", "b.txt")]
        wait_for(
            lambda: all(path.read_text() == "partial\n" for path in outputs),
            "both copies to write half their output",
        )
        os.kill(uet.pid, signal.SIGKILL)
        uet.wait()
    finally:
        (project / "release").touch()
    assert (project / "out" / "a.txt").read_text() == "partial\n"
    flow.write_text(FLOW)
    (project / "src" / "a.txt").write_text("alpha\n")
    assert ran(run(project)) == {A, B}
    assert (project / "out" / "a.txt").read_text() == "alpha\n"
    assert (project / "out" / "b.txt").read_text() == "beta\n"


class TestCommandLine:
    def test_dry_run_gives_reasons_and_writes_nothing(self, project: Path) -> None:
        db = project / ".uet" / "uet.db"
        done = run_uet("run", "-n", "flow.toml", cwd=project)
        assert done.returncode == 0, done.stderr
        assert f"{A}  never run" in done.stdout
        assert "3 would run, 0 up to date" in done.stdout
        assert not db.exists()
        run(project)
        (project / "src" / "b.txt").write_text("beta 2\n")
        (project / "out" / "a.txt").unlink()
        before = db.stat().st_mtime_ns
        done = run_uet("run", "--dry-run", "flow.toml", cwd=project)
        assert f"{A}  output missing: out/a.txt" in done.stdout
        assert f"{B}  input changed: src/b.txt" in done.stdout
        assert f"{COUNT}  input changed: out/a.txt" in done.stdout
        assert db.stat().st_mtime_ns == before
        assert not (project / "out" / "a.txt").exists()

    def test_the_summary_counts_up_to_date_tasks_and_verbose_lists_them(
        self, project: Path
    ) -> None:
        """As make and ninja, a run names only what it ran; ``-v`` shows every event."""
        run(project)
        (project / "src" / "a.txt").write_text("alphabet\n")
        db = str(project / ".uet" / "uet.db")
        result = CliRunner().invoke(main, ["run", str(project / "flow.toml"), "--db", db])
        assert result.exit_code == 0, result.output
        assert f"{A}  " in result.output
        assert B not in result.output
        assert "1 up to date, 2 succeeded" in result.output
        result = CliRunner().invoke(main, ["run", "-v", str(project / "flow.toml"), "--db", db])
        assert f"task_up_to_date {B} signature=" in result.output
        assert "3 up to date, 0 succeeded" in result.output
        shown = CliRunner().invoke(main, ["show", "--last", "--db", db])
        assert "up_to_date" in shown.output

    def test_targets_run_only_what_they_need(self, project: Path) -> None:
        done = run_uet("run", "flow.toml", "copy[name=b]", cwd=project)
        assert done.returncode == 0, done.stderr
        assert (project / "out" / "b.txt").exists()
        assert not (project / "out" / "a.txt").exists()
        done = run_uet("run", "flow.toml", "count.txt", cwd=project)
        assert "1 up to date, 2 succeeded" in done.stdout
        done = run_uet("run", "flow.toml", "copy[*]", "-B", cwd=project)
        assert "2 succeeded" in done.stdout
        done = run_uet("run", "flow.toml", "nothing[*]", cwd=project)
        assert done.returncode == 2
        assert "no task, instance or declared output matches 'nothing[*]'" in done.stderr


def test_a_simulation_runs_every_task_and_touches_no_file(project: Path) -> None:
    """Scripted attempts write nothing: a simulation neither checks nor expects outputs."""
    from uet_trio.testing import FakeRunner, simulate

    run(project)
    simulation = simulate(load_workflow(project / "flow.toml"), FakeRunner())
    assert set(simulation.states.values()) == {TaskState.SUCCEEDED}
    assert (project / "count.txt").read_text().split() == ["11"]


def test_a_phony_dependency_stands_for_its_signature(tmp_path: Path) -> None:
    """
    `prepare` declares no outputs, so it always runs; `use` depends on its
    signature: the same command leaves `use` up to date, a new one re-runs it.
    """
    flow = """
        [[tasks]]
        id = "prepare"
        command = ["sh", "-c", "echo {word} > word.txt"]
        params = {{ word = "{word}" }}

        [[tasks]]
        id = "use"
        depends_on = ["prepare"]
        outputs = ["used.txt"]
        command = ["cp", "word.txt", "used.txt"]
    """
    (tmp_path / "flow.toml").write_text(textwrap.dedent(flow.format(word="one")))
    assert ran(run(tmp_path)) == {"prepare", "use"}
    assert ran(run(tmp_path)) == {"prepare"}
    (tmp_path / "flow.toml").write_text(textwrap.dedent(flow.format(word="two")))
    assert ran(run(tmp_path)) == {"prepare", "use"}
    assert (tmp_path / "used.txt").read_text() == "two\n"
