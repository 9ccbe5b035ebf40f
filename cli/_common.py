"""Options and helpers shared by the ``uet`` commands."""

from __future__ import annotations

import errno
import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from uet_trio import RunStatus

if TYPE_CHECKING:
    from uet_trio import Store

DEFAULT_DB = ".uet/uet.db"

STATUSES = tuple(status.value for status in RunStatus)
"""Every run status, in the order a run moves through them."""

F = TypeVar("F", bound=Callable[..., Any])


class Program:
    """
    What the ``uet`` program has opted into, as the owner of its process.

    `entry` passes one as click's context object; commands run inside
    another program's process (click's test runner, an application) get the
    defaults: nothing process-wide.
    """

    __slots__ = ("adopt_orphans",)

    def __init__(self, *, adopt_orphans: bool = False) -> None:
        self.adopt_orphans = adopt_orphans
        """Runs make this process a child subreaper (`uet_trio.become_subreaper`)."""

    @classmethod
    def of(cls, ctx: click.Context) -> Program:
        """The program settings of the command being run."""
        return ctx.find_object(cls) or cls()


def flow_db_option(function: F) -> F:
    """
    ``--db PATH`` (or ``UET_DB``) for the commands given a workflow file FLOW
    (run, plan, graph, simulate): None unless given, and then `flow_store`,
    the store `uet run FLOW` keeps beside the file.
    """
    return click.option(
        "--db",
        "db",
        envvar="UET_DB",
        type=click.Path(dir_okay=False),
        help="The store (env: UET_DB). Default: .uet/uet.db in the workflow file's "
        "directory, where uet run FLOW keeps it.",
    )(function)


NO_STORE = "no uet store here or in any parent directory; run a workflow first or pass --db"


class NoStore(click.ClickException):
    """A command that only reads found no store: it creates none, and exits 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        echo(f"uet: error: {self.format_message()}", err=True)


class _StoreOption(click.Option):
    """``--db``, whose help names the store a view would read from where it is asked."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        found = find_store(Path.cwd())
        self.help = (
            "The store to read (env: UET_DB). Default: the nearest .uet/uet.db in the "
            f"current directory or above it; here: {found if found is not None else 'none'}."
        )
        return super().get_help_record(ctx)


def store_option(function: F) -> F:
    """
    ``--db PATH`` (or ``UET_DB``) and ``-v``, for the commands that read a store.

    The command gets ``db``: the path given, or else the nearest
    ``.uet/uet.db`` in the current directory or a parent of it, as git finds
    ``.git`` (`locate_store`); with ``-v`` it first says on stderr which
    store it reads. None found is `NoStore` (exit 2): nothing is created.
    """

    @functools.wraps(function)
    def command(*args: Any, db: str | None, say_store: bool, **kwargs: Any) -> Any:
        path = locate_store(db)
        if say_store:
            echo(f"uet: reading the store {path}", err=True)
        return function(*args, db=path, **kwargs)

    with_verbose = click.option(
        "-v",
        "--verbose",
        "say_store",
        is_flag=True,
        help="Say on stderr which store is read.",
    )(command)
    return cast(
        F,
        click.option(
            "--db",
            "db",
            cls=_StoreOption,
            envvar="UET_DB",
            default=None,
            metavar="PATH",
            type=click.Path(dir_okay=False),
        )(with_verbose),
    )


def locate_store(db: str | None) -> str:
    """
    The store a command that only reads uses: `db` when given (it must
    exist), else the nearest ``.uet/uet.db`` from the current directory up.

    Raises:
        NoStore: there is none; nothing is created.
    """
    if db is not None:
        if not os.path.isfile(db):
            raise NoStore(f"no uet store at {db}; run a workflow first or pass another --db")
        return db
    found = find_store(Path.cwd())
    if found is None:
        raise NoStore(NO_STORE)
    return str(found)


def flow_store(flow: str) -> str:
    """The store of `uet run FLOW` by default: ``.uet/uet.db`` in the workflow file's directory."""
    return os.path.join(os.path.dirname(flow) or ".", DEFAULT_DB)


def find_store(start: Path) -> Path | None:
    """
    The nearest ``.uet/uet.db`` in `start` or a directory above it, as git finds ``.git``.

    None when there is none up to the root.
    """
    for directory in (start, *start.parents):
        candidate = directory / DEFAULT_DB
        if candidate.is_file():
            return candidate
    return None


def store_hint(db: str) -> str:
    """
    `` --db PATH``, to add to a command suggested to the user, or nothing when
    a view run from the current directory would find this store by itself.
    """
    found = find_store(Path.cwd())
    if found is not None and os.path.realpath(found) == os.path.realpath(db):
        return ""
    return f" --db {shlex.quote(db)}"


def open_view_store(path: str) -> Store:
    """
    Open an existing store to read it (`locate_store` found it), creating nothing.

    Opened as usual when it can be; a store SQLite cannot open for writing
    (read-only media, a directory the user may not write) is opened
    read-only instead, so it can still be browsed.
    """
    from uet_trio import Store, StoreError

    try:
        return Store.open(path)
    except StoreError as error:
        cause = error.__cause__
        name = str(getattr(cause, "sqlite_errorname", ""))
        if not (name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")) or _denied(cause)):
            raise
    return Store.open(path, readonly=True)


def _denied(error: BaseException | None) -> bool:
    """Whether `error` is the operating system refusing a write."""
    return isinstance(error, OSError) and error.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def open_store(path: str, *, check: bool = False, writes: bool = False) -> Store:
    """
    Open the store at `path` (raises `StoreError`, which the root group reports).

    `writes`: the command will write (``run``, ``resume``, ``gc``), so it
    first warns on stderr about each directory of the store or its logs
    that other users could write to (`uet_trio.writable_by_others`). A
    warning, not a refusal: a shared directory is often one the user cannot
    change (a mounted volume, a scratch area), and the run is as safe as
    before; the warning says what to fix.
    """
    from uet_trio import Store, writable_by_others

    if writes:
        for directory in writable_by_others(path):
            echo(
                f"uet: warning: {directory} is writable by other users; anyone there could "
                f"replace the database or plant a symlink; chmod o-w {directory}",
                err=True,
            )
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


def json_text(document: Any) -> str:
    """
    One JSON document as every ``--json`` prints it: keys sorted, one item a line.

    An object's members each get a line of their own, nested objects and
    lists indented two spaces further; a list's items each get one line,
    written compactly whatever they hold. So a list of 10,000 tasks is
    10,000 lines, each readable and greppable, written by the C encoder
    rather than the much slower pure-Python indenting one.
    """
    lines: list[str] = []
    _lay_out(document, "", "", lines)
    return "\n".join(lines)


def compact_json(value: Any) -> str:
    """`value` as one line of JSON, keys sorted: a list item of `json_text`."""
    return json.dumps(value, sort_keys=True, default=str)


def _lay_out(value: Any, indent: str, prefix: str, lines: list[str]) -> None:
    """Append `value`'s lines to `lines`, the first after `prefix` (a member's key)."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        lines.append(prefix + "{")
        members = sorted(value.items())
        for i, (key, member) in enumerate(members):
            _lay_out(member, inner, f"{inner}{json.dumps(str(key))}: ", lines)
            if i < len(members) - 1:
                lines[-1] += ","
        lines.append(indent + "}")
    elif isinstance(value, list | tuple) and value:
        lines.append(prefix + "[")
        last = len(value) - 1
        lines.extend(
            f"{inner}{compact_json(item)}{',' if i < last else ''}" for i, item in enumerate(value)
        )
        lines.append(indent + "]")
    else:
        lines.append(prefix + compact_json(value))


def echo_json(document: Any) -> None:
    """
    Print one JSON document (a view's output: a reader that went away stops
    the command, see `uet_trio_cli.UetGroup`; `uet run` prints its own with `echo`).
    """
    click.echo(json_text(document))


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """
    Print `message` to stdout (or stderr), or drop it if that stream has gone away.

    Output is a view of the work, never part of it: a reader that closed its
    pipe (``uet run | head -1``) or a terminal that hung up must not stop a
    run. The first write that fails silences the stream for the rest of the
    process (`silence`), so everything printed after it is dropped, cheaply
    and without an error.
    """
    try:
        # color=True: print the text as it is. uet colours only what it
        # decided to (`colour`), and task text has no control characters
        # left (`visible`), so click need not ask the terminal on every line
        # whether to strip colours.
        click.echo(message, err=err, nl=nl, color=True)
    except OSError:
        silence(err=err)


def silence(*, err: bool) -> None:
    """
    Send whatever stdout (or stderr) still gets to os.devnull, for the rest of the process.

    The stream's descriptor is pointed at os.devnull (the Python docs' advice
    for a broken pipe), so the same stream object keeps working: later
    writes, and the flush of its buffer as the process ends, succeed instead
    of raising BrokenPipeError or printing "Exception ignored". A stream
    without a descriptor of its own is replaced by an os.devnull file.
    """
    name = "stderr" if err else "stdout"
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, getattr(sys, name).fileno())
    except (AttributeError, OSError, ValueError):
        setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
    finally:
        os.close(null)


def hold_standard_streams() -> None:
    """
    Give every standard descriptor that is closed at start os.devnull.

    Started with one closed (``uet run >&-``), Python leaves sys.stdout (or
    stdin, stderr) None, and the next file uet opened would take the free
    descriptor: a log file on descriptor 2 would collect what is written to
    stderr. Holding those descriptors on os.devnull drops that output instead,
    and the commands print as if to any stream.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def flush_standard_streams() -> None:
    """
    Flush stdout and stderr before the process ends, silencing any that went away.

    Otherwise Python's own flush at exit would meet the broken pipe, print
    "Exception ignored ... BrokenPipeError" and set the exit status to 120.
    """
    for err in (False, True):
        stream = sys.stderr if err else sys.stdout
        try:
            if stream is not None:
                stream.flush()
        except OSError:
            silence(err=err)


COLOUR_MODES = ("auto", "always", "never")
_COLOUR_KEY = "uet.colour"
_COLOUR_WANTED_KEY = "uet.colour.wanted"


def _set_colour(ctx: click.Context, param: click.Parameter, mode: str) -> str:
    ctx.meta[_COLOUR_KEY] = mode
    if mode != "auto":
        # click.echo strips styles from output that is not a terminal unless told.
        ctx.color = mode == "always"
    return mode


def colour_option(function: F) -> F:
    """``--color auto|always|never`` for the commands that colour their output."""
    return click.option(
        "--color",
        type=click.Choice(COLOUR_MODES),
        default="auto",
        show_default=True,
        expose_value=False,
        is_eager=True,
        callback=_set_colour,
        help="Colour the output: on a terminal unless NO_COLOR is set (auto), always, never.",
    )(function)


def colour_wanted() -> bool:
    """
    Whether output is coloured: ``--color always`` or ``never`` if given;
    else on a terminal, unless ``NO_COLOR`` is set to anything but the
    empty string (https://no-color.org).
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return _colour_for("auto")
    wanted: bool | None = ctx.meta.get(_COLOUR_WANTED_KEY)
    if wanted is None:
        # Asked once per line printed: the terminal is asked once per command.
        wanted = ctx.meta[_COLOUR_WANTED_KEY] = _colour_for(ctx.meta.get(_COLOUR_KEY, "auto"))
    return wanted


def _colour_for(mode: str) -> bool:
    if mode != "auto":
        return bool(mode == "always")
    if os.environ.get("NO_COLOR"):
        return False
    return sys.stdout is not None and sys.stdout.isatty()


def colour(text: str, fg: str) -> str:
    """`text` in colour when output is coloured (`colour_wanted`), plain otherwise."""
    if colour_wanted():
        return click.style(text, fg=fg)
    return text


_CONTROLS = {
    code: f"\\x{code:02x}"
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
    if code != 0x09  # a tab moves the cursor right and nothing else
}
"""Each C0 and C1 control character and DEL, mapped to its visible escape."""


def visible(text: str) -> str:
    """
    `text` with its control characters written out (``\\x1b``), tabs kept.

    For text that comes from a task (its output, its id) and is shown to
    people: an escape sequence in it must not clear the screen, move the
    cursor or set the terminal's title. ``--json`` and ``uet logs`` keep
    the text as it is.
    """
    return text.translate(_CONTROLS)


def label(text: str, fg: str) -> str:
    """A seven-column status label, padded before colouring so columns line up."""
    return colour(text.ljust(7), fg)


def plural(count: float, noun: str) -> str:
    """``1 task``, ``2 tasks``, ``0 tasks``: `count` and `noun` in agreement (nouns taking -s)."""
    return f"{count:.15g} {noun}" if count == 1 else f"{count:.15g} {noun}s"


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
