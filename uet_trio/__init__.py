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
    from .deciding.attempts import AttemptRequest as AttemptRequest
    from .deciding.attempts import AttemptResult as AttemptResult
    from .deciding.opening import open_workflow as open_workflow
    from .deciding.plan import Plan as Plan
    from .deciding.plan import PlannedRoute as PlannedRoute
    from .deciding.plan import PlannedTask as PlannedTask
    from .deciding.plan import Planner as Planner
    from .deciding.plan import plan_workflow as plan_workflow
    from .deciding.routing import RouteDecision as RouteDecision
    from .deciding.routing import Router as Router
    from .deciding.strategies import ToolMetrics as ToolMetrics
    from .errors import CycleError as CycleError
    from .errors import RunConflict as RunConflict
    from .errors import RunNotFound as RunNotFound
    from .errors import StoreError as StoreError
    from .errors import UetError as UetError
    from .errors import WorkflowError as WorkflowError
    from .recording.events import DataField as DataField
    from .recording.events import Event as Event
    from .recording.events import EventKind as EventKind
    from .recording.events import Severity as Severity
    from .recording.logs import LogUnavailable as LogUnavailable
    from .recording.logs import read_output as read_output
    from .recording.logs import slice_tail as slice_tail
    from .recording.logs import tail_lines as tail_lines
    from .recording.permissions import writable_by_others as writable_by_others
    from .recording.records import AttemptRecord as AttemptRecord
    from .recording.records import AttemptTiming as AttemptTiming
    from .recording.records import EventRecord as EventRecord
    from .recording.records import RouterStateRecord as RouterStateRecord
    from .recording.records import RunRecord as RunRecord
    from .recording.records import TaskRecord as TaskRecord
    from .recording.report import PathStep as PathStep
    from .recording.report import busy_seconds as busy_seconds
    from .recording.report import critical_path as critical_path
    from .recording.report import parallelism as parallelism
    from .recording.report import path_seconds as path_seconds
    from .recording.report import run_wall as run_wall
    from .recording.states import AttemptStatus as AttemptStatus
    from .recording.states import RunStatus as RunStatus
    from .recording.states import TaskState as TaskState
    from .recording.store import Store as Store
    from .recording.trace import chrome_trace as chrome_trace
    from .running.dry_run import DryRunTask as DryRunTask
    from .running.dry_run import dry_run as dry_run
    from .running.engine import Run as Run
    from .running.engine import RunResult as RunResult
    from .running.engine import open_run as open_run
    from .running.engine import run_workflow as run_workflow
    from .running.executors.base import AttemptRunner as AttemptRunner
    from .running.executors.dask import DaskRunner as DaskRunner
    from .running.executors.dask import open_dask_runner as open_dask_runner
    from .running.executors.dask_cluster import ClusterLost as ClusterLost
    from .running.executors.local import LocalRunner as LocalRunner
    from .running.executors.subreaper import become_subreaper as become_subreaper
    from .running.ownership import run_crashed as run_crashed
    from .running.prediction import PredictedStep as PredictedStep
    from .running.prediction import Prediction as Prediction
    from .running.prediction import predict as predict
    from .running.prediction import run_durations as run_durations
    from .running.preparation import new_run_id as new_run_id
    from .web.server import serve_web as serve_web
    from .workflow.graph import TaskGraph as TaskGraph
    from .workflow.graph import compile_graph as compile_graph
    from .workflow.loader import load_workflow as load_workflow
    from .workflow.loader import parse_workflow as parse_workflow
    from .workflow.spec import RetryPolicy as RetryPolicy
    from .workflow.spec import RoutingRule as RoutingRule
    from .workflow.spec import TaskSpec as TaskSpec
    from .workflow.spec import ToolSpec as ToolSpec
    from .workflow.spec import WorkflowSpec as WorkflowSpec
    from .workflow.targets import select_targets as select_targets

_EXPORTS = {
    "AttemptRequest": "deciding.attempts",
    "AttemptResult": "deciding.attempts",
    "open_workflow": "deciding.opening",
    "Plan": "deciding.plan",
    "PlannedRoute": "deciding.plan",
    "PlannedTask": "deciding.plan",
    "Planner": "deciding.plan",
    "plan_workflow": "deciding.plan",
    "DryRunTask": "running.dry_run",
    "dry_run": "running.dry_run",
    "select_targets": "workflow.targets",
    "RouteDecision": "deciding.routing",
    "Router": "deciding.routing",
    "ToolMetrics": "deciding.strategies",
    "CycleError": "errors",
    "RunConflict": "errors",
    "RunNotFound": "errors",
    "StoreError": "errors",
    "UetError": "errors",
    "WorkflowError": "errors",
    "PredictedStep": "running.prediction",
    "Prediction": "running.prediction",
    "predict": "running.prediction",
    "run_durations": "running.prediction",
    "DataField": "recording.events",
    "Event": "recording.events",
    "EventKind": "recording.events",
    "Severity": "recording.events",
    "LogUnavailable": "recording.logs",
    "read_output": "recording.logs",
    "slice_tail": "recording.logs",
    "tail_lines": "recording.logs",
    "writable_by_others": "recording.permissions",
    "AttemptRecord": "recording.records",
    "AttemptTiming": "recording.records",
    "EventRecord": "recording.records",
    "RouterStateRecord": "recording.records",
    "RunRecord": "recording.records",
    "TaskRecord": "recording.records",
    "PathStep": "recording.report",
    "busy_seconds": "recording.report",
    "critical_path": "recording.report",
    "parallelism": "recording.report",
    "path_seconds": "recording.report",
    "run_wall": "recording.report",
    "AttemptStatus": "recording.states",
    "RunStatus": "recording.states",
    "TaskState": "recording.states",
    "Store": "recording.store",
    "chrome_trace": "recording.trace",
    "Run": "running.engine",
    "RunResult": "running.engine",
    "open_run": "running.engine",
    "run_workflow": "running.engine",
    "AttemptRunner": "running.executors.base",
    "ClusterLost": "running.executors.dask_cluster",
    "DaskRunner": "running.executors.dask",
    "open_dask_runner": "running.executors.dask",
    "LocalRunner": "running.executors.local",
    "become_subreaper": "running.executors.subreaper",
    "run_crashed": "running.ownership",
    "new_run_id": "running.preparation",
    "serve_web": "web.server",
    "TaskGraph": "workflow.graph",
    "compile_graph": "workflow.graph",
    "load_workflow": "workflow.loader",
    "parse_workflow": "workflow.loader",
    "RetryPolicy": "workflow.spec",
    "RoutingRule": "workflow.spec",
    "TaskSpec": "workflow.spec",
    "ToolSpec": "workflow.spec",
    "WorkflowSpec": "workflow.spec",
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
