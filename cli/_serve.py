"""``uet serve``: the store's live web view, on loopback by default."""

from __future__ import annotations

import signal

import click

from ._common import echo, store_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port; the URL printed names it).",
)
@store_option
def serve(host: str, port: int, db: str) -> None:
    """
    Serve a live, read-only web view of the store until interrupted.

    Pages: the runs; a run's DAG coloured by task state, its timeline of
    attempts per worker, its failed tasks with their output's last lines,
    and every task's log, followed while it runs. Pages update by themselves
    while a run is in progress. The store (the nearest .uet/uet.db here or
    above, unless --db names one) is opened read-only and never created.
    Listens on loopback unless --host says otherwise: anyone who can reach
    the address can read every recorded command and its output.
    Needs the web extra: pip install 'uet-trio[web]'.
    """
    import trio

    from uet_trio import UetError

    try:
        from uet_trio import serve_web
    except ImportError as error:
        raise click.UsageError(
            f"uet serve needs the web extra ({error.name} is missing): pip install 'uet-trio[web]'"
        ) from None

    async def main() -> None:
        stop = trio.Event()

        async def stopped() -> None:
            await stop.wait()

        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: serve_web(
                        db, host=host, port=port, shutdown_trigger=stopped, task_status=task_status
                    )
                )
                for url in binds:
                    echo(f"uet: serving {db} at {url}/ (Ctrl-C stops)")
                async for _ in signals:
                    stop.set()
                    break

    try:
        trio.run(main)
    except* UetError as group:
        raise group.exceptions[0] from None
    except* OSError as group:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {group.exceptions[0]}"
        ) from None


COMMANDS = [serve]
