"""The shape of ``uv.lock``, checked once after parsing so a garbled lock is a clear error.

Only the tables and keys hatch-lambda reads are checked, and only for their
types (a missing optional key is fine, an unknown key is ignored, as newer uv
releases add some). A wrong type names the place in the lock, e.g.
``package[3].wheels[0].url must be a string, not 3``. Each package's strings
that become paths are checked next, by :mod:`.trust`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.trust import check_package


@dataclass(frozen=True)
class Table:
    keys: dict[str, Any]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """A table of any key to values of one shape."""

    value: Any


ANY = object()
SOURCE = MapOf(ANY)
FILE = Table({"url": str, "path": str, "filename": str, "hash": str, "size": int})
REQUIREMENT = Table(
    {"name": str, "specifier": str, "marker": str, "extras": ListOf(str), "extra": ListOf(str), "source": SOURCE},
    required=("name",),
)
EDGE = Table(
    {"name": str, "version": str, "source": SOURCE, "marker": str, "extra": ListOf(str)},
    required=("name",),
)
PACKAGE = Table(
    {
        "name": str,
        "version": str,
        "source": SOURCE,
        "dependencies": ListOf(EDGE),
        "optional-dependencies": MapOf(ListOf(EDGE)),
        "dev-dependencies": MapOf(ListOf(EDGE)),
        "metadata": Table(
            {
                "requires-dist": ListOf(REQUIREMENT),
                "provides-extras": ListOf(str),
                "requires-dev": MapOf(ListOf(REQUIREMENT)),
            }
        ),
        "wheels": ListOf(FILE),
        "sdist": FILE,
    },
    required=("name",),
)
LOCK = Table(
    {
        "requires-python": str,
        "supported-markers": ListOf(str),
        "required-markers": ListOf(str),
        "manifest": Table({"members": ListOf(str)}),
        "conflicts": ListOf(ListOf(Table({"package": str, "extra": str, "group": str}))),
        "package": ListOf(PACKAGE),
    }
)

_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _describe(shape: Any) -> str:
    if isinstance(shape, (Table, MapOf)):
        return "a table"
    if isinstance(shape, ListOf):
        return "a list"
    return _NAMES.get(shape, str(shape))


def _check(value: Any, shape: Any, where: str, path: Path) -> None:
    if shape is ANY:
        return
    ok = (
        isinstance(value, dict) if isinstance(shape, (Table, MapOf))
        else isinstance(value, list) if isinstance(shape, ListOf)
        else isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    )
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise LambdaBuildError(
            f"{path}: {where} must be {_describe(shape)}, not {shown}",
            "the lock is damaged; regenerate it with `uv lock` (and resolve any merge conflict)",
        )
    if isinstance(shape, Table):
        for key in shape.required:
            if key not in value:
                raise LambdaBuildError(
                    f"{path}: {where} has no {key!r}",
                    "the lock is damaged; regenerate it with `uv lock` (and resolve any merge conflict)",
                )
        for key, inner in shape.keys.items():
            if key in value:
                _check(value[key], inner, f"{where}.{key}" if where else key, path)
    elif isinstance(shape, MapOf):
        for key, inner in value.items():
            _check(inner, shape.value, f"{where}.{key}", path)
    elif isinstance(shape, ListOf):
        for index, inner in enumerate(value):
            _check(inner, shape.item, f"{where}[{index}]", path)


def check_shape(data: dict, path: Path) -> None:
    """Raise a :class:`LambdaBuildError` naming the first place where ``data`` has the wrong type."""
    _check(data, LOCK, "", path)


def check_package_shape(entry: object, index: int, path: Path) -> None:
    """The same check for one ``[[package]]`` table, read on its own (see :mod:`.file`); then the strings
    in it that become paths and names (:mod:`.trust`)."""
    _check(entry, PACKAGE, f"package[{index}]", path)
    assert isinstance(entry, dict)
    check_package(entry, index, path)
