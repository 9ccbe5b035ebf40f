"""
The ``uet`` command line.

This package parses arguments, calls `uet_trio`, and renders what it returns;
it holds no runtime logic. Each module adds one group of commands. Library
errors become exit codes in exactly one place, `UetGroup.invoke`: 2 for a bad
workflow or usage, 3 for a run that cannot be taken, 4 for storage errors,
and 141 (128 + SIGPIPE, as a Unix tool killed by the closed pipe) for a view
whose reader went away (``uet events | head``). Output goes through
`_common.echo`, which drops what a stream that went away can no longer take.
Modules import `uet_trio` inside their commands, and a command's module is
imported only when that command runs (`COMMAND_MODULES`), so ``uet run``
does not pay for the views' modules and ``uet --help`` stays fast. The
``uet`` script is `entry`, which runs `main` and exits quickly.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import click

from ._common import Program, echo, flush_standard_streams, hold_standard_streams, silence

EXIT_PIPE = 141
"""A view's reader went away: 128 + SIGPIPE, what the shell reports for ``seq | head``."""

COMMAND_MODULES = {
    "events": "_events",
    "gc": "_gc",
    "graph": "_graph",
    "logs": "_events",
    "plan": "_plan",
    "resume": "_run",
    "run": "_run",
    "runs": "_inspect",
    "serve": "_serve",
    "show": "_inspect",
    "simulate": "_simulate",
    "tools": "_tools",
    "trace": "_trace",
    "validate": "_plan",
}
"""Each command's name and the module (in this package) whose ``COMMANDS`` defines it."""

YOUNG_COLLECTION_THRESHOLD = 50_000
"""
Allocations between two collections of the youngest generation (Python's default: 700).

Importing Trio, click and uet_trio allocates a few hundred thousand
tracked objects, nearly all of which live until the process ends; at the
default threshold a 1-task ``uet run`` spent ~60 collections (8 ms) walking
them. A run itself allocates few tracked objects, so the threshold changes
little after start-up, and the young generation stays small in memory.
"""


class UetGroup(click.Group):
    """
    The root group: turns `uet_trio.UetError` into a message and its exit code,
    and a reader that went away into a quiet stop.

    Commands are found by name in `COMMAND_MODULES` and their module is
    imported on first use: a command's module brings its own imports (the
    views', the run's), and a process runs one command. Listing the commands
    (``uet --help``) imports them all.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            for command in importlib.import_module(f".{module}", __name__).COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        from uet_trio import UetError

        try:
            return super().invoke(ctx)
        except UetError as error:
            echo(f"uet: error: {error}", err=True)
            ctx.exit(error.exit_code)
        except BrokenPipeError:
            # A view command (uet events, logs, runs, show) printing to a pipe
            # nobody reads any more: stop, without a traceback. `uet run`
            # never gets here: its output goes through `echo`, which drops it.
            silence(err=False)
            silence(err=True)
            ctx.exit(EXIT_PIPE)


@click.group(cls=UetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uet-trio", prog_name="uet")
def main() -> None:
    """Run workflows of commands on Trio, recorded in SQLite."""


def entry() -> None:
    """
    The ``uet`` console script: `main`, then an exit without the final collection.

    Collections are rarer for the whole process (`YOUNG_COLLECTION_THRESHOLD`),
    which the program may decide, as the owner of its process.

    Before the process exits, every object it made is moved out of the
    garbage collector's reach (`gc.freeze`): the interpreter's last cycle
    collection would otherwise walk everything Trio, click and uet_trio
    imported (40-50 ms at the end of `uet run`), for memory the operating
    system takes back anyway. Nothing is lost by it: output is flushed at exit as
    before, and the store closes its connection when a command ends.

    Standard streams closed at start are held on os.devnull first, and both
    output streams are flushed here, where a stream that went away is
    silenced, rather than in Python's own flush at exit, which would print
    "Exception ignored" and exit 120. click prints its own messages (usage
    errors) outside `UetGroup.invoke`; one written to a pipe nobody reads
    exits `EXIT_PIPE`, as a Unix tool killed by SIGPIPE while writing it would.
    """
    hold_standard_streams()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
    try:
        # The program owns its process: runs adopt the tasks' orphaned daemons.
        main(obj=Program(adopt_orphans=True))
    except BrokenPipeError:
        silence(err=False)
        silence(err=True)
        sys.exit(EXIT_PIPE)
    finally:
        flush_standard_streams()
        gc.freeze()
