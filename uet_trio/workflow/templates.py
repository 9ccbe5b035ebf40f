"""
Render a tool's argv template with a task's params.

A placeholder is ``{name}``; ``{{`` and ``}}`` stand for literal braces. Each
template element renders to exactly one argv element, so a param holding
``; rm -rf /`` is one harmless argument. Only a tool that says ``shell = true``
goes through ``/bin/sh -c``, and then every param is shell-quoted first.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from functools import lru_cache

from ..errors import WorkflowError

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


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
    """The names of every placeholder in `template`."""
    return frozenset(text for element in template for text, is_name in _parse(element) if is_name)


def render(
    template: Iterable[str], params: Mapping[str, str], *, shell: bool = False
) -> tuple[str, ...]:
    """
    Fill `template` from `params` and return the argv to execute.

    Raises:
        WorkflowError: a placeholder has no param.
    """
    quote = shlex.quote if shell else str
    argv = []
    for element in template:
        pieces = []
        for text, is_name in _parse(element):
            if not is_name:
                pieces.append(text)
                continue
            try:
                pieces.append(quote(params[text]))
            except KeyError:
                raise WorkflowError(
                    f"no param for placeholder {{{text}}}", field="params"
                ) from None
        argv.append("".join(pieces))
    if shell:
        return ("/bin/sh", "-c", argv[0])
    return tuple(argv)
