"""
The workflow language: foreach, placeholders, inputs and outputs, after, ok_exit_codes.

Workflow files are written to disk and loaded with `load_workflow` (or built
as documents for `parse_workflow`), globs run over real files, and the runs
go through the real engine with a real SQLite store and real commands; bad
files go through the CLI too, which must exit 2 naming the task and field.
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uet_trio_cli import main

from uet_trio import RunStatus, Store, TaskState, WorkflowSpec, run_workflow
from uet_trio.errors import WorkflowError
from uet_trio.workflow.graph import compile_graph
from uet_trio.workflow.loader import load_workflow, parse_workflow
from uet_trio.workflow.templates import path_parts

Write = Callable[..., Path]


def touch(root: Path, *paths: str) -> None:
    """Create empty files (and their directories) under `root`."""
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def load(write_flow: Write, text: str) -> WorkflowSpec:
    """Write `text` as flow.toml and load it the way ``uet`` does."""
    return load_workflow(write_flow(text))


def refused(write_flow: Write, text: str) -> WorkflowError:
    """The error loading `text` raises (and the graph compiled, as ``uet validate`` does)."""
    with pytest.raises(WorkflowError) as caught:
        compile_graph(load(write_flow, text))
    assert caught.value.exit_code == 2
    return caught.value


def ids(spec: WorkflowSpec) -> list[str]:
    return [task.id for task in spec.tasks]


def task(spec: WorkflowSpec, task_id: str) -> Any:
    return next(t for t in spec.tasks if t.id == task_id)


def deps(spec: WorkflowSpec, task_id: str) -> set[str]:
    """Every task `task_id` waits for in the compiled graph (declared and inferred)."""
    graph = compile_graph(spec)
    return {graph.ids[d] for d in graph.deps[graph.index[task_id]]}


class TestForeach:
    def test_a_list_gives_one_instance_per_value_in_order(self, write_flow: Write) -> None:
        """Each value is one task ``ID[key=value]``, in the order listed, numbers as text."""
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "shard"
            command = ["echo", "{n}"]
            foreach = { n = [3, 1, "two"] }
            """,
        )
        assert ids(spec) == ["shard[n=3]", "shard[n=1]", "shard[n=two]"]
        assert [t.argv(None) for t in spec.tasks] == [("echo", "3"), ("echo", "1"), ("echo", "two")]
        assert {t.group for t in spec.tasks} == {"shard"}

    def test_several_keys_give_the_cartesian_product_keys_in_declaration_order(
        self, write_flow: Write
    ) -> None:
        """Ids list the keys as declared (``py`` before ``opt``), the last key varying fastest."""
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "test"
            command = ["run", "{py}", "{opt}"]
            foreach = { py = ["3.11", "3.12"], opt = ["-O0", "-O2"] }
            """,
        )
        assert ids(spec) == [
            "test[py=3.11,opt=-O0]",
            "test[py=3.11,opt=-O2]",
            "test[py=3.12,opt=-O0]",
            "test[py=3.12,opt=-O2]",
        ]
        assert task(spec, "test[py=3.12,opt=-O2]").argv(None) == ("run", "3.12", "-O2")

    def test_a_glob_is_recursive_sorted_and_skips_hidden_files(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """``**`` descends; hidden files and directories are left out; matches are sorted."""
        touch(tmp_path, "c/z.c", "c/a.c", "c/dec/m.c", "c/dec/deep/b.c", "c/.hid.c")
        touch(tmp_path, "c/.cache/x.c", "c/notes.txt")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "compile"
            command = ["cc", "-c", "{src}"]
            foreach = { src = "c/**/*.c" }
            """,
        )
        assert ids(spec) == [
            "compile[src=c/a.c]",
            "compile[src=c/dec/deep/b.c]",
            "compile[src=c/dec/m.c]",
            "compile[src=c/z.c]",
        ]

    def test_a_glob_that_names_hidden_files_matches_them(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """A pattern whose component starts with a dot matches hidden names."""
        touch(tmp_path, "conf/.a.rc", "conf/.b.rc", "conf/c.rc")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "lint"
            command = ["lint", "{f}"]
            foreach = { f = "conf/.*.rc" }
            """,
        )
        assert ids(spec) == ["lint[f=conf/.a.rc]", "lint[f=conf/.b.rc]"]

    def test_a_glob_and_a_list_combine(self, write_flow: Write, tmp_path: Path) -> None:
        """A glob key and a list key give their product like two lists."""
        touch(tmp_path, "t/b.py", "t/a.py")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "test"
            command = ["python{py}", "{file}"]
            foreach = { file = "t/*.py", py = ["3.11", "3.12"] }
            """,
        )
        assert ids(spec) == [
            "test[file=t/a.py,py=3.11]",
            "test[file=t/a.py,py=3.12]",
            "test[file=t/b.py,py=3.11]",
            "test[file=t/b.py,py=3.12]",
        ]

    def test_a_glob_matching_nothing_is_exit_2_naming_task_and_pattern(
        self, write_flow: Write, cli: CliRunner
    ) -> None:
        """Through the loader and through ``uet validate``."""
        text = """
            [[tasks]]
            id = "compile"
            command = ["cc", "{src}"]
            foreach = { src = "nowhere/**/*.c" }
            """
        error = refused(write_flow, text)
        assert (error.task, error.field) == ("compile", "foreach.src")
        assert "'nowhere/**/*.c'" in error.message
        result = cli.invoke(main, ["validate", str(write_flow(text))])
        assert result.exit_code == 2
        assert "task 'compile'" in result.output and "nowhere/**/*.c" in result.output

    @pytest.mark.parametrize(
        ("foreach", "field", "message"),
        [
            ('{ x = ["a\\nb"] }', "foreach.x", "line break"),
            ('{ x = ["a\\u0000"] }', "foreach.x", "NUL"),
            ('{ x = ["a", "a"] }', "foreach.x", "'a' is listed twice"),
            ("{ x = [] }", "foreach.x", "at least one value"),
            ("{ x = [true] }", "foreach.x", "strings or numbers"),
            ("{}", "foreach", "at least one key"),
            ('{ p = ["a"] }', "foreach.p", "both a foreach key and a param"),
            ('{ inputs = ["a"] }', "foreach.inputs", "reserved"),
        ],
    )
    def test_bad_foreach_tables_name_the_field(
        self, write_flow: Write, foreach: str, field: str, message: str
    ) -> None:
        """Duplicates, empty lists, odd values, shadowed params and reserved names are refused."""
        error = refused(
            write_flow,
            f"""
            [[tasks]]
            id = "t"
            command = ["true"]
            params = {{ p = "1" }}
            foreach = {foreach}
            """,
        )
        assert (error.task, error.field) == ("t", field)
        assert message in error.message


class TestPlaceholders:
    def test_foreach_keys_and_params_fill_every_field_of_an_own_command_task(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """command, inputs, outputs, env values and cwd, with params beside the foreach keys."""
        touch(tmp_path, "src/a.c", "src/b.c")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "cc"
            foreach = { src = "src/*.c" }
            params = { flags = "-O2", out = "build" }
            command = ["cc", "{flags}", "-c", "{src}", "-o", "{out}/{src.stem}.o"]
            inputs = ["{src}"]
            outputs = ["{out}/{src.stem}.o"]
            env = { UNIT = "{src.name}:{flags}" }
            cwd = "{src.parent}"
            """,
        )
        b = task(spec, "cc[src=src/b.c]")
        assert b.argv(None) == ("cc", "-O2", "-c", "src/b.c", "-o", "build/b.o")
        assert (b.inputs, b.outputs) == (("src/b.c",), ("build/b.o",))
        assert dict(b.env) == {"UNIT": "b.c:-O2"} and b.cwd == "src"

    def test_tool_templates_see_foreach_keys_and_path_parts(self, write_flow: Write) -> None:
        """A routed instance renders its tool's template with its own values."""
        spec = load(
            write_flow,
            """
            [tools.cc]
            command = ["cc", "-c", "{src}", "-o", "{outputs}", "-DNAME={src.stem}"]
            kinds = ["compile"]

            [[tasks]]
            id = "compile"
            kind = "compile"
            foreach = { src = ["lib/x.c", "lib/sub/y.c"] }
            outputs = ["obj/{src.stem}.o"]
            """,
        )
        tool = spec.tools["cc"]
        assert task(spec, "compile[src=lib/sub/y.c]").argv(tool) == (
            "cc",
            "-c",
            "lib/sub/y.c",
            "-o",
            "obj/y.o",
            "-DNAME=y",
        )

    @pytest.mark.parametrize(
        ("value", "parts"),
        [
            ("c/dec/decode.c", ("decode.c", "decode", ".c", "c/dec")),
            ("archive.tar.gz", ("archive.tar.gz", "archive.tar", ".gz", ".")),
            ("/abs/Makefile", ("Makefile", "Makefile", "", "/abs")),
            (".bashrc", (".bashrc", ".bashrc", "", ".")),
        ],
    )
    def test_path_parts_are_pathlibs(
        self, write_flow: Write, value: str, parts: tuple[str, ...]
    ) -> None:
        """``{v.name}``, ``{v.stem}``, ``{v.suffix}``, ``{v.parent}``: PurePosixPath's parts."""
        spec = load(
            write_flow,
            f"""
            [[tasks]]
            id = "t"
            command = ["{{v.name}}", "{{v.stem}}", "{{v.suffix}}", "{{v.parent}}"]
            params = {{ v = "{value}" }}
            """,
        )
        assert spec.tasks[0].argv(None) == parts

    def test_doubled_braces_are_literal_everywhere(self, write_flow: Write) -> None:
        """``{{`` and ``}}`` in command, paths, env and cwd stand for one brace."""
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "t"
            foreach = { v = ["a"] }
            command = ["awk", "{{ print $1 }}", "{v}"]
            outputs = ["out/{{{v}}}.txt"]
            env = { JSON = "{{\\"v\\": \\"{v}\\"}}" }
            cwd = "{{dir}}"
            """,
        )
        (t,) = spec.tasks
        assert t.argv(None) == ("awk", "{ print $1 }", "a")
        assert t.outputs == ("out/{a}.txt",)
        assert dict(t.env) == {"JSON": '{"v": "a"}'} and t.cwd == "{dir}"

    @pytest.mark.parametrize(
        ("field_toml", "field"),
        [
            ('command = ["echo", "{nope}"]', "command"),
            ('command = ["true"]\ninputs = ["{nope}.c"]', "inputs"),
            ('command = ["true"]\noutputs = ["{v}/{nope.stem}.o"]', "outputs"),
            ('command = ["true"]\nenv = { X = "{nope}" }', "env.X"),
            ('command = ["true"]\ncwd = "{nope}"', "cwd"),
        ],
    )
    @pytest.mark.parametrize("fanned_out", [False, True])
    def test_an_unknown_placeholder_is_an_error_naming_task_and_field(
        self, write_flow: Write, cli: CliRunner, field_toml: str, field: str, fanned_out: bool
    ) -> None:
        """Never a silent literal: validation names the task as written and the field."""
        spread = 'foreach = { v = ["a", "b"] }' if fanned_out else 'params = { v = "a" }'
        path = write_flow(f'[[tasks]]\nid = "t"\n{spread}\n{field_toml}\n')
        with pytest.raises(WorkflowError) as caught:
            load_workflow(path)
        assert (caught.value.task, caught.value.field) == ("t", field)
        assert "{nope" in caught.value.message
        result = cli.invoke(main, ["validate", str(path)])
        assert result.exit_code == 2 and "task 't'" in result.output

    def test_a_tool_placeholder_no_task_fills_names_the_task(self, write_flow: Write) -> None:
        """A tool template asking for a value the instance lacks is refused at validation."""
        error = refused(
            write_flow,
            """
            [tools.cc]
            command = ["cc", "{src}", "{flags}"]
            kinds = ["compile"]

            [[tasks]]
            id = "compile"
            kind = "compile"
            foreach = { src = ["a.c"] }
            """,
        )
        assert error.task == "compile[src=a.c]" and "flags" in error.message

    def test_list_placeholders_expand_to_one_argument_per_path(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """``{inputs}``: declared order, each glob's matches sorted; inside text, joined."""
        touch(tmp_path, "parts/b.txt", "parts/a.txt", "parts/c.dat", "head.txt")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "cat"
            command = ["cat", "{inputs}", "-o", "{outputs}", "all: {inputs}"]
            inputs = ["head.txt", "parts/*.txt", "parts/c.dat"]
            outputs = ["all.txt", "index.txt"]
            """,
        )
        assert spec.tasks[0].argv(None) == (
            "cat",
            "head.txt",
            "parts/a.txt",
            "parts/b.txt",
            "parts/c.dat",
            "-o",
            "all.txt",
            "index.txt",
            "all: head.txt parts/a.txt parts/b.txt parts/c.dat",
        )

    async def test_list_placeholders_reach_the_real_command(
        self, write_flow: Write, tmp_path: Path, store: Store
    ) -> None:
        """A path with a space stays one argument; the command writes what it was given."""
        (tmp_path / "a b.txt").write_text("first\n")
        (tmp_path / "c.txt").write_text("second\n")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "join"
            command = ["sh", "-c", "cat \\"$@\\" > out.txt; echo $# > argc.txt", "sh", "{inputs}"]
            inputs = ["*.txt"]
            outputs = ["out.txt", "argc.txt"]
            """,
        )
        assert spec.tasks[0].inputs == ("a b.txt", "c.txt")
        result = await run_workflow(spec, store=store, max_workers=1)
        assert result.status is RunStatus.SUCCEEDED
        assert (tmp_path / "out.txt").read_text() == "first\nsecond\n"
        assert (tmp_path / "argc.txt").read_text() == "2\n"

    @pytest.mark.parametrize("name", ["inputs", "outputs"])
    def test_a_param_cannot_shadow_a_list_placeholder(self, write_flow: Write, name: str) -> None:
        """``{inputs}`` would mean two things; the param is refused."""
        error = refused(
            write_flow, f'[[tasks]]\nid = "t"\ncommand = ["true"]\nparams = {{ {name} = "x" }}\n'
        )
        assert (error.task, error.field) == ("t", f"params.{name}")

    async def test_placeholders_reach_env_and_cwd_of_real_commands(
        self, write_flow: Write, tmp_path: Path, store: Store
    ) -> None:
        """Each instance runs in its own rendered cwd with its own rendered env value."""
        for region in ("eu", "us"):
            (tmp_path / "regions" / region).mkdir(parents=True)
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "report"
            foreach = { region = ["eu", "us"] }
            params = { year = "2026" }
            command = ["sh", "-c", "echo \\"$LABEL\\" > label.txt"]
            cwd = "regions/{region}"
            env = { LABEL = "{region}-{year}" }
            """,
        )
        result = await run_workflow(spec, store=store, max_workers=2)
        assert result.status is RunStatus.SUCCEEDED
        assert (tmp_path / "regions/eu/label.txt").read_text() == "eu-2026\n"
        assert (tmp_path / "regions/us/label.txt").read_text() == "us-2026\n"


class TestDependencies:
    FANNED = """
        [[tasks]]
        id = "compile"
        command = ["true"]
        foreach = { src = ["a", "b", "c"] }

        [[tasks]]
        id = "link"
        command = ["true"]
        depends_on = ["compile"]

        [[tasks]]
        id = "one"
        command = ["true"]
        depends_on = ["compile[src=b]"]
        """

    def test_a_fanned_out_id_means_every_instance_an_instance_id_one(
        self, write_flow: Write
    ) -> None:
        spec = load(write_flow, self.FANNED)
        assert deps(spec, "link") == {"compile[src=a]", "compile[src=b]", "compile[src=c]"}
        assert deps(spec, "one") == {"compile[src=b]"}

    @pytest.mark.parametrize("first", ['foreach = { src = ["z"] }', ""])
    def test_two_task_tables_with_one_id_are_refused(self, write_flow: Write, first: str) -> None:
        """Their instance ids differ, but ``compile`` would name two sets of tasks."""
        error = refused(
            write_flow,
            self.FANNED + f'\n[[tasks]]\nid = "compile"\ncommand = ["true"]\n{first}\n',
        )
        assert (error.task, error.field, error.message) == ("compile", "id", "duplicate task id")

    def test_an_unknown_instance_id_is_refused(self, write_flow: Write) -> None:
        error = refused(write_flow, self.FANNED.replace("compile[src=b]", "compile[src=z]"))
        assert (error.task, error.field) == ("one", "depends_on")
        assert "compile[src=z]" in error.message

    def test_an_input_glob_over_declared_outputs_infers_the_dependencies(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """The link step's glob matches outputs not written yet; it waits for each producer."""
        touch(tmp_path, "src/x.c", "src/y.c", "src/z.c")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "compile"
            foreach = { src = "src/*.c" }
            command = ["cc", "-c", "{src}", "-o", "{outputs}"]
            inputs = ["{src}"]
            outputs = ["./build//{src.stem}.o"]

            [[tasks]]
            id = "link"
            command = ["cc", "-o", "{outputs}", "{inputs}"]
            inputs = ["build/**/*.o"]
            outputs = ["app"]
            """,
        )
        link = task(spec, "link")
        assert link.inputs == ("build/x.o", "build/y.o", "build/z.o")
        assert link.depends_on == ()
        assert deps(spec, "link") == {f"compile[src=src/{n}.c]" for n in "xyz"}

    def test_an_input_path_that_another_task_writes_infers_one_dependency(
        self, write_flow: Write
    ) -> None:
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "gen"
            command = ["true"]
            outputs = ["data/table.csv"]

            [[tasks]]
            id = "plot"
            command = ["true"]
            inputs = ["data/table.csv", "style.cfg"]
            """,
        )
        assert deps(spec, "plot") == {"gen"}

    def test_an_input_glob_skips_hidden_outputs_and_the_tasks_own(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """
        Matching declared outputs follows glob: ``*`` skips hidden names. A
        task's own outputs are never its inputs, even once they exist on disk.
        """
        touch(tmp_path, "data/a.csv", "data/summary.csv")
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "fetch"
            command = ["true"]
            outputs = ["data/b.csv", "data/.partial.csv"]

            [[tasks]]
            id = "summarise"
            command = ["true"]
            inputs = ["data/*.csv"]
            outputs = ["data/summary.csv"]
            """,
        )
        assert task(spec, "summarise").inputs == ("data/a.csv", "data/b.csv")
        assert deps(spec, "summarise") == {"fetch"}

    def test_an_input_glob_matching_only_directories_matches_nothing(
        self, write_flow: Write, tmp_path: Path
    ) -> None:
        """Inputs are files whose content counts: a directory is not one."""
        (tmp_path / "pkgs" / "one").mkdir(parents=True)
        error = refused(
            write_flow, '[[tasks]]\nid = "t"\ncommand = ["true"]\ninputs = ["pkgs/*"]\n'
        )
        assert (error.task, error.field) == ("t", "inputs") and "'pkgs/*'" in error.message

    def test_two_tasks_with_one_output_are_exit_2_naming_both(
        self, write_flow: Write, cli: CliRunner
    ) -> None:
        path = write_flow(
            """
            [[tasks]]
            id = "first"
            command = ["true"]
            outputs = ["out/report.txt"]

            [[tasks]]
            id = "second"
            command = ["true"]
            outputs = ["out/./report.txt"]
            """
        )
        result = cli.invoke(main, ["validate", str(path)])
        assert result.exit_code == 2
        assert "'first'" in result.output and "'second'" in result.output
        assert "out/report.txt" in result.output

    def test_an_output_that_is_also_an_input_is_exit_2(self, write_flow: Write) -> None:
        error = refused(
            write_flow,
            """
            [[tasks]]
            id = "inplace"
            command = ["sed", "-i", "s/a/b/", "{inputs}"]
            inputs = ["notes.txt"]
            outputs = ["notes.txt"]
            """,
        )
        assert (error.task, error.field) == ("inplace", "outputs")
        assert "'notes.txt' is both an input and an output" in error.message

    def test_stem_collisions_between_globbed_files_are_caught_at_validation(
        self, write_flow: Write, tmp_path: Path, cli: CliRunner
    ) -> None:
        """a/x.c and b/x.c both make build/x.o: exit 2 naming both instances."""
        touch(tmp_path, "a/x.c", "b/x.c", "b/y.c")
        path = write_flow(
            """
            [[tasks]]
            id = "compile"
            foreach = { src = "**/*.c" }
            command = ["cc", "-c", "{src}", "-o", "{outputs}"]
            outputs = ["build/{src.stem}.o"]
            """
        )
        result = cli.invoke(main, ["validate", str(path)])
        assert result.exit_code == 2
        assert "compile[src=a/x.c]" in result.output and "compile[src=b/x.c]" in result.output
        assert "build/x.o" in result.output

    async def test_link_waits_for_every_compile_in_a_real_run(
        self, write_flow: Write, tmp_path: Path, store: Store
    ) -> None:
        """The inferred edges hold at run time: link starts after the last compile succeeded."""
        for name in ("p", "q", "r", "s"):
            (tmp_path / "src" / f"{name}.txt").parent.mkdir(exist_ok=True)
            (tmp_path / "src" / f"{name}.txt").write_text(f"{name}\n")
        (tmp_path / "obj").mkdir()
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "compile"
            foreach = { src = "src/*.txt" }
            command = ["sh", "-c", "sleep 0.05; tr a-z A-Z <$1 >$2", "sh", "{src}", "{outputs}"]
            inputs = ["{src}"]
            outputs = ["obj/{src.stem}.up"]

            [[tasks]]
            id = "link"
            command = ["sh", "-c", "cat \\"$@\\" > linked.txt", "sh", "{inputs}"]
            inputs = ["obj/*.up"]
            outputs = ["linked.txt"]
            """,
        )
        result = await run_workflow(spec, store=store, max_workers=3)
        assert result.status is RunStatus.SUCCEEDED
        assert (tmp_path / "linked.txt").read_text() == "P\nQ\nR\nS\n"
        events = store.events(result.run_id)
        compiled = [e.seq for e in events if e.kind == "task_succeeded" and e.task_id != "link"]
        (link_ready,) = [e.seq for e in events if e.kind == "task_ready" and e.task_id == "link"]
        assert len(compiled) == 4 and max(compiled) < link_ready


class TestFinishing:
    FLOW = """
        [[tasks]]
        id = "test"
        foreach = { n = ["1", "2", "3"] }
        command = ["sh", "-c", "echo {n} >> ran.txt; test {n} != 2"]

        [[tasks]]
        id = "summary"
        command = ["sh", "-c", "echo summary >> ran.txt"]
        after = ["test"]

        [[tasks]]
        id = "publish"
        command = ["sh", "-c", "echo publish >> ran.txt"]
        depends_on = ["test"]

        [[tasks]]
        id = "cleanup"
        command = ["sh", "-c", "echo cleanup >> ran.txt"]
        after = ["publish"]
        """

    async def test_after_runs_once_deps_finish_even_failed_depends_on_is_skipped(
        self, write_flow: Write, tmp_path: Path, store: Store
    ) -> None:
        """
        ``summary`` runs after every test, one of which failed; ``publish``
        needs them to succeed and is skipped; ``cleanup`` comes after a skipped task and runs.
        """
        spec = load(write_flow, self.FLOW)
        result = await run_workflow(spec, store=store, max_workers=2)
        assert result.status is RunStatus.FAILED
        assert result.states == {
            "test[n=1]": TaskState.SUCCEEDED,
            "test[n=2]": TaskState.FAILED,
            "test[n=3]": TaskState.SUCCEEDED,
            "summary": TaskState.SUCCEEDED,
            "publish": TaskState.SKIPPED,
            "cleanup": TaskState.SUCCEEDED,
        }
        lines = (tmp_path / "ran.txt").read_text().split()
        assert sorted(lines) == ["1", "2", "3", "cleanup", "summary"]
        assert lines.index("summary") > max(lines.index(n) for n in "123")

    async def test_after_and_depends_on_both_wait_when_everything_succeeds(
        self, write_flow: Write, tmp_path: Path, store: Store
    ) -> None:
        """With no failure, ``after`` is an ordinary ordering edge."""
        spec = load(write_flow, self.FLOW.replace("test {n} != 2", "true"))
        result = await run_workflow(spec, store=store, max_workers=2)
        assert result.status is RunStatus.SUCCEEDED
        lines = (tmp_path / "ran.txt").read_text().split()
        assert sorted(lines[:3]) == ["1", "2", "3"]
        assert lines.index("cleanup") > lines.index("publish")

    async def test_ok_exit_codes_make_other_codes_successes(
        self, write_flow: Write, store: Store
    ) -> None:
        """Exit 5 succeeds where listed, fails where not; exit 3 fails despite the list."""
        spec = load(
            write_flow,
            """
            [[tasks]]
            id = "no-tests"
            command = ["sh", "-c", "exit 5"]
            ok_exit_codes = [0, 5]

            [[tasks]]
            id = "strict"
            command = ["sh", "-c", "exit 5"]

            [[tasks]]
            id = "broken"
            command = ["sh", "-c", "exit 3"]
            ok_exit_codes = [0, 5]

            [[tasks]]
            id = "next"
            command = ["true"]
            depends_on = ["no-tests"]
            """,
        )
        result = await run_workflow(spec, store=store, max_workers=2)
        assert result.states == {
            "no-tests": TaskState.SUCCEEDED,
            "strict": TaskState.FAILED,
            "broken": TaskState.FAILED,
            "next": TaskState.SUCCEEDED,
        }
        codes = {row.task_id: row.exit_code for row in store.attempts(result.run_id)}
        assert codes == {"no-tests": 5, "strict": 5, "broken": 3, "next": 0}
        tasks = {row.task_id: row.exit_code for row in store.tasks(result.run_id)}
        assert tasks == codes

    @pytest.mark.parametrize("codes", ["[]", "[256]", "[-1]", '["5"]'])
    def test_bad_exit_code_lists_are_refused(self, write_flow: Write, codes: str) -> None:
        error = refused(
            write_flow, f'[[tasks]]\nid = "t"\ncommand = ["true"]\nok_exit_codes = {codes}\n'
        )
        assert (error.task, error.field) == ("t", "ok_exit_codes")


# ------------------------------------------------------------ properties

_KEYS = st.lists(
    st.sampled_from(["src", "py", "opt", "n", "shard", "mode"]), min_size=1, max_size=3, unique=True
)
_VALUE = st.one_of(
    st.text(
        st.characters(codec="utf-8", exclude_characters="{}[],=\0\n\r", exclude_categories=["Cs"]),
        min_size=1,
        max_size=8,
    ),
    st.integers(min_value=-(10**6), max_value=10**6),
)


@st.composite
def _foreach_tables(draw: st.DrawFn) -> dict[str, list[Any]]:
    """A foreach table: 1-3 keys, each with 1-4 values that are distinct as text."""
    table: dict[str, list[Any]] = {}
    for key in draw(_KEYS):
        values = draw(st.lists(_VALUE, min_size=1, max_size=4, unique_by=str))
        table[key] = values
    return table


@settings(max_examples=60, deadline=None)
@given(foreach=_foreach_tables())
def test_expansion_is_deterministic_with_unique_ids(foreach: dict[str, list[Any]]) -> None:
    """
    Loading the same table twice gives equal specs; one instance per
    combination, its id ``ID[key=value,...]`` in declaration order, all unique.
    """
    document = {
        "workflow": {"name": "p"},
        "tasks": [
            {"id": "t", "command": ["run", *(f"{{{key}}}" for key in foreach)], "foreach": foreach},
            {"id": "after-all", "command": ["true"], "depends_on": ["t"]},
        ],
    }
    first = parse_workflow(document, base_dir=Path("/nonexistent"))
    second = parse_workflow(document, base_dir=Path("/nonexistent"))
    assert first == second and first.fingerprint() == second.fingerprint()
    instances = [t for t in first.tasks if t.group == "t"]
    combos = list(itertools.product(*([(k, str(v)) for v in vs] for k, vs in foreach.items())))
    assert [t.id for t in instances] == [
        "t[" + ",".join(f"{k}={v}" for k, v in combo) + "]" for combo in combos
    ]
    assert len({t.id for t in first.tasks}) == len(first.tasks) == len(combos) + 1
    assert [t.argv(None) for t in instances] == [("run", *(v for _, v in c)) for c in combos]
    assert set(task(first, "after-all").depends_on) == {t.id for t in instances}


_NAME = st.sampled_from(["a", "b", "x", ".h", "_u"])
_FILE = st.tuples(st.lists(_NAME, max_size=2), _NAME, st.sampled_from([".o", ".c", ""])).map(
    lambda parts: "/".join([*parts[0], parts[1] + parts[2]])
)
_PATTERNS = ["**/*.o", "*.o", "a/*", "a/**/*.o", "?.o", "[ab]/*", "**/.*", ".h/*.o", "**/x*"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.sets(_FILE, min_size=1, max_size=8), pattern=st.sampled_from(_PATTERNS))
def test_an_input_glob_matches_declared_outputs_as_it_matches_files(
    files: set[str], pattern: str
) -> None:
    """
    The same paths, once as files on disk and once as outputs not written
    yet, give the same inputs, so a task's dependencies do not change after the first run.
    """
    paths = sorted(files)
    # A path cannot be both a file and a directory: keep the ones that nest without conflict.
    paths = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    on_disk: list[str] | None
    declared: list[str] | None
    with tempfile.TemporaryDirectory() as scratch:
        disk, empty = Path(scratch, "disk"), Path(scratch, "empty")
        empty.mkdir()
        touch(disk, *paths)
        on_disk = _inputs_of(disk, pattern, [])
        declared = _inputs_of(empty, pattern, paths)
    assert on_disk == declared
    if on_disk is not None:
        assert on_disk == sorted(on_disk)
        regex = re.compile(r"(^|/)\.")
        assert not pattern.startswith(("**/.", ".")) or all(regex.search(p) for p in on_disk)


def _inputs_of(base: Path, pattern: str, outputs: list[str]) -> list[str] | None:
    """The reader's inputs for `pattern` (None: it matches nothing) with `outputs` declared."""
    document: dict[str, Any] = {
        "workflow": {"name": "g"},
        "tasks": [{"id": "reader", "command": ["true"], "inputs": [pattern]}],
    }
    if outputs:
        document["tasks"].insert(0, {"id": "writer", "command": ["true"], "outputs": outputs})
    try:
        spec = parse_workflow(document, base_dir=base)
    except WorkflowError as error:
        if "matches no file and no declared output" not in error.message:
            raise
        return None
    return list(task(spec, "reader").inputs)


def test_cli_validate_counts_instances(write_flow: Write, cli: CliRunner) -> None:
    """``uet validate`` sees the expanded workflow."""
    path = write_flow(
        """
        [[tasks]]
        id = "t"
        command = ["echo", "{a}{b}"]
        foreach = { a = ["1", "2", "3"], b = ["x", "y"] }
        """
    )
    result = cli.invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "6 tasks" in result.output


@settings(max_examples=300, deadline=None)
@given(value=st.lists(st.sampled_from(["/", ".", "..", "a", "b.c", ".d", "e.", " "]), max_size=6))
def test_path_parts_match_pathlib(value: list[str]) -> None:
    """The parts are computed from the string, exactly as PurePosixPath computes them."""
    text = "".join(value) or "x"
    path = PurePosixPath(text)
    assert path_parts(text) == (path.name, path.stem, path.suffix, str(path.parent))


def test_a_json_file_expands_as_the_toml_one(write_flow: Write, tmp_path: Path) -> None:
    """foreach, globs and placeholders do not depend on the file format."""
    touch(tmp_path, "src/a.c", "src/b.c")
    toml = load(
        write_flow,
        """
        [[tasks]]
        id = "cc"
        foreach = { src = "src/*.c", opt = ["-O0", 2] }
        command = ["cc", "{opt}", "{src}", "-o", "{outputs}"]
        outputs = ["build/{src.stem}{opt}.o"]

        [[tasks]]
        id = "link"
        command = ["cc", "{inputs}"]
        inputs = ["build/*.o"]
        """,
    )
    document = {
        "tasks": [
            {
                "id": "cc",
                "foreach": {"src": "src/*.c", "opt": ["-O0", 2]},
                "command": ["cc", "{opt}", "{src}", "-o", "{outputs}"],
                "outputs": ["build/{src.stem}{opt}.o"],
            },
            {"id": "link", "command": ["cc", "{inputs}"], "inputs": ["build/*.o"]},
        ]
    }
    json_path = write_flow(json.dumps(document), "flow.json")
    from_json = load_workflow(json_path)
    assert from_json.tasks == toml.tasks
    assert ids(from_json)[1] == "cc[src=src/a.c,opt=2]"
    assert task(from_json, "link").inputs == (
        "build/a-O0.o",
        "build/a2.o",
        "build/b-O0.o",
        "build/b2.o",
    )


def test_a_shell_tool_quotes_each_listed_path(write_flow: Write, tmp_path: Path) -> None:
    """With ``shell = true`` the list stands inside one string, each path shell-quoted."""
    touch(tmp_path, "in/a b.txt", "in/c.txt")
    spec = load(
        write_flow,
        """
        [tools.cat]
        command = ["cat {inputs} > {outputs}"]
        kinds = ["cat"]
        shell = true

        [[tasks]]
        id = "join"
        kind = "cat"
        inputs = ["in/*.txt"]
        outputs = ["out file.txt"]
        """,
    )
    assert spec.tasks[0].argv(spec.tools["cat"]) == (
        "/bin/sh",
        "-c",
        "cat 'in/a b.txt' in/c.txt > 'out file.txt'",
    )
