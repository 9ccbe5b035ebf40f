"""
Deterministic schedules for tests: a scripted runner and a mock-clock simulator.

`FakeRunner` plugs into the engine through the same executor seam
(`AttemptRunner`) as the real `LocalRunner`, but starts no process: each
attempt sleeps for its scripted duration on the Trio clock and ends with its
scripted outcome, under the same timeout, retry and cancellation rules.
`simulate` runs a workflow with it under
``trio.testing.MockClock(autojump_threshold=0)``, so virtual time passes
instantly and the event sequence is identical run after run.

This module is public face only: it re-exports.
"""

from .running.executors.scripted import FakeRunner, Outcome, Script
from .running.simulation import Simulation, simulate, simulate_async

__all__ = ["FakeRunner", "Outcome", "Script", "Simulation", "simulate", "simulate_async"]
