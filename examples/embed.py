"""
Embedding uet-trio in a Trio application.

Builds a workflow in Python (a command, a tool chosen by kind, and two async
Python callables), runs it in the application's own nursery with
`uet_trio.open_run`, prints progress from the run's event stream, and reads
the callables' recorded return values back from the store.

Usage: python examples/embed.py [DATABASE]   (default: an in-memory store)
"""

from __future__ import annotations

import sys

import trio
import trio.lowlevel

import uet_trio
from uet_trio import EventKind, Store, TaskSpec, ToolSpec, WorkflowSpec


async def count_words(text: str) -> int:
    """A Python task: any async callable; its JSON-serialisable result is recorded."""
    await trio.sleep(0.01)
    return len(text.split())


async def summarise(first: str, second: str) -> dict[str, str]:
    await trio.lowlevel.checkpoint()
    return {"summary": f"{first} and {second} are done"}


def build_workflow() -> WorkflowSpec:
    """The same workflow a TOML file could describe, validated by the same rules."""
    return WorkflowSpec(
        name="embedded",
        tools=[ToolSpec(name="echo", command=["echo", "{message}"], kinds=["say"])],
        tasks=[
            TaskSpec(id="greet", kind="say", params={"message": "hello from a tool"}),
            TaskSpec(id="list", command=["ls", "/"]),
            TaskSpec(id="count", call=count_words, args=["the quick brown fox"]),
            TaskSpec(
                id="summary",
                call=summarise,
                args=["greet", "count"],
                depends_on=["greet", "count", "list"],
            ),
        ],
        timeout=30,
    )


async def main(database: str | None) -> int:
    spec = build_workflow()
    store = Store.open(database) if database else Store.memory()
    with store:
        async with uet_trio.open_run(spec, store=store, max_workers=2) as run:
            print(f"run {run.run_id} started")
            async for event in run.events():
                if event.kind is EventKind.TASK_SUCCEEDED:
                    print(f"  {event.time:6.3f}s  {event.task_id} succeeded")
        result = await run.wait()
        succeeded = result.count(uet_trio.TaskState.SUCCEEDED)
        print(f"run {result.run_id} {result.status.value}: {succeeded} tasks")
        for attempt in store.attempts(result.run_id):
            if attempt.result is not None:
                print(f"  {attempt.task_id} returned {attempt.result!r}")
    return 0 if result.status is uet_trio.RunStatus.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1] if len(sys.argv) > 1 else None))
