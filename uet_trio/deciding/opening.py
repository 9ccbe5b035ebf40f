"""
Opening a workflow file: loaded, compiled and checked, ready to plan or run.

`open_workflow` checks everything that can be checked without running the
workflow, the way ``uet run``, ``uet plan`` and ``uet validate`` all take
it. It is apart from `plan` so that a run does not import the plan's
record classes it never builds.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import WorkflowError
from ..workflow.graph import TaskGraph, compile_graph
from ..workflow.loader import load_workflow
from ..workflow.spec import WorkflowSpec
from .routing import check_routing


def open_workflow(path: str | Path) -> tuple[WorkflowSpec, TaskGraph]:
    """
    Load the workflow file at `path` and compile its graph, ready to plan or run.

    Checks what a run would otherwise find only when it starts: the file's
    fields, the dependency graph (cycles, unknown dependencies) and the
    routing rules (registered strategies).

    Raises:
        WorkflowError: the file is missing or invalid; the message names the
            file and, where the problem belongs to one, the task and field.
    """
    spec = load_workflow(path)
    try:
        graph = compile_graph(spec)
        check_routing(spec)
    except WorkflowError as error:
        raise error.in_file(path) from None
    return spec, graph
