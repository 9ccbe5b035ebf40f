"""
Hostile input and secrets: names that become files, arguments, secrets, permissions, output.

Workflow files may be written by someone else. Names that reach the file
system go through one safe mapping, planted symlinks are not followed,
parameters reach commands as exactly one argument each (or are refused with
a message), secrets and environment values never reach the database, files
are private to their owner, and output that is not UTF-8 is kept byte for
byte and shown without errors.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from uet_trio_cli import main

from uet_trio import Store
from uet_trio.recording.logs import run_log_dir
from uet_trio.recording.states import RunStatus
from uet_trio.running.engine import run_workflow
from uet_trio.workflow.spec import TaskSpec, WorkflowSpec

from .conftest import UET, run_uet

HOSTILE_NAMES = [
    "..",
    ".",
    "../../etc/passwd",
    "/abs/path",
    ".hidden",
    "a/b",
    "a_b",
    "a\\b",
    "-rf",
    "x" * 500,
    "ünïcödé",
    "tab\there",
    "a_b-" + "0" * 16,
]

# Prints each argument as hex of its exact bytes, one JSON list on stdout.
ARGV_DUMP = "import json, os, sys; print(json.dumps([os.fsencode(a).hex() for a in sys.argv[1:]]))"


class TestSafeNames:
    # The run directory's name mapping itself: tests/test_logs.py.
    async def test_hostile_ids_and_tool_names_create_files_only_in_the_log_dir(
        self, tmp_path: Path
    ) -> None:
        """Hostile run id, task ids and tool names: every file lands inside the log root."""
        log_root = tmp_path / "logs"
        tasks = [
            TaskSpec(id=name, command=("sh", "-c", "echo out; echo err >&2"))
            for name in HOSTILE_NAMES
        ]
        spec = WorkflowSpec(name="../../w", tasks=tasks, max_workers=2, base_dir=tmp_path)
        with Store.open(tmp_path / "db" / "uet.db") as store:
            result = await run_workflow(spec, store=store, log_root=log_root, run_id="../../../x")
            assert result.status is RunStatus.SUCCEEDED
            for attempt in store.attempts(result.run_id):
                assert attempt.out_path is not None
                assert Path(attempt.out_path).parent.parent == log_root
        created = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
        run_dir = run_log_dir(log_root, "../../../x").name
        assert [p for p in created if p.startswith("logs")] == [
            "logs",
            f"logs/{run_dir}",
            f"logs/{run_dir}/w0.err",
            f"logs/{run_dir}/w0.out",
            f"logs/{run_dir}/w1.err",
            f"logs/{run_dir}/w1.out",
        ]
        assert {p.split("/")[0] for p in created} == {"logs", "db"}


class TestPlantedSymlinks:
    def _spec(self, tmp_path: Path) -> WorkflowSpec:
        return WorkflowSpec(
            name="planted",
            tasks=[TaskSpec(id=f"t{i}", command=("echo", "payload")) for i in range(3)],
            max_workers=1,
            base_dir=tmp_path,
        )

    @pytest.mark.parametrize("target", ["file", "/dev/full"])
    async def test_symlink_at_a_log_file_is_not_followed(self, tmp_path: Path, target: str) -> None:
        """A symlink where ``w0.out`` goes: attempts fail with the reason; its target is intact."""
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        run_dir = tmp_path / "logs" / "r1"
        run_dir.mkdir(parents=True)
        (run_dir / "w0.out").symlink_to(victim if target == "file" else Path(target))
        with Store.open(tmp_path / "uet.db") as store:
            result = await run_workflow(
                self._spec(tmp_path), store=store, log_root=tmp_path / "logs", run_id="r1"
            )
            assert result.status is RunStatus.FAILED
            attempts = store.attempts("r1")
        assert len(attempts) == 3
        for attempt in attempts:
            assert attempt.exit_code == 126
            assert attempt.error is not None
            assert attempt.error.startswith("cannot open log files")
        assert victim.read_text() == "precious\n"

    async def test_symlink_at_the_run_directory_is_not_followed(self, tmp_path: Path) -> None:
        """The run's log directory planted as a symlink: nothing is written where it points."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "r2").symlink_to(elsewhere)
        with Store.open(tmp_path / "uet.db") as store:
            result = await run_workflow(
                self._spec(tmp_path), store=store, log_root=tmp_path / "logs", run_id="r2"
            )
            assert result.status is RunStatus.FAILED
            errors = {a.error for a in store.attempts("r2")}
        assert len(errors) == 1
        assert next(iter(errors)).startswith("cannot open log files")  # type: ignore[union-attr]
        assert list(elsewhere.iterdir()) == []

    async def test_unwritable_log_root_fails_attempts_and_the_run_ends(
        self, tmp_path: Path
    ) -> None:
        """The log root is a regular file: each attempt fails with the reason; the run ends."""
        blocker = tmp_path / "logs"
        blocker.write_text("not a directory")
        with Store.open(tmp_path / "uet.db") as store:
            result = await run_workflow(
                self._spec(tmp_path), store=store, log_root=blocker, run_id="r3"
            )
            assert result.status is RunStatus.FAILED
            assert store.get_run("r3").status == "failed"
            attempts = store.attempts("r3")
        assert [a.exit_code for a in attempts] == [126, 126, 126]
        assert all(a.error and "cannot open log files" in a.error for a in attempts)


def _json_flow(tmp_path: Path, document: dict[str, object], name: str = "flow.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


HOSTILE_VALUES = [
    "; rm -rf / #",
    "$(touch pwned) `touch pwned2`",
    "line one\nline two\r\n",
    "'\"\\",
    "*",
    "-rf",
    "",
    "  spaced  ",
    "\udcff\udcfe raw bytes",
    "emoji \U0001f600 and é",
]


class TestArguments:
    @pytest.mark.parametrize("shell", [False, True])
    def test_each_param_reaches_the_command_as_exactly_one_argument(
        self, tmp_path: Path, shell: bool
    ) -> None:
        """Metacharacters, newlines, quotes, globs, non-UTF-8: unchanged, one argument each."""
        params = {f"p{i}": value for i, value in enumerate(HOSTILE_VALUES)}
        placeholders = [f"{{p{i}}}" for i in range(len(HOSTILE_VALUES))]
        if shell:
            command = [f"{sys.executable} -c '{ARGV_DUMP}' " + " ".join(placeholders)]
        else:
            command = [sys.executable, "-c", ARGV_DUMP, *placeholders]
        flow = _json_flow(
            tmp_path,
            {
                "tools": {"dump": {"command": command, "kinds": ["dump"], "shell": shell}},
                "tasks": [{"id": "t", "kind": "dump", "params": params}],
            },
        )
        db = tmp_path / "uet.db"
        result = run_uet("run", flow, "--db", db, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        logs = run_uet("logs", "--last", "t", "--db", db, cwd=tmp_path)
        assert logs.returncode == 0, logs.stderr
        received = [bytes.fromhex(item) for item in json.loads(logs.stdout)]
        assert received == [os.fsencode(value) for value in HOSTILE_VALUES]
        assert not (tmp_path / "pwned").exists()
        assert not (tmp_path / "pwned2").exists()

    @pytest.mark.parametrize(
        ("document", "task", "field"),
        [
            ({"tasks": [{"id": "t", "command": ["echo", "a\u0000b"]}]}, "t", "command"),
            (
                {
                    "tools": {"e": {"command": ["echo", "{p}"], "kinds": ["k"]}},
                    "tasks": [{"id": "t", "kind": "k", "params": {"p": "x\u0000"}}],
                },
                "t",
                "params.p",
            ),
            ({"tasks": [{"id": "t", "command": ["true"], "env": {"K": "\u0000"}}]}, "t", "env.K"),
            ({"tasks": [{"id": "t", "command": ["true"], "env": {"A=B": "v"}}]}, "t", "env"),
            ({"tasks": [{"id": "t", "command": ["echo", "\ud800"]}]}, "t", "command"),
            ({"tasks": [{"id": "bad\udc80", "command": ["true"]}]}, None, "id"),
        ],
    )
    def test_unpassable_values_are_refused_with_file_task_and_field(
        self,
        tmp_path: Path,
        cli: CliRunner,
        document: dict[str, object],
        task: str | None,
        field: str,
    ) -> None:
        """NUL, '=' in an env name and unencodable surrogates: exit 2, naming file, task, field."""
        flow = _json_flow(tmp_path, document)
        for command in ("validate", "plan"):
            result = cli.invoke(main, [command, str(flow)])
            assert result.exit_code == 2, result.output
            assert str(flow) in result.output
            if task is not None:
                assert f"task {task!r}" in result.output
            assert f"field {field!r}" in result.output
            assert "Traceback" not in result.output

    def test_nul_in_a_toml_file_is_refused(
        self, write_flow: Callable[..., Path], cli: CliRunner
    ) -> None:
        """TOML spells NUL as an escape; it is refused the same way."""
        flow = write_flow(
            """
            [[tasks]]
            id = "t"
            command = ["echo", "a\\u0000b"]
            """
        )
        result = cli.invoke(main, ["validate", str(flow)])
        assert result.exit_code == 2
        assert "NUL" in result.output
        assert "task 't'" in result.output


SECRET = "s3cr3t-PARAM-value"
ENV_SECRET = "env-SECRET-value"


class TestSecrets:
    def test_secrets_and_env_never_reach_the_store_but_reach_the_command(
        self, tmp_path: Path, write_flow: Callable[..., Path]
    ) -> None:
        """A secret param is *** in events, show, plan and -v output; env values are nowhere."""
        received = tmp_path / "received"
        flow = write_flow(
            f"""
            [tools.deploy]
            command = ["sh", "-c", 'printf "%s|%s" "$1" "$API_KEY" >"{received}"', "-", "{{token}}"]
            kinds = ["deploy"]
            env = {{ TOOL_ENV = "tool-{ENV_SECRET}" }}

            [[tasks]]
            id = "ship"
            kind = "deploy"
            params = {{ token = {{ value = "{SECRET}", secret = true }} }}
            env = {{ API_KEY = "{ENV_SECRET}" }}

            [[tasks]]
            id = "fails"
            kind = "deploy"
            params = {{ token = {{ value = "{SECRET}", secret = true }} }}
            env = {{ API_KEY = "{ENV_SECRET}" }}
            cwd = "missing-dir"
            """
        )
        db = tmp_path / ".uet" / "uet.db"
        run = run_uet("run", flow, "--db", db, "-v", cwd=tmp_path)
        assert run.returncode == 1, run.stderr
        assert received.read_text() == f"{SECRET}|{ENV_SECRET}"
        outputs = {"run -v": run.stdout + run.stderr}
        for args in (
            ["events", "--last", "--json"],
            ["events", "--last"],
            ["show", "--last"],
            ["show", "--last", "--json"],
            ["runs", "--json"],
        ):
            shown = run_uet(*args, "--db", db, cwd=tmp_path)
            assert shown.returncode in (0, 1), shown.stderr
            outputs[" ".join(args)] = shown.stdout + shown.stderr
        for args in (["plan"], ["plan", "--json"]):
            shown = run_uet(*args, flow, cwd=tmp_path)
            assert shown.returncode == 0, shown.stderr
            outputs[" ".join(args)] = shown.stdout
        for name, text in outputs.items():
            assert SECRET not in text, name
            assert ENV_SECRET not in text, name
        assert "***" in outputs["events --last --json"]
        assert "***" in outputs["plan"]
        with Store.open(db) as store:
            assert store.integrity_check() == "ok"
        for path in db.parent.iterdir():
            if path.is_file():
                raw = path.read_bytes()
                assert SECRET.encode() not in raw, path
                assert ENV_SECRET.encode() not in raw, path


class TestPermissions:
    def test_database_and_logs_are_private_even_with_umask_0(self, tmp_path: Path) -> None:
        """0600 files and 0700 directories whatever the umask."""
        flow = tmp_path / "flow.toml"
        flow.write_text('[[tasks]]\nid = "t"\ncommand = ["echo", "hi"]\n')
        result = subprocess.run(
            [*UET, "run", str(flow)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            preexec_fn=lambda: os.umask(0),
        )
        assert result.returncode == 0, result.stderr
        home = tmp_path / ".uet"
        modes = {
            path.relative_to(home).as_posix(): stat.S_IMODE(path.stat().st_mode)
            for path in [home, *home.rglob("*")]
        }
        assert modes["."] == 0o700
        assert modes["uet.db"] == 0o600
        assert modes["logs"] == 0o700
        for name, mode in modes.items():
            is_dir = (home / name).is_dir()
            assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
        assert any(name.endswith(".out") for name in modes)


class TestOutputBytes:
    def test_invalid_and_split_utf8_is_kept_raw_and_shown_replaced(self, tmp_path: Path) -> None:
        """Non-UTF-8 bytes and characters split across writes: raw in logs, U+FFFD in text views."""
        script = (
            "import sys, time\n"
            "text = 'é€😀'.encode()\n"
            "for stream in (sys.stdout.buffer, sys.stderr.buffer):\n"
            "    stream.write(b'bad \\xff\\xfe |' + text[:3]); stream.flush()\n"
            "    time.sleep(0.05)\n"
            "    stream.write(text[3:] + b'| end\\n'); stream.flush()\n"
            "sys.exit(3)\n"
        )
        flow = _json_flow(
            tmp_path,
            {"tasks": [{"id": "bytes", "command": [sys.executable, "-c", script]}]},
        )
        db = tmp_path / "uet.db"
        result = run_uet("run", flow, "--db", db, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        expected = b"bad \xff\xfe |" + "é€😀".encode() + b"| end\n"
        with Store.open(db) as store:
            (attempt,) = store.attempts(store.last_run())
        for path, offset, length in (
            (attempt.out_path, attempt.out_offset, attempt.out_length),
            (attempt.err_path, attempt.err_offset, attempt.err_length),
        ):
            assert path is not None
            assert offset is not None
            with open(path, "rb") as log:
                log.seek(offset)
                assert log.read(length) == expected
        raw = subprocess.run(
            [*UET, "logs", "--last", "bytes", "--db", str(db)],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert raw.returncode == 0, raw.stderr
        assert raw.stdout == expected
        for as_json in (False, True):
            shown = run_uet(
                "show", "--last", "--db", db, *(["--json"] if as_json else []), cwd=tmp_path
            )
            assert shown.returncode in (0, 1), shown.stderr
            assert "Traceback" not in shown.stderr
            if as_json:
                assert "bad \ufffd\ufffd |é€😀| end" in json.dumps(
                    json.loads(shown.stdout), ensure_ascii=False
                )
            else:
                assert "bad \ufffd\ufffd |é€😀| end" in shown.stdout

    async def test_a_non_utf8_command_name_is_recorded_readably(self, tmp_path: Path) -> None:
        """A missing command whose name is not UTF-8 fails (127) with a storable message."""
        spec = WorkflowSpec(
            name="raw",
            tasks=[TaskSpec(id="t", command=[str(tmp_path / "missing-\udcff")])],
        )
        with Store.open(tmp_path / "uet.db") as store:
            result = await run_workflow(spec, store=store, log_root=tmp_path / "logs")
            assert result.status is RunStatus.FAILED
            (attempt,) = store.attempts(result.run_id)
            (event,) = store.events(result.run_id, kinds=["task_failed"])
        assert attempt.exit_code == 127
        assert attempt.error is not None and "missing-\ufffd" in attempt.error
        assert "missing-\ufffd" in event.data["error"]
