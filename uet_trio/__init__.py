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
    from .deciding.routing import RouteDecision as RouteDecision
    from .deciding.routing import Router as Router
    from .errors import CycleError as CycleError
    from .errors import RunConflict as RunConflict
    from .errors import RunNotFound as RunNotFound
    from .errors import StoreError as StoreError
    from .errors import UetError as UetError
    from .errors import WorkflowError as WorkflowError
    from .recording.events import Event as Event
    from .recording.events import EventKind as EventKind
    from .recording.events import Severity as Severity
    from .recording.states import RunStatus as RunStatus
    from .recording.states import TaskState as TaskState
    from .recording.store import Store as Store
    from .running.engine import Run as Run
    from .running.engine import RunResult as RunResult
    from .running.engine import new_run_id as new_run_id
    from .running.engine import open_run as open_run
    from .running.engine import run_workflow as run_workflow
    from .running.executors.base import AttemptRequest as AttemptRequest
    from .running.executors.base import AttemptResult as AttemptResult
    from .running.executors.base import AttemptRunner as AttemptRunner
    from .running.executors.base import LocalRunner as LocalRunner
    from .workflow.graph import TaskGraph as TaskGraph
    from .workflow.graph import compile_graph as compile_graph
    from .workflow.loader import load_workflow as load_workflow
    from .workflow.loader import parse_workflow as parse_workflow
    from .workflow.spec import RetryPolicy as RetryPolicy
    from .workflow.spec import RoutingRule as RoutingRule
    from .workflow.spec import TaskSpec as TaskSpec
    from .workflow.spec import ToolSpec as ToolSpec
    from .workflow.spec import WorkflowSpec as WorkflowSpec

_EXPORTS = {
    "AttemptRequest": "running.executors.base",
    "AttemptResult": "running.executors.base",
    "AttemptRunner": "running.executors.base",
    "LocalRunner": "running.executors.base",
    "Run": "running.engine",
    "RunResult": "running.engine",
    "new_run_id": "running.engine",
    "open_run": "running.engine",
    "run_workflow": "running.engine",
    "CycleError": "errors",
    "RunConflict": "errors",
    "RunNotFound": "errors",
    "StoreError": "errors",
    "UetError": "errors",
    "WorkflowError": "errors",
    "Event": "recording.events",
    "EventKind": "recording.events",
    "Severity": "recording.events",
    "TaskGraph": "workflow.graph",
    "compile_graph": "workflow.graph",
    "load_workflow": "workflow.loader",
    "parse_workflow": "workflow.loader",
    "RouteDecision": "deciding.routing",
    "Router": "deciding.routing",
    "RetryPolicy": "workflow.spec",
    "RoutingRule": "workflow.spec",
    "TaskSpec": "workflow.spec",
    "ToolSpec": "workflow.spec",
    "WorkflowSpec": "workflow.spec",
    "RunStatus": "recording.states",
    "TaskState": "recording.states",
    "Store": "recording.store",
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
