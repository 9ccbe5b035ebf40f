"""`uet plan` and `uet graph` show a fanned-out task once, with its instance count."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from uet_trio_cli import main

FLOW = """
[[tasks]]
id = "compile"
foreach = { name = ["a", "b", "c"] }
outputs = ["build/{name}.o"]
command = ["touch", "{outputs}"]

[[tasks]]
id = "link"
inputs = ["build/*.o"]
outputs = ["app"]
command = ["cat", "{inputs}"]
"""


def flow(tmp_path: Path) -> str:
    path = tmp_path / "flow.toml"
    path.write_text(FLOW)
    return str(path)


def test_plan_groups_instances(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", flow(tmp_path), "--db", str(tmp_path / "u.db")])
    assert result.exit_code == 0, result.output
    assert "compile[...]  3 instances, the first: compile[name=a]" in result.output
    assert "cat build/a.o build/b.o build/c.o" in result.output
    assert "compile[name=b]" not in result.output


def test_plan_json_names_each_instance_and_its_group(tmp_path: Path) -> None:
    db = str(tmp_path / "u.db")
    result = CliRunner().invoke(main, ["plan", flow(tmp_path), "--db", db, "--json"])
    level0 = json.loads(result.output)["levels"][0]
    assert [(task["task_id"], task["group"]) for task in level0] == [
        ("compile[name=a]", "compile"),
        ("compile[name=b]", "compile"),
        ("compile[name=c]", "compile"),
    ]


def test_graph_has_one_node_per_task_unless_expanded(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["graph", flow(tmp_path), "--db", str(tmp_path / "u.db")])
    assert result.exit_code == 0, result.output
    assert '["compile [3]"]' in result.output
    assert result.output.count("-->") == 1
    expanded = CliRunner().invoke(
        main, ["graph", flow(tmp_path), "--expand", "--db", str(tmp_path / "u.db")]
    )
    assert '["compile[name=b]"]' in expanded.output
    assert expanded.output.count("-->") == 3
