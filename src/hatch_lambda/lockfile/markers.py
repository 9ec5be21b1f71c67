"""Evaluating uv.lock markers for one target.

uv writes markers in plain PEP 508 syntax with one twist: extras and
dependency groups that take part in a declared conflict are encoded as
pseudo-extras, ``extra == 'extra-7-project-cpu'`` or
``extra == 'group-7-project-dev'``. Such a clause is true when that extra or
group is active, so ``extra`` is evaluated against a *set* of active items
rather than the single string PEP 508 allows. A plain ``extra == 'cpu'`` on
an edge of package ``P`` stands for ``P``'s own extra, as uv reads it: with
``scope`` set to ``P`` it is looked up as ``extra-1-p-cpu``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name


def encode_extra(package: str, extra: str) -> str:
    package = canonicalize_name(package)
    return f"extra-{len(package)}-{package}-{canonicalize_name(extra)}"


def encode_group(package: str, group: str) -> str:
    package = canonicalize_name(package)
    return f"group-{len(package)}-{package}-{canonicalize_name(group)}"


def encode_project(package: str) -> str:
    package = canonicalize_name(package)
    return f"project-{len(package)}-{package}"


@lru_cache(maxsize=4096)
def parse_marker(text: str) -> Marker:
    return Marker(text)


@lru_cache(maxsize=4096)
def _leaf(text: str) -> Marker:
    return Marker(text)


_ENCODED = ("extra-", "group-", "project-")


def evaluate(
    marker: str | None,
    environment: Mapping[str, str],
    active: Collection[str] = (),
    scope: str | None = None,
) -> bool:
    """Whether ``marker`` holds in ``environment`` with the ``active`` pseudo-extras.

    ``environment`` must be complete (see :attr:`Target.marker_environment`).
    ``scope``: the package whose edge carries the marker (its plain extras are its own).
    Raises :class:`packaging.markers.InvalidMarker` for a malformed marker.
    """
    if not marker:
        return True
    parsed = parse_marker(marker)
    if "extra" not in marker:
        return parsed.evaluate(dict(environment))
    return _evaluate_tree(parsed._markers, environment, active, scope)


def _evaluate_tree(tree: list, environment: Mapping[str, str], active: Collection[str], scope: str | None) -> bool:
    # Same shape as packaging's own evaluator: a list of clauses and sub-lists
    # joined by "and"/"or", where "and" binds tighter.
    groups: list[list[bool]] = [[]]
    for item in tree:
        if isinstance(item, list):
            groups[-1].append(_evaluate_tree(item, environment, active, scope))
        elif isinstance(item, tuple):
            groups[-1].append(_evaluate_clause(item, environment, active, scope))
        elif item == "or":
            groups.append([])
    return any(all(group) for group in groups)


def _is_variable(node: object, name: str) -> bool:
    return type(node).__name__ == "Variable" and getattr(node, "value", None) == name


def _evaluate_clause(
    clause: tuple, environment: Mapping[str, str], active: Collection[str], scope: str | None
) -> bool:
    lhs, op, rhs = clause
    if _is_variable(lhs, "extra") or _is_variable(rhs, "extra"):
        value = rhs.value if _is_variable(lhs, "extra") else lhs.value
        if not value.startswith(_ENCODED):
            value = encode_extra(scope, value) if scope else canonicalize_name(value)
        if op.value == "==":
            return value in active
        if op.value == "!=":
            return value not in active
        raise InvalidMarker(f"unsupported operator {op.value!r} on 'extra'")
    return _leaf(f"{lhs.serialize()} {op.serialize()} {rhs.serialize()}").evaluate(dict(environment))
