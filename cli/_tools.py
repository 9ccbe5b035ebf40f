"""``uet tools``: the tools' routing metrics that runs saved in the store."""

from __future__ import annotations

import time
from typing import Any

import click

from ._common import echo_json, open_view_store, seconds, store_option, visible


@click.command()
@store_option
@click.option("--workflow", "-w", metavar="NAME", help="Only this workflow's tools.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def tools(db: str, workflow: str | None, as_json: bool) -> None:
    """
    List tools with the metrics the router learnt: successes, failures, average duration.

    The router of each run starts from these numbers (unless uet run
    --fresh-routing) and saves them back as it goes, per workflow.
    """
    from uet_trio import ToolMetrics

    with open_view_store(db) as store:
        records = store.router_states()
    if workflow is not None:
        records = [record for record in records if record.workflow == workflow]
    rows: list[dict[str, Any]] = []
    for record in records:
        for name, saved in sorted(record.state.get("tools", {}).items()):
            metrics = ToolMetrics()
            metrics.restore(saved)
            rows.append(
                {
                    "workflow": record.workflow,
                    "tool": name,
                    "successes": metrics.successes,
                    "failures": metrics.failures,
                    "success_rate": metrics.success_rate,
                    "avg_duration": metrics.avg_duration,
                    "updated_at": record.updated_at,
                }
            )
    if as_json:
        echo_json(rows)
        return
    if not rows:
        which = f"workflow {workflow!r}" if workflow is not None else "any workflow"
        click.echo(f"no tool metrics for {which} in {db} yet; they are saved by `uet run`")
        return
    for row in rows:
        row["workflow"], row["tool"] = visible(row["workflow"]), visible(row["tool"])
    width = max(len(row["tool"]) for row in rows)
    shown = None
    for row in rows:
        if row["workflow"] != shown:
            shown = row["workflow"]
            updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["updated_at"]))
            click.echo(f"workflow {shown} (updated {updated})")
            click.echo(f"  {'tool':<{width}}  {'ok':>6}  {'failed':>6}  {'rate':>5}  avg duration")
        rate = row["success_rate"]
        click.echo(
            f"  {row['tool']:<{width}}  {row['successes']:>6}  {row['failures']:>6}  "
            f"{f'{rate:.0%}' if rate is not None else '-':>5}  {seconds(row['avg_duration'])}"
        )


COMMANDS = [tools]
