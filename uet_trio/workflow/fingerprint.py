"""
The fingerprint of a spec: a hash of everything that decides what runs.

Every field of a spec class takes part, as its ``repr``, unless its attrs
metadata says otherwise: `hashed_as` a canonical form, `NOT_HASHED` (it does
not decide what runs), or `HASHED_EACH` (a large collection of spec objects,
hashed one record per item so no copy of it is built). Because the record is
derived from the fields' definitions, a new field takes part without anyone
remembering to add it. Kept apart from the spec classes, which only mark
their fields with this metadata; `fingerprint_of` does the hashing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs

_FINGERPRINT = "uet_trio.fingerprint"
_OMIT = "omit"
_EACH = "each"
NOT_HASHED = {_FINGERPRINT: _OMIT}
HASHED_EACH = {_FINGERPRINT: _EACH}


def hashed_as(key: Callable[[Any], object]) -> dict[str, object]:
    """A field's metadata: it is hashed as ``key(value)``, a canonical form of its value."""
    return {_FINGERPRINT: key}


def sorted_items(value: Mapping[str, str]) -> object:
    """A map's items in key order: the order of params or env does not matter."""
    return sorted(value.items())


def sorted_set(value: frozenset[str]) -> object:
    """A set's items in order: a set's own order changes from process to process."""
    return sorted(value)


def record_or_none(value: object) -> object:
    """A nested spec object (a retry policy) as its own record."""
    return None if value is None else _recorder(type(value))(value)


def callable_name(call: Callable[..., object] | None) -> str | None:
    """A callable, identified by its module and qualified name."""
    if call is None:
        return None
    return f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', '')}"


_Record = Callable[[Any], tuple[object, ...]]
_RECORDERS: dict[type, _Record] = {}
_FACTORY: type = type(attrs.Factory(dict))
_NO_DEFAULT = object()
"""The default of a field that has none shared by its instances."""


def _recorder(cls: type) -> _Record:
    """The function that turns an instance of the spec class `cls` into its fingerprint record."""
    record = _RECORDERS.get(cls)
    if record is None:
        record = _RECORDERS[cls] = _make_recorder(cls)
    return record


def _make_recorder(cls: type) -> _Record:
    """
    Write the fingerprint record function of the spec class `cls`.

    Generated once per class from ``attrs.fields(cls)``, the way attrs
    writes ``__init__``, so that each record costs what a hand-written tuple
    would (the fingerprint of a 100,000-task workflow is computed per run):
    each hashed field's value, or its canonical form where its metadata
    names one. A value that is the field's default takes its canonical
    form computed here, once.
    """
    namespace: dict[str, object] = {}
    parts = []
    for position, field in enumerate(attrs.fields(cls)):
        key = field.metadata.get(_FINGERPRINT)
        if key in (_OMIT, _EACH):
            continue
        if key is None:
            parts.append(f"item.{field.name}")
            continue
        default = field.default
        if default is attrs.NOTHING or isinstance(default, _FACTORY):
            # No shared default value: every value takes the key.
            default = _NO_DEFAULT
        namespace[f"key{position}"] = key
        namespace[f"default{position}"] = default
        namespace[f"canonical{position}"] = None if default is _NO_DEFAULT else key(default)
        parts.append(
            f"canonical{position} if (value := item.{field.name}) is default{position} "
            f"else key{position}(value)"
        )
    source = (
        "def record(item):\n    return (\n" + "".join(f"        {p},\n" for p in parts) + "    )\n"
    )
    exec(compile(source, f"<fingerprint record of {cls.__qualname__}>", "exec"), namespace)
    return cast(_Record, namespace["record"])


def _hashed_each(cls: type) -> tuple[str, ...]:
    """The fields of `cls` hashed one item at a time, after the rest of the instance."""
    return tuple(
        field.name for field in attrs.fields(cls) if field.metadata.get(_FINGERPRINT) == _EACH
    )


def fingerprint_of(spec: object) -> str:
    """
    The fingerprint of the spec object `spec`: 16 hex digits of a SHA-256.

    One record of its own fields is hashed, then one per item of each field
    marked `HASHED_EACH`, so it costs a few microseconds per item and builds
    no copy of the spec.
    """
    digest = hashlib.sha256()
    update = digest.update
    cls = type(spec)
    update(repr(_recorder(cls)(spec)).encode())
    for name in _hashed_each(cls):
        items = getattr(spec, name)
        kind: type | None = None
        for item in items.values() if isinstance(items, Mapping) else items:
            if type(item) is not kind:
                kind = type(item)
                record = _recorder(kind)
            update(repr(record(item)).encode())
    return digest.hexdigest()[:16]
