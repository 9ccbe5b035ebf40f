"""
``uet simulate``: its prediction against real runs of `sleep` tasks, and its errors.

The workflow below has three branches after a common start; on two workers
the longest two start first (critical-path order) and the shortest waits for
a worker, so the critical path goes through a task that waited. A first real
run on four workers records the durations; `uet simulate --workers 2
--durations RUN` must then predict the wall time of a real two-worker run
within 10%, and name the same critical path.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from uet_trio import Store
from uet_trio.recording import report

from .conftest import run_uet

SLEEPS = """
    [workflow]
    name = "sleepy"
    timeout = 60

    [[tasks]]
    id = "setup"
    command = ["sleep", "0.3"]

    [[tasks]]
    id = "long"
    command = ["sleep", "0.9"]
    depends_on = ["setup"]

    [[tasks]]
    id = "short-1"
    command = ["sleep", "0.4"]
    depends_on = ["setup"]

    [[tasks]]
    id = "short-2"
    command = ["sleep", "0.7"]
    depends_on = ["setup"]

    [[tasks]]
    id = "finish"
    command = ["sleep", "0.3"]
    depends_on = ["long", "short-1", "short-2"]
"""


def real_run(flow: Path, db: Path, workers: int) -> dict[str, Any]:
    """Run `flow` for real with `uet run` and return its JSON summary."""
    done = run_uet("run", flow, "--db", db, "-j", str(workers), "--json", cwd=flow.parent)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(flow, database, run id) after one real four-worker run of the sleep workflow."""
    root = tmp_path_factory.mktemp("recorded")
    flow = root / "flow.toml"
    flow.write_text(textwrap.dedent(SLEEPS))
    db = root / "uet.db"
    return flow, db, real_run(flow, db, workers=4)["run_id"]


def simulate_json(cli: CliRunner, *args: str) -> dict[str, Any]:
    result = cli.invoke(main, ["simulate", *args, "--json"])
    assert result.exit_code == 0, result.output
    prediction: dict[str, Any] = json.loads(result.stdout)
    return prediction


class TestPrediction:
    def test_predicts_a_real_run_within_ten_percent(
        self, cli: CliRunner, recorded: tuple[Path, Path, str]
    ) -> None:
        """Durations from a 4-worker run predict a 2-worker run's wall time and critical path."""
        flow, db_path, run_id = recorded
        prediction = simulate_json(
            cli, str(flow), "--workers", "2", "--durations", run_id, "--db", str(db_path)
        )
        assert prediction["estimated"] == []
        actual = real_run(flow, db_path, workers=2)
        with Store.open(db_path) as store:
            record = store.get_run(actual["run_id"])
            assert record.started_at is not None and record.finished_at is not None
            wall = record.finished_at - record.started_at
            steps = report.critical_path(
                store.tasks(actual["run_id"]),
                store.ready_causes(actual["run_id"]),
                run_started=record.started_at,
            )
        assert abs(prediction["wall"] - wall) <= 0.10 * wall, (prediction["wall"], wall)
        predicted_path = [step["task_id"] for step in prediction["critical_path"]["steps"]]
        assert predicted_path == [step.task_id for step in steps]
        assert predicted_path == ["setup", "short-1", "finish"]
        assert prediction["critical_path"]["steps"][1]["waited"] > 0.5

    def test_more_workers_never_predict_longer(
        self, cli: CliRunner, recorded: tuple[Path, Path, str]
    ) -> None:
        """On recent durations one worker costs the sum, three workers the longest chain."""
        flow, db_path, _ = recorded
        walls = {
            n: simulate_json(cli, str(flow), "-j", str(n), "--db", str(db_path)) for n in (1, 2, 3)
        }
        assert walls[1]["wall"] == walls[1]["busy"]
        assert walls[1]["wall"] > walls[2]["wall"] > walls[3]["wall"]
        assert [step["task_id"] for step in walls[3]["critical_path"]["steps"]] == [
            "setup",
            "long",
            "finish",
        ]
        assert walls[3]["durations_from"] == "recent runs"


class TestWithoutRecords:
    def test_unrecorded_tasks_count_one_second(
        self, cli: CliRunner, write_flow: Callable[[str], Path], tmp_path: Path
    ) -> None:
        """With no database every task counts 1 s, and the output says so."""
        flow = write_flow(SLEEPS)
        prediction = simulate_json(cli, str(flow), "-j", "3", "--db", str(tmp_path / "none.db"))
        assert prediction["wall"] == 3.0
        assert len(prediction["estimated"]) == 5
        text = cli.invoke(main, ["simulate", str(flow), "-j", "3", "--db", str(tmp_path / "x.db")])
        assert text.exit_code == 0
        assert "every task counted as 1s" in text.output
        assert "predicted wall time: 3.00s" in text.output
        assert not (tmp_path / "x.db").exists()


class TestErrors:
    def test_durations_of_another_workflow(
        self, cli: CliRunner, write_flow: Callable[..., Path], db_path: Path
    ) -> None:
        """A run of a different workflow is refused with exit 2, naming both workflows."""
        other = write_flow(
            """
            [workflow]
            name = "other"
            [[tasks]]
            id = "x"
            command = ["true"]
            """,
            "other.toml",
        )
        ran = cli.invoke(main, ["run", str(other), "--db", str(db_path), "--json"])
        assert ran.exit_code == 0, ran.output
        run_id = json.loads(ran.stdout)["run_id"]
        flow = write_flow(SLEEPS)
        result = cli.invoke(
            main, ["simulate", str(flow), "--durations", run_id, "--db", str(db_path)]
        )
        assert result.exit_code == 2
        assert "'other'" in result.output and "'sleepy'" in result.output

    def test_unknown_run(
        self, cli: CliRunner, write_flow: Callable[[str], Path], db_path: Path
    ) -> None:
        """An unknown --durations run is an error naming it (exit 3, like other commands)."""
        flow = write_flow(SLEEPS)
        Store.open(db_path).close()
        result = cli.invoke(
            main, ["simulate", str(flow), "--durations", "nosuchrun", "--db", str(db_path)]
        )
        assert result.exit_code == 3
        assert "nosuchrun" in result.output

    def test_bad_workflow_names_file_task_and_field(
        self, cli: CliRunner, write_flow: Callable[[str], Path]
    ) -> None:
        """An invalid workflow is exit 2 with file, task and field in the message."""
        flow = write_flow(
            """
            [workflow]
            name = "bad"
            [[tasks]]
            id = "a"
            command = ["true"]
            timeout = -1
            """
        )
        result = cli.invoke(main, ["simulate", str(flow)])
        assert result.exit_code == 2
        assert str(flow) in result.output
        assert "'a'" in result.output and "timeout" in result.output
