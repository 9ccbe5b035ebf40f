"""
The attempt link: the TCP connection between a remote attempt and its runner.

A Dask worker running an attempt (`dask_remote`) connects back to the
runner that submitted it (`dask.DaskRunner`) and keeps that connection for
the attempt's whole life. Over it the remote side asks to start (a
once-only claim, so a re-execution by Dask is refused), reports its process,
streams stdout and stderr in chunks and reports how the process ended; the
runner answers the claim and can ask for the process group to be stopped.
Each side takes the connection's end as the other's death: the runner
records the attempt lost, the worker kills the attempt's process group.

A frame is a 5-byte header (kind, payload length: ``!BI``) and its payload:
JSON for the messages, raw bytes for output. Standard library only: this
module is imported by the worker side too.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

HEADER = struct.Struct("!BI")
"""A frame's header: its kind and its payload's length."""

CHUNK = 64 * 1024
"""The most output one frame carries: what one read of a pipe returns at most."""

MAX_MESSAGE = 1 << 20
"""The largest JSON message accepted; a longer frame means a broken peer."""


class Frame(enum.IntEnum):
    """What a frame carries."""

    HELLO = 1
    """Remote -> runner, first: ``{"token", "worker", "host"}``: the claim of an attempt."""
    SPAWNED = 2
    """Remote -> runner: ``{"pid", "proc_start"}`` of the attempt's process on the worker."""
    OUT = 3
    """Remote -> runner: a chunk of stdout."""
    ERR = 4
    """Remote -> runner: a chunk of stderr."""
    EXIT = 5
    """
    Remote -> runner, last: ``{"exit_code", "signal", "timed_out", "error"}``, and
    ``"closing": true`` if the group was killed because the worker began closing.
    """
    GO = 10
    """Runner -> remote: the claim is granted; start the process."""
    REFUSE = 11
    """Runner -> remote: the attempt is not (or no longer) to run; start nothing."""
    STOP = 12
    """Runner -> remote: stop the group (SIGTERM, the grace period, SIGKILL)."""
    HURRY = 13
    """Runner -> remote: SIGKILL the group now (the rest of the grace period is skipped)."""


def frame(kind: Frame, payload: bytes = b"") -> bytes:
    """One frame of `kind` carrying `payload`."""
    return HEADER.pack(kind, len(payload)) + payload


def message(kind: Frame, body: dict[str, Any]) -> bytes:
    """One frame of `kind` carrying `body` as JSON."""
    return frame(kind, json.dumps(body, separators=(",", ":")).encode())


class Frames:
    """
    Cuts a byte stream into frames: `feed` received bytes, then take `next()` until None.

    Raises `ValueError` for a frame of unknown kind or a message over
    `MAX_MESSAGE` bytes: the peer is not speaking this protocol.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> tuple[Frame, bytes] | None:
        """The next whole frame received, or None until more bytes arrive."""
        buffer = self._buffer
        if len(buffer) < HEADER.size:
            return None
        kind, length = HEADER.unpack_from(buffer)
        try:
            kind = Frame(kind)
        except ValueError:
            raise ValueError(f"unknown frame kind {kind}") from None
        if length > max(CHUNK, MAX_MESSAGE):
            raise ValueError(f"frame of {length} bytes")
        end = HEADER.size + length
        if len(buffer) < end:
            return None
        payload = bytes(buffer[HEADER.size : end])
        del buffer[:end]
        return kind, payload


def decode(payload: bytes) -> dict[str, Any]:
    """
    A message frame's JSON body.

    Raises:
        ValueError: not JSON; TypeError: JSON, but not an object.
    """
    body = json.loads(payload)
    if not isinstance(body, dict):
        raise TypeError("a link message must be a JSON object")
    return body
