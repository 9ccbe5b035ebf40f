"""
Up-to-date checks: a task's signature, and what its attempts do to its outputs.

A task that declares outputs is up to date, and is not run, when every
output exists with the content recorded at its last success and its
signature equals the one recorded then. The signature covers the rendered
command, the variables it sets, its working directory, the content of every
input, and for each task it depends on the content of that task's declared
outputs (or that task's own signature when it declares none). Content, not
timestamps: touching a file re-runs nothing, and an upstream task that runs
again but writes the same bytes does not make its dependents run (early
cutoff).

Contents are SHA-256 digests (the fastest hash of the standard library on
this kind of machine, with SHA extensions), computed in a worker thread,
and cached by path with the file's size, modification time and inode: a
file whose stat is unchanged is not read again. New cache rows go to the
store with the run's events (`take_file_states`).

Around an attempt (`before_attempt`, `after_attempt`): the outputs' parent
directories are created; after a success every output must exist (a
missing one fails the attempt, naming it) and is digested for the record;
after a failure, the outputs the attempt created or changed are deleted,
so nothing half written looks complete (make's ``.DELETE_ON_ERROR``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from ..deciding.attempts import AttemptRequest, AttemptResult, CheckRequest, Verdict
from ..recording.signatures import FileState, Recorded

MISSING = "missing"
"""The digest recorded for an input that does not exist."""

_CHUNK = 1 << 20

Stat = tuple[int, int, int]
"""What the cache compares: size, modification time in nanoseconds, inode."""


def _stat(path: str) -> Stat | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _digest_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""The JSON that signatures hash: keys sorted, no spaces (built once, not per hash)."""


def _hash(value: Any) -> str:
    text = _CANONICAL.encode(value)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class Freshness:
    """
    The up-to-date checks of one run: signatures, the stat cache, outputs around attempts.

    Args:
        base_dir: the workflow's directory, which declared paths are relative to.
        recorded: each task's signature at its last recorded success (`Store.signatures`).
        file_states: the store's stat cache (`Store.file_states`).
    """

    def __init__(
        self,
        base_dir: Path,
        recorded: Mapping[str, Recorded],
        file_states: Mapping[str, FileState],
    ) -> None:
        self._base = os.fspath(base_dir)
        self._recorded = recorded
        self._cache = dict(file_states)
        self._new: dict[str, FileState] = {}
        self._signatures: dict[str, str] = {}

    def path(self, declared: str) -> str:
        """A declared path as an absolute one."""
        return os.path.join(self._base, declared)

    # -------------------------------------------------------- digests

    def cached_digest(self, declared: str) -> str | None:
        """
        The content digest of a declared path from the stat cache (None if
        the file does not exist).

        Raises:
            KeyError: the cache holds no digest for the file as it is now.
        """
        path = self.path(declared)
        return self._cached(path, _stat(path))

    def _cached(self, path: str, stat: Stat | None) -> str | None:
        if stat is None:
            return None
        cached = self._cache[path]
        if (cached.size, cached.mtime_ns, cached.inode) != stat:
            raise KeyError(path)
        return cached.digest

    async def digest(self, declared: str) -> str | None:
        """The content digest of a declared path (None if it does not exist), read if need be."""
        path = self.path(declared)
        stat = _stat(path)
        try:
            return self._cached(path, stat)
        except KeyError:
            pass
        digest = await trio.to_thread.run_sync(_digest_file, path)
        # Stat again: a file that changed while it was read is cached under
        # its new stat with a digest that may be stale, so it is not cached.
        if _stat(path) == stat:
            assert stat is not None
            state = FileState(*stat, digest)
            self._cache[path] = self._new[path] = state
        return digest

    def take_file_states(self) -> list[tuple[str, FileState]]:
        """The stat cache rows computed since the last call, to be stored."""
        new, self._new = self._new, {}
        return list(new.items())

    # -------------------------------------------------------- checks

    def check_now(self, request: CheckRequest) -> Verdict | None:
        """
        `check` from the stat cache alone, without reading a file; None if a
        file it needs changed since it was last read (then `check` it).

        A no-op re-run is checked entirely here, by the run's loop, with no
        round trip to a worker.
        """
        try:
            digests = {path: self.cached_digest(path) for path in _paths(request)}
        except KeyError:
            return None
        return self._verdict(request, digests)

    async def check(self, request: CheckRequest) -> Verdict:
        """A task's signature, and whether it is up to date (see the module docstring)."""
        digests = {path: await self.digest(path) for path in _paths(request)}
        return self._verdict(request, digests)

    def _verdict(self, request: CheckRequest, digests: Mapping[str, str | None]) -> Verdict:
        """The verdict on a task, given the digest of every file it names (None: missing)."""
        inputs = {path: digests[path] or MISSING for path in request.inputs}
        upstream: dict[str, Any] = {}
        for dep, dep_outputs in request.upstream:
            if dep_outputs:
                upstream[dep] = [digests[path] for path in dep_outputs]
            else:
                upstream[dep] = self._signatures.get(dep) or self._recorded_signature(dep)
        command = _hash({"argv": request.argv, "env": dict(request.env), "cwd": request.cwd})
        detail: dict[str, Any] = {"command": command, "inputs": inputs, "upstream": upstream}
        recorded = self._recorded.get(request.task_id)
        if recorded is not None and _same_parts(recorded.detail, detail):
            # What the recorded signature was computed from: the same hash,
            # without encoding and hashing the detail again.
            signature = recorded.signature
        else:
            signature = _hash(detail)
        self._signatures[request.task_id] = signature
        if request.judged:
            reason = self._stale_reason(request, signature, detail, digests)
        else:
            reason = "always make" if request.outputs else "no outputs declared"
        return Verdict(
            index=request.index,
            fresh=not reason,
            reason=reason,
            signature=signature,
            detail=detail,
        )

    def _recorded_signature(self, task_id: str) -> str | None:
        recorded = self._recorded.get(task_id)
        return recorded.signature if recorded is not None else None

    def _stale_reason(
        self,
        request: CheckRequest,
        signature: str,
        detail: Mapping[str, Any],
        digests: Mapping[str, str | None],
    ) -> str:
        """Why the task must run, the first reason found; empty if it is up to date."""
        recorded = self._recorded.get(request.task_id)
        if recorded is None:
            return "never run"
        for path in request.outputs:
            if digests[path] is None:
                return f"output missing: {path}"
        if recorded.signature != signature:
            return _changed(recorded.detail, detail)
        outputs = recorded.detail.get("outputs", {})
        for path in request.outputs:
            if digests[path] != outputs.get(path):
                return f"output changed: {path}"
        return ""

    # -------------------------------------------------------- attempts

    def before_attempt(self, request: AttemptRequest) -> dict[str, Stat | None]:
        """Create the outputs' directories; return their stats, to tell what the attempt changes."""
        before = {}
        for declared in request.outputs:
            path = self.path(declared)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            before[declared] = _stat(path)
        return before

    async def after_attempt(
        self, request: AttemptRequest, result: AttemptResult, before: Mapping[str, Stat | None]
    ) -> AttemptResult:
        """
        Check a successful attempt's outputs, or delete what a failed one wrote.

        A success with an output missing becomes a failure whose error names
        the path; a success's result carries its outputs' digests.
        """
        if result.ok(request.ok_exit_codes):
            digests: dict[str, str] = {}
            for declared in request.outputs:
                digest = await self.digest(declared)
                if digest is None:
                    result.error = (
                        f"declared output missing after the command succeeded: {declared}"
                    )
                    return self._remove_changed(request, result, before)
                digests[declared] = digest
            result.outputs = digests
            return result
        return self._remove_changed(request, result, before)

    def _remove_changed(
        self, request: AttemptRequest, result: AttemptResult, before: Mapping[str, Stat | None]
    ) -> AttemptResult:
        self.remove_changed(request, before)
        return result

    def remove_changed(self, request: AttemptRequest, before: Mapping[str, Stat | None]) -> None:
        """
        Delete the outputs an attempt created or changed (it failed, or was cancelled).

        An output that cannot be deleted stays; it is never trusted, since
        the task records no success for it.
        """
        for declared in request.outputs:
            path = self.path(declared)
            stat = _stat(path)
            if stat is not None and stat != before.get(declared) and not os.path.isdir(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _paths(request: CheckRequest) -> dict[str, None]:
    """Every file a check reads, once each, in order: inputs, dependencies' outputs, outputs."""
    paths = dict.fromkeys(request.inputs)
    for _, outputs in request.upstream:
        paths.update(dict.fromkeys(outputs))
    paths.update(dict.fromkeys(request.outputs))
    return paths


def _same_parts(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether a recorded detail holds the parts of `current` (its outputs aside), unchanged."""
    return all(recorded.get(part) == value for part, value in current.items())


def _changed(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The first part of a signature that differs from the recorded one, as a reason."""
    if recorded.get("command") != current["command"]:
        return "command changed"
    old_inputs: Mapping[str, Any] = recorded.get("inputs", {})
    for path, digest in current["inputs"].items():
        if old_inputs.get(path) != digest:
            return f"input changed: {path}"
    if old_inputs.keys() != current["inputs"].keys():
        return "inputs changed"
    return "upstream changed"
