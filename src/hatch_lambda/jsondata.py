"""Dataclasses that are JSON documents: ``to_json`` and ``from_json`` from their fields' types.

A field missing from the JSON gets its default, so documents written by older
releases still read. A value of the wrong type, or a field without a default
that is missing, is a :class:`ShapeError` naming where it is
(``targets.lambda-layer.artifacts[0].file``).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, ClassVar, Self, Union, get_args, get_origin, get_type_hints


class ShapeError(ValueError):
    """A JSON document of the wrong shape; ``str()`` says where and what."""


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "a list" if isinstance(value, list) else "an object"


def _wrong(where: str, expected: str, value: Any) -> ShapeError:
    return ShapeError(f"{where or 'the document'}: expected {expected}, found {_what(value)}")


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
    def from_json(cls, data: Any, where: str = "") -> Self:
        if not isinstance(data, dict):
            raise _wrong(where, "an object", data)
        hints = get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            inner = f"{where}.{f.name}" if where else f.name
            if f.name in data:
                values[f.name] = _load(hints[f.name], data[f.name], inner)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ShapeError(f"{where or 'the document'}: the key {f.name!r} is missing")
        return cls(**values)


def _dump(value: Any) -> Any:
    if isinstance(value, Json):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    return value


_SCALARS: dict[Any, tuple[str, tuple[type, ...]]] = {
    str: ("a string", (str,)),
    int: ("a whole number", (int,)),
    float: ("a number", (int, float)),
    bool: ("true or false", (bool,)),
}


def _load(kind: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if isinstance(kind, type) and issubclass(kind, Json):
        return kind.from_json(value, where)
    if origin in (Union, types.UnionType):  # X | None
        if value is None and type(None) in args:
            return None
        [inner] = [a for a in args if a is not type(None)]
        return _load(inner, value, where)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        return {key: _load(args[1], item, f"{where}.{key}") for key, item in value.items()} if args else value
    if origin is list or kind is list:
        if not isinstance(value, list):
            raise _wrong(where, "a list", value)
        return [_load(args[0], item, f"{where}[{n}]") for n, item in enumerate(value)] if args else value
    if kind in _SCALARS:
        expected, accepted = _SCALARS[kind]
        if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
            raise _wrong(where, expected, value)
    return value
