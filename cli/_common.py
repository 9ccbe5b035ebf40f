"""Options and helpers shared by the ``uet`` commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from uet_trio import RunStatus

if TYPE_CHECKING:
    from uet_trio import Store

DEFAULT_DB = ".uet/uet.db"

STATUSES = tuple(status.value for status in RunStatus)
"""Every run status, in the order a run moves through them."""

F = TypeVar("F", bound=Callable[..., Any])


def db_option(function: F) -> F:
    """``--db PATH`` (or ``UET_DB``): the run database."""
    return click.option(
        "--db",
        "db",
        envvar="UET_DB",
        default=DEFAULT_DB,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="The run database (env: UET_DB).",
    )(function)


def open_store(path: str, *, check: bool = False) -> Store:
    """Open the store at `path` (raises `StoreError`, which the root group reports)."""
    from uet_trio import Store

    return Store.open(path, check=check)


def resolve_run(store: Store, run: str | None, last: bool) -> str:
    """The run id named by a RUN argument (any unique prefix) or ``--last``."""
    if last or run is None:
        if run is not None and last:
            raise click.UsageError("give a RUN or --last, not both")
        if not last:
            raise click.UsageError("give a RUN id (or a unique prefix of one) or --last")
        return store.last_run()
    return store.resolve_run(run)


def echo_json(document: Any) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


def colour(text: str, fg: str) -> str:
    """`text` in colour when stdout is a terminal, plain otherwise."""
    if sys.stdout.isatty():
        return click.style(text, fg=fg)
    return text


def label(text: str, fg: str) -> str:
    """A seven-column status label, padded before colouring so columns line up."""
    return colour(text.ljust(7), fg)


def seconds(value: float | None) -> str:
    """A duration for people: 0.52s, 1m03s, 2h05m."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.2f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
