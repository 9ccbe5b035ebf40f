"""
uet-trio: a local workflow runtime on Trio structured concurrency.

Describe a DAG of tasks (commands, tool templates routed by kind, or async
callables), run it on bounded workers with timeouts, retries and fallbacks,
and find every run, task, attempt and event recorded in SQLite.

This module is the public face: it only re-exports. Names are loaded on first
use, so a command that only validates a file does not pay for importing Trio.
Test helpers live in `uet_trio.testing`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .attempts import AttemptRequest as AttemptRequest
    from .attempts import AttemptResult as AttemptResult
    from .attempts import AttemptRunner as AttemptRunner
    from .attempts import LocalRunner as LocalRunner
    from .engine import Run as Run
    from .engine import RunResult as RunResult
    from .engine import new_run_id as new_run_id
    from .engine import open_run as open_run
    from .engine import run_workflow as run_workflow
    from .errors import CycleError as CycleError
    from .errors import RunConflict as RunConflict
    from .errors import RunNotFound as RunNotFound
    from .errors import StoreError as StoreError
    from .errors import UetError as UetError
    from .errors import WorkflowError as WorkflowError
    from .events import Event as Event
    from .events import EventKind as EventKind
    from .events import Severity as Severity
    from .graph import TaskGraph as TaskGraph
    from .graph import compile_graph as compile_graph
    from .loader import load_workflow as load_workflow
    from .loader import parse_workflow as parse_workflow
    from .routing import RouteDecision as RouteDecision
    from .routing import Router as Router
    from .spec import RetryPolicy as RetryPolicy
    from .spec import RoutingRule as RoutingRule
    from .spec import TaskSpec as TaskSpec
    from .spec import ToolSpec as ToolSpec
    from .spec import WorkflowSpec as WorkflowSpec
    from .states import RunStatus as RunStatus
    from .states import TaskState as TaskState
    from .store import Store as Store

_EXPORTS = {
    "AttemptRequest": "attempts",
    "AttemptResult": "attempts",
    "AttemptRunner": "attempts",
    "LocalRunner": "attempts",
    "Run": "engine",
    "RunResult": "engine",
    "new_run_id": "engine",
    "open_run": "engine",
    "run_workflow": "engine",
    "CycleError": "errors",
    "RunConflict": "errors",
    "RunNotFound": "errors",
    "StoreError": "errors",
    "UetError": "errors",
    "WorkflowError": "errors",
    "Event": "events",
    "EventKind": "events",
    "Severity": "events",
    "TaskGraph": "graph",
    "compile_graph": "graph",
    "load_workflow": "loader",
    "parse_workflow": "loader",
    "RouteDecision": "routing",
    "Router": "routing",
    "RetryPolicy": "spec",
    "RoutingRule": "spec",
    "TaskSpec": "spec",
    "ToolSpec": "spec",
    "WorkflowSpec": "spec",
    "RunStatus": "states",
    "TaskState": "states",
    "Store": "store",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'uet_trio' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
