"""
Render templates (a command's argv, a path, an env value) with a task's params.

A placeholder is ``{name}``; ``{{`` and ``}}`` stand for literal braces. A
param's value can also be read as a path: ``{src.name}``, ``{src.stem}``,
``{src.suffix}`` and ``{src.parent}`` are its pathlib parts. Each template
element renders to exactly one argv element, so a param holding ``; rm -rf
/`` is one harmless argument, except an element that is exactly
``{inputs}`` or ``{outputs}``: it becomes one argument per path of the
task's list (make's ``$^`` and ``$@``). Only a tool that says ``shell =
true`` goes through ``/bin/sh -c``, and then every value is shell-quoted first.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from ..errors import WorkflowError

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")

PATH_PARTS = ("name", "stem", "suffix", "parent")
"""The pathlib parts a placeholder can take of a param: ``{src.stem}``."""

LISTS = ("inputs", "outputs")
"""The list placeholders: an argv element that is exactly ``{inputs}`` expands to every input."""


@lru_cache(maxsize=4096)
def _parse(element: str) -> tuple[tuple[str, bool], ...]:
    """Split one template element into (text, is_placeholder) parts."""
    parts: list[tuple[str, bool]] = []
    pos = 0
    for match in _TOKEN.finditer(element):
        if match.start() > pos:
            parts.append((element[pos : match.start()], False))
        token = match.group(0)
        if token == "{{":
            parts.append(("{", False))
        elif token == "}}":
            parts.append(("}", False))
        elif match.group(1) is not None and _NAME.match(match.group(1)):
            parts.append((match.group(1), True))
        else:
            raise WorkflowError(
                f"bad placeholder {token!r} in {element!r} "
                "(use {name}; write {{ and }} for literal braces)",
                field="command",
            )
        pos = match.end()
    if pos < len(element):
        parts.append((element[pos:], False))
    return tuple(parts)


def placeholders(template: Iterable[str]) -> frozenset[str]:
    """The names of every placeholder in `template`, as written (``src.stem`` included)."""
    return frozenset(text for element in template for text, is_name in _parse(element) if is_name)


def list_placeholder(element: str) -> str | None:
    """``inputs`` or ``outputs`` if `element` is exactly that list placeholder, else None."""
    if element.startswith("{") and element[1:-1] in LISTS and element.endswith("}"):
        return element[1:-1]
    return None


def unknown_placeholders(
    template: Iterable[str], known: Iterable[str], *, lists: bool = False
) -> list[str]:
    """
    The placeholders of `template` that no name of `known` fills, sorted.

    A path part (``src.stem``) is known when its param is; with `lists`,
    ``{inputs}`` and ``{outputs}`` are too.
    """
    wanted = [text for element in template for text, is_name in _parse(element) if is_name]
    if not wanted:
        return []
    names = frozenset(known) | (frozenset(LISTS) if lists else frozenset())
    return sorted({text for text in wanted if _lookup_name(text, names) is None})


def _lookup_name(text: str, names: frozenset[str] | Mapping[str, str]) -> str | None:
    """The param a placeholder reads: itself, or the param of a path part; None if neither."""
    if text in names:
        return text
    base, _, part = text.rpartition(".")
    if part in PATH_PARTS and base in names:
        return base
    return None


def _value(text: str, params: Mapping[str, str]) -> str:
    """The value of placeholder `text`: a param, or a pathlib part of one."""
    value = params.get(text)
    if value is not None:
        return value
    base = _lookup_name(text, params)
    if base is None:
        raise WorkflowError(f"no param for placeholder {{{text}}}", field="params")
    name, stem, suffix, parent = path_parts(params[base])
    part = text.rpartition(".")[2]
    if part == "name":
        return name
    if part == "stem":
        return stem
    return suffix if part == "suffix" else parent


def path_parts(value: str) -> tuple[str, str, str, str]:
    """
    The name, stem, suffix and parent of `value` as `PurePosixPath` gives them.

    Computed from the string (pathlib's object costs more than the rest of
    an instance's rendering, once per file of a large fan-out): empty and
    ``.`` components are dropped, a leading ``//`` is kept (exactly two,
    as POSIX allows), and the suffix starts at the last dot of a name that
    neither starts nor ends with it.
    """
    root = ""
    if value.startswith("/"):
        root = "//" if value.startswith("//") and not value.startswith("///") else "/"
    parts = [part for part in value.split("/") if part and part != "."]
    if not parts:
        return "", "", "", root or "."
    name = parts[-1]
    dot = name.rfind(".")
    if 0 < dot < len(name) - 1:
        stem, suffix = name[:dot], name[dot:]
    else:
        stem, suffix = name, ""
    parent = root + "/".join(parts[:-1]) if root or len(parts) > 1 else "."
    return name, stem, suffix, parent


def render_text(template: str, params: Mapping[str, str]) -> str:
    """
    Fill one template string (a path, an env value, a cwd) from `params`.

    Raises:
        WorkflowError: a placeholder has no param (field ``params``; the
            caller names the field that holds the template).
    """
    parts = _parse(template)
    return "".join(_value(text, params) if is_name else text for text, is_name in parts)


def render(
    template: Iterable[str],
    params: Mapping[str, str],
    *,
    shell: bool = False,
    lists: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, ...]:
    """
    Fill `template` from `params` and return the argv to execute.

    `lists` holds the task's ``inputs`` and ``outputs``; an element that is
    exactly one of them expands to one element per path; inside a longer
    element (or a shell command string) it stands for the paths joined by
    spaces, each quoted for a shell command.

    Raises:
        WorkflowError: a placeholder has no param.
    """
    quote = shlex.quote if shell else str
    argv: list[str] = []
    for element in template:
        listed = list_placeholder(element) if lists is not None and not shell else None
        if listed is not None and lists is not None:
            argv.extend(lists.get(listed, ()))
            continue
        pieces = []
        for text, is_name in _parse(element):
            if not is_name:
                pieces.append(text)
            elif lists is not None and text in LISTS and text not in params:
                pieces.append(" ".join(map(quote, lists.get(text, ()))))
            else:
                pieces.append(quote(_value(text, params)))
        argv.append("".join(pieces))
    if shell:
        return ("/bin/sh", "-c", argv[0])
    return tuple(argv)
