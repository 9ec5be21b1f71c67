"""Dataclasses that are JSON documents: ``to_json`` and ``from_json`` from their fields' types.

A field missing from the JSON gets its default, so documents written by older
releases still read.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self, get_type_hints


class Json:
    """to_json / from_json for a dataclass of JSON values and of other such dataclasses."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # each subclass is a dataclass

    def to_json(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _dump(value)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: not a table")
        hints = get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _load(hints[f.name], data[f.name])
        return cls(**values)


def _dump(value: Any) -> Any:
    if isinstance(value, Json):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    return value


def _load(kind: Any, value: Any) -> Any:
    origin = getattr(kind, "__origin__", None)
    args: tuple[Any, ...] = getattr(kind, "__args__", ())
    if isinstance(kind, type) and issubclass(kind, Json):
        return kind.from_json(value)
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {key: _load(args[1], item) for key, item in value.items()}
    if origin is list and args and isinstance(value, list):
        return [_load(args[0], item) for item in value]
    if type(None) in args:  # X | None
        inner = next(a for a in args if a is not type(None))
        return None if value is None else _load(inner, value)
    return value
