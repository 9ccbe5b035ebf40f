"""The compiled graph, the ready set and argv templates (no event loop needed)."""

from __future__ import annotations

import pytest

from uet_trio import TaskSpec, WorkflowError, WorkflowSpec, compile_graph
from uet_trio.workflow.graph import ReadySet
from uet_trio.workflow.templates import placeholders, render


def spec_of(edges: dict[str, list[str]]) -> WorkflowSpec:
    return WorkflowSpec(
        name="g",
        tasks=[TaskSpec(id=t, command=["true"], depends_on=deps) for t, deps in edges.items()],
    )


class TestGraph:
    def test_levels_are_topological_layers(self) -> None:
        graph = compile_graph(spec_of({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}))
        assert [[graph.ids[i] for i in level] for level in graph.levels] == [
            ["a", "e"],
            ["b", "c"],
            ["d"],
        ]
        assert graph.descendants(graph.index["a"]) == [1, 2, 3]

    def test_ready_set_releases_on_last_dependency(self) -> None:
        graph = compile_graph(spec_of({"a": [], "b": [], "c": ["a", "b"]}))
        ready = ReadySet(graph, [0, 1, 2])
        assert ready.roots() == [0, 1]
        assert ready.release(0) == []
        assert ready.release(1) == [2]

    def test_ready_set_pops_in_its_order(self) -> None:
        graph = compile_graph(spec_of({"a": [], "b": [], "c": [], "d": []}))
        ready = ReadySet(graph, [1, 3, 0, 2])
        for i in (0, 2, 3):
            ready.push(i)
        assert ready.pop() == 3
        ready.push(1)
        assert [ready.pop() for _ in range(4)] == [1, 0, 2, None]

    def test_duplicate_dependencies_count_once(self) -> None:
        graph = compile_graph(spec_of({"a": [], "b": ["a", "a"]}))
        ready = ReadySet(graph, [0, 1])
        assert ready.release(0) == [1]


class TestTemplates:
    def test_each_element_renders_to_one_argument(self) -> None:
        argv = render(
            ["tool", "--path={path}", "{evil}"], {"path": "a b", "evil": "; rm -rf / \n$(x)"}
        )
        assert argv == ("tool", "--path=a b", "; rm -rf / \n$(x)")

    def test_braces_escape(self) -> None:
        assert render(["{{literal}}", "{x}"], {"x": "1"}) == ("{literal}", "1")
        assert placeholders(["{{no}}", "{yes}", "a{b}c"]) == {"yes", "b"}

    def test_shell_tools_quote_params(self) -> None:
        argv = render(["echo {msg}"], {"msg": "hi; rm -rf /"}, shell=True)
        assert argv == ("/bin/sh", "-c", "echo 'hi; rm -rf /'")

    def test_bad_placeholders_are_workflow_errors(self) -> None:
        with pytest.raises(WorkflowError, match="bad placeholder"):
            placeholders(["{a b}"])
        with pytest.raises(WorkflowError, match="no param for placeholder"):
            render(["{missing}"], {})
