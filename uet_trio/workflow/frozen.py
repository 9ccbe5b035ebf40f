"""
Immutable, picklable mappings and the converters that build a spec's fields.

A spec is data: once its constructor has checked it nothing may change it,
and it must pickle so it can be shipped to other processes. `FrozenMap` is
the read-only mapping that gives both (`types.MappingProxyType` does not
pickle); the converters turn what a caller passes (lists, dicts) into the
tuples, frozensets and `FrozenMap` a spec stores. Kept apart from the spec
classes because nothing here knows what a workflow is.
"""

from __future__ import annotations

import posixpath
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    ValuesView,
)
from typing import Any, TypeVar, overload

_K = TypeVar("_K")
_V = TypeVar("_V")
_D = TypeVar("_D")


class FrozenMap(Mapping[_K, _V]):
    """
    A read-only mapping over a private dict: the mappings of a spec.

    Assignment and deletion raise `TypeError`, as for any `Mapping`. Reads
    go straight to the dict, it compares equal to a dict with the same items,
    it is hashable when its values are, and it pickles (unlike
    `types.MappingProxyType`), so a spec can be sent to another process.
    """

    __slots__ = ("_data",)
    _data: dict[_K, _V]

    def __init__(self, items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data = dict(items)

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    @overload
    def get(self, key: _K, /) -> _V | None: ...
    @overload
    def get(self, key: _K, default: _V | _D, /) -> _V | _D: ...
    def get(self, key: _K, default: object = None, /) -> object:
        return self._data.get(key, default)

    def keys(self) -> KeysView[_K]:
        return self._data.keys()

    def values(self) -> ValuesView[_V]:
        return self._data.values()

    def items(self) -> ItemsView[_K, _V]:
        return self._data.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenMap[_K, _V]], tuple[dict[_K, _V]]]:
        return (type(self), (self._data,))


EMPTY: FrozenMap[Any, Any] = FrozenMap()
"""The one empty map: the default of every map field of a spec."""


# ------------------------------------------------------------ converters


def str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def argv_or_none(value: Iterable[str] | None) -> tuple[str, ...] | None:
    """A command as a tuple; None (no command) stays None."""
    return None if value is None else tuple(value)


def path_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """
    Paths in their plain form (``./a//b`` is ``a/b``), so that equal paths are equal strings.

    Anything that is not a non-empty string is kept as it is, for the field's rule to refuse.
    """
    return tuple(
        posixpath.normpath(item) if isinstance(item, str) and item else item for item in value
    )


def any_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def str_frozenset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def freeze_map(value: Mapping[str, str] | None) -> FrozenMap[str, str]:
    """The `FrozenMap` of a params or env value; every empty one is the same `EMPTY`."""
    # An exact type test: isinstance against a Mapping subclass is a
    # Python-level call, and this runs twice per task built.
    if type(value) is FrozenMap:
        return value
    return FrozenMap(value) if value else EMPTY
