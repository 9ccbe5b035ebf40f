"""``uet trace``: a run's attempts as a Chrome trace-event file, for Perfetto or chrome://tracing."""

from __future__ import annotations

import json

import click

from ._common import open_view_store, resolve_run, store_option


@click.command()
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="The most recent run.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="Write the trace to this file ('-': standard output).",
)
@store_option
def trace(run: str | None, last: bool, output: str, db: str) -> None:
    """
    Write RUN as Chrome trace-event JSON: one slice per attempt on its worker's lane.

    Open the file in https://ui.perfetto.dev or chrome://tracing. Slices are
    named by task id and carry the attempt number, status, exit code, tool and
    routing; the time a task waited for a worker or for its retry is shown as
    "queued" and "retry wait" slices.
    """
    from uet_trio import chrome_trace

    with open_view_store(db) as store:
        document = chrome_trace(store, resolve_run(store, run, last))
    text = json.dumps(document, separators=(",", ":"))
    try:
        with click.open_file(output, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    except OSError as error:
        if output == "-":
            raise
        raise click.FileError(output, hint=error.strerror) from None


COMMANDS = [trace]
