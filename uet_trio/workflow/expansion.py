"""
Fan-out and paths: a task table with ``foreach`` becomes one task per combination.

``foreach`` maps each key to a list of values or to a glob over the
workflow's directory; several keys give their cartesian product, and each
combination is one instance with the id ``ID[key=value,key=value]`` (keys in
declaration order). An instance's params are the task's params and its
combination, and its ``inputs``, ``outputs``, ``env`` values and ``cwd`` are
rendered with them. Then, across the whole workflow, each input glob becomes
the sorted files it matches, on disk or among the declared outputs (which
may not exist yet), and a dependency on a fanned-out task becomes one on
every instance. Globs are Python's: ``**`` is recursive, hidden files match
only a pattern that names them. This module reads directories, nothing else.
"""

from __future__ import annotations

import bisect
import glob
import itertools
import posixpath
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import WorkflowError
from .templates import render_text, unknown_placeholders

Combination = tuple[tuple[str, str], ...]
"""One instance's foreach values: (key, value) pairs in declaration order."""


_NOT_IN_IDS = frozenset("\n\r\0")
"""Characters a task id may not hold, so neither may a foreach value."""


def instance_id(task_id: str, combination: Combination) -> str:
    """``compile[src=c/a.c]``: the id of one instance of a fanned-out task."""
    return f"{task_id}[{','.join(f'{key}={value}' for key, value in combination)}]"


def combinations(foreach: Mapping[str, Any], *, task: str, base_dir: Path) -> list[Combination]:
    """
    Every combination of a task's ``foreach`` values, in declaration order.

    Raises:
        WorkflowError: a key has no values, a value is not a string or a
            number, or a glob matches no file.
    """
    axes: list[list[tuple[str, str]]] = []
    for key, values in foreach.items():
        field = f"foreach.{key}"
        if isinstance(values, str):
            matches = match_files(values, base_dir)
            if not matches:
                raise WorkflowError(f"the glob {values!r} matches no file", task=task, field=field)
            items = matches
        elif isinstance(values, list):
            if not values:
                raise WorkflowError("needs at least one value", task=task, field=field)
            items = [_scalar(value, task=task, field=field) for value in values]
            twice = next((item for item, n in Counter(items).items() if n > 1), None)
            if twice is not None:
                raise WorkflowError(f"the value {twice!r} is listed twice", task=task, field=field)
        else:
            raise WorkflowError(
                f"expected a list of values or a glob string, got {type(values).__name__}",
                task=task,
                field=field,
            )
        broken = next((item for item in items if _NOT_IN_IDS.intersection(item)), None)
        if broken is not None:
            raise WorkflowError(
                f"the value {broken!r} has a line break or NUL, which an instance id cannot hold",
                task=task,
                field=field,
            )
        axes.append([(key, item) for item in items])
    return [tuple(combination) for combination in itertools.product(*axes)]


def _scalar(value: Any, *, task: str, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise WorkflowError(f"values are strings or numbers, got {value!r}", task=task, field=field)
    return str(value)


def render_field(template: str, params: Mapping[str, str], *, task: str, field: str) -> str:
    """
    `template` (a path, an env value, a cwd) filled from `params`.

    Raises:
        WorkflowError: a placeholder names no param (never left as a literal).
    """
    if "{" not in template and "}" not in template:
        return template
    try:
        unknown = unknown_placeholders((template,), params)
    except WorkflowError as error:
        raise WorkflowError(error.message, task=task, field=field) from None
    if unknown:
        raise WorkflowError(
            f"unknown placeholder {{{unknown[0]}}} in {template!r} "
            "(not a foreach key or param; write {{ and }} for literal braces)",
            task=task,
            field=field,
        )
    try:
        return render_text(template, params)
    except WorkflowError as error:
        raise WorkflowError(error.message, task=task, field=field) from None


def is_glob(path: str) -> bool:
    """Whether `path` is a pattern (has ``*``, ``?`` or ``[``) rather than one path."""
    return glob.has_magic(path)


def match_files(pattern: str, base_dir: Path) -> list[str]:
    """The paths under `base_dir` that `pattern` matches, relative to it and sorted."""
    return sorted(
        posixpath.normpath(match) for match in glob.glob(pattern, root_dir=base_dir, recursive=True)
    )


_VISIBLE = "(?!\\.)"
"""At the start of a path component: a wildcard does not match a leading dot."""


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """
    `pattern` as a regular expression over relative paths, as glob reads it.

    ``**/`` is any number of directories, ``*`` and ``?`` stay within one
    path component, ``[...]`` is a character class; a component that starts
    with a wildcard matches no hidden name, as glob's does not.
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        at_start = i == 0 or pattern[i - 1] == "/"
        if pattern.startswith("**/", i):
            parts.append(f"(?:{_VISIBLE}[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(f"(?:{_VISIBLE}[^/]*)(?:/{_VISIBLE}[^/]*)*")
            i += 2
        elif pattern[i] in "*?[" and at_start:
            parts.append(_VISIBLE)
            parts.append(_wildcard(pattern, i))
            i = _wildcard_end(pattern, i)
        elif pattern[i] in "*?[":
            parts.append(_wildcard(pattern, i))
            i = _wildcard_end(pattern, i)
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


def _wildcard_end(pattern: str, i: int) -> int:
    """Where the wildcard at `i` (``*``, ``?`` or a complete ``[...]``) ends."""
    if pattern[i] == "[" and "]" in pattern[i + 2 :]:
        return pattern.index("]", i + 2) + 1
    return i + 1


def _wildcard(pattern: str, i: int) -> str:
    """The regular expression of the wildcard at `i`; a ``[`` without its ``]`` is literal."""
    if pattern[i] == "*":
        return "[^/]*"
    if pattern[i] == "?":
        return "[^/]"
    end = _wildcard_end(pattern, i)
    if end == i + 1:
        return re.escape("[")
    body = pattern[i + 1 : end - 1]
    if body.startswith("!"):
        body = "^" + body[1:]
    return "[" + body.replace("\\", "\\\\") + "]"


def _literal_prefix(pattern: str) -> str:
    """The directories of `pattern` before its first wildcard: ``build/`` of ``build/**/*.o``."""
    first = min((pattern.find(c) for c in "*?[" if c in pattern), default=len(pattern))
    return pattern[: pattern.rfind("/", 0, first) + 1]


class InputResolver:
    """
    Resolves the input globs of every task of one workflow.

    A glob matches files on disk and the declared outputs of other tasks
    (which may not exist before the run). Each pattern is matched once, on
    disk and against the outputs under its literal directory prefix, so
    instances that share a glob (``include/*.h``) cost one match, and a
    workflow's expansion stays linear in its tasks and files.
    """

    def __init__(self, produced: Iterable[str], base_dir: Path) -> None:
        self._produced = sorted(set(produced))
        self._base_dir = base_dir
        self._matches: dict[str, list[str]] = {}

    def _match(self, pattern: str) -> list[str]:
        """Every file on disk and declared output that `pattern` matches, sorted."""
        cached = self._matches.get(pattern)
        if cached is not None:
            return cached
        regex = _pattern_regex(pattern)
        prefix = _literal_prefix(pattern)
        matches = {
            path
            for path in match_files(pattern, self._base_dir)
            if not (self._base_dir / path).is_dir()
        }
        produced = self._produced
        for k in range(bisect.bisect_left(produced, prefix), len(produced)):
            path = produced[k]
            if not path.startswith(prefix):
                break
            if regex.match(path):
                matches.add(path)
        found = self._matches[pattern] = sorted(matches)
        return found

    def resolve(self, inputs: Sequence[str], *, own: Collection[str], task: str) -> list[str]:
        """
        `inputs` with each glob replaced by the files it matches, sorted,
        less the task's `own` outputs (plain paths), duplicates dropped.

        Raises:
            WorkflowError: a glob matches nothing.
        """
        resolved: list[str] = []
        for path in inputs:
            if not is_glob(path):
                resolved.append(path)
                continue
            pattern = posixpath.normpath(path)
            matches = [match for match in self._match(pattern) if match not in own]
            if not matches:
                raise WorkflowError(
                    f"the glob {path!r} matches no file and no declared output",
                    task=task,
                    field="inputs",
                )
            resolved.extend(matches)
        return list(dict.fromkeys(resolved))


def expand_references(deps: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Dependencies with each fanned-out task's id replaced by its instances' ids."""
    expanded: list[str] = []
    for dep in deps:
        expanded.extend(groups.get(dep, (dep,)))
    return expanded
