"""``uet gc``: delete old runs' rows and log files, one transaction per run."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import click

from ._common import (
    echo_json,
    open_store,
    plural,
    store_option,
)

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

if TYPE_CHECKING:
    # Recent click releases make ParamType generic in (value, input); older ones,
    # which pyproject allows, cannot subscript it at run time.
    _FloatParam = click.ParamType[float, str | float]
else:
    _FloatParam = click.ParamType


class Age(_FloatParam):
    """An age such as ``7d``, ``12h``, ``30m``, ``90s`` or ``2w``, in seconds."""

    name = "age"

    def convert(
        self, value: str | float, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
        if match is None:
            self.fail(f"{value!r} is not an age like 7d, 12h, 30m, 90s or 2w", param, ctx)
        return float(match.group(1)) * _AGE_UNITS[match.group(2)]


@click.command()
@store_option
@click.option("--keep", type=click.IntRange(min=0), help="Keep the N most recent runs.")
@click.option("--older-than", "older_than", type=Age(), help="Delete runs older than this (7d).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def gc(db: str, keep: int | None, older_than: float | None, dry_run: bool, as_json: bool) -> None:
    """
    Delete old finished runs: their rows and their log files.

    With both options a run must satisfy both to go. Each run is deleted in
    its own transaction; runs still pending or running are never deleted.
    """
    if keep is None and older_than is None:
        raise click.UsageError("give --keep N, --older-than AGE, or both")
    created_before = time.time() - older_than if older_than is not None else None
    deleted = []
    with open_store(db, writes=True) as store:
        for record in store.runs_to_collect(keep=keep, created_before=created_before):
            files = 0 if dry_run else store.delete_run(record.run_id)
            deleted.append({"run_id": record.run_id, "status": record.status, "log_files": files})
            if not as_json:
                verb = "would delete" if dry_run else "deleted"
                click.echo(
                    f"{verb} run {record.run_id} ({record.status}, {plural(files, 'log file')})"
                )
    if as_json:
        echo_json({"dry_run": dry_run, "deleted": deleted})
    elif not deleted:
        click.echo("nothing to delete")


COMMANDS = [gc]
