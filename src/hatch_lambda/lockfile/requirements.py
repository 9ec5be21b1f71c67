"""Requirements compared as uv compares them: declared in pyproject.toml against locked in uv.lock.

Each requirement becomes a key: its name, extras and specifier exactly, whether a
``[tool.uv.sources]`` entry gives it its source, and its markers by what they
decide on every Lambda runtime (uv rewrites marker text, so the text cannot be
compared). A difference is told one clause per package.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.markers import evaluate
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import ARCHES, Target, allowed_runtimes

_SOURCE_KEYS = ("editable", "directory", "path", "git", "url", "virtual", "workspace", "index")


@dataclass(frozen=True)
class Context:
    where: Path
    extras: list[str]
    targets: list[Target]
    sources: dict[str, list[dict]]  # [tool.uv.sources], by canonical name


def with_extra(text: str, extra: str, where: Path) -> str:
    requirement = parse_requirement(text, where)
    condition = f'extra == "{extra}"'
    marker = f"({requirement.marker}) and {condition}" if requirement.marker else condition
    requirement.marker = None
    return f"{requirement}; {marker}"


def extra_of(text: str, where: Path) -> str | None:
    """The extra a metadata ``Requires-Dist`` line belongs to (its ``extra == "x"`` clause), if any."""
    requirement = parse_requirement(text, where)
    if requirement.marker is None:
        return None
    stack = list(requirement.marker._markers)
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, tuple):
            lhs, op, rhs = item
            for variable, value in ((lhs, rhs), (rhs, lhs)):
                if type(variable).__name__ == "Variable" and variable.value == "extra" and op.value == "==":
                    return canonicalize_name(value.value)
    return None


def parse_requirement(text: str, where: Path) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        # uv (like pip) takes ``name @ url; marker``, which PEP 508 wants written ``name @ url ; marker``.
        url, semicolon, marker = text.partition(";")
        if " @ " in url and semicolon:
            try:
                return Requirement(f"{url.rstrip()} ; {marker.lstrip()}")
            except InvalidRequirement:
                pass
        raise LambdaBuildError(f"{where}: invalid requirement {text!r}: {exc}") from None


def lock_targets(requires_python: str | None) -> list[Target]:
    """The runtimes the lock covers: the environments a marker is judged on."""
    spec = SpecifierSet(requires_python or "")
    pythons = allowed_runtimes(spec)
    return [Target(python, arch) for python in pythons or RUNTIMES for arch in ARCHES]


def _marker_signature(marker: str | None, context: Context) -> tuple[bool, ...]:
    """What ``marker`` decides on each target, with no extra and with each of the project's extras."""
    try:
        return _signature(marker, tuple(context.targets), tuple(context.extras))
    except InvalidMarker as exc:
        raise LambdaBuildError(f"{context.where}: invalid marker {marker!r}: {exc}") from None


_EXTRA = re.compile(r"""extra\s*[=!]=\s*['"]([^'"]+)['"]|['"]([^'"]+)['"]\s*[=!]=\s*extra""")


@lru_cache(maxsize=8192)
def _signature(marker: str | None, targets: tuple[Target, ...], extras: tuple[str, ...]) -> tuple[bool, ...]:
    # An extra the marker does not name decides as no extra does, so only the named ones are evaluated.
    named = {canonicalize_name(a or b) for a, b in _EXTRA.findall(marker or "")}
    out = []
    for target in targets:
        environment = target.marker_environment
        without = evaluate(marker, environment)
        by_extra = {extra: evaluate(marker, environment, {extra}) for extra in extras if extra in named}
        out.append(without)
        out += [by_extra.get(extra, without) for extra in extras]
    return tuple(out)


def requirement_keys(items: list, context: Context, *, from_lock: bool, group: str | None = None) -> Counter:
    """(name, extras, specifier, has a source, marker signature) of each requirement.

    uv writes a requirement whose sources carry markers (or extras) as one
    entry per source plus one for where none applies; a declared requirement is
    split the same way. Entries that hold on no Lambda runtime are left out on
    both sides: they cannot change what a Lambda build installs.
    """
    keys: Counter = Counter()

    def add(name: str, req_extras: Iterable[str], specifier: str, has_source: bool,
            signature: tuple[bool, ...]) -> None:
        if any(signature):
            key = (
                canonicalize_name(name),
                tuple(sorted(canonicalize_name(e) for e in req_extras)),
                specifier,
                has_source,  # a [tool.uv.sources] entry added or removed changes where it comes from
                signature,
            )
            keys[key] += 1

    for item in items:
        if from_lock:
            has_source = any(key in item for key in _SOURCE_KEYS)
            try:
                specifier = "" if has_source else str(SpecifierSet(item.get("specifier", "")))
            except InvalidSpecifier:
                raise LambdaBuildError(
                    f"{context.where}: invalid specifier {item.get('specifier')!r} for {item['name']}",
                    "the lock is damaged; regenerate it with `uv lock`",
                ) from None
            signature = _marker_signature(item.get("marker"), context)
            add(item["name"], item.get("extras", []), specifier, has_source, signature)
            continue
        text, extra = item if isinstance(item, tuple) else (item, None)
        requirement = parse_requirement(text, context.where)
        base = _marker_signature(str(requirement.marker) if requirement.marker else None, context)
        # A source limited to an extra or a group applies to that extra's or group's requirements only.
        sources = [
            source
            for source in context.sources.get(canonicalize_name(requirement.name), [])
            if isinstance(source, dict)
            and (not source.get("extra") or canonicalize_name(source["extra"]) == extra)
            and (not source.get("group") or canonicalize_name(source["group"]) == group)
        ]
        if requirement.url is not None:
            add(requirement.name, requirement.extras, "", True, base)
            continue
        covered = tuple(False for _ in base)
        for source in sources:
            applies = _marker_signature(source.get("marker"), context)
            both = tuple(b and a for b, a in zip(base, applies, strict=True))
            add(requirement.name, requirement.extras, "", True, both)
            covered = tuple(c or a for c, a in zip(covered, applies, strict=True))
        rest = tuple(b and not c for b, c in zip(base, covered, strict=True))
        add(requirement.name, requirement.extras, str(requirement.specifier), False, rest)
    return keys


def _describe_key(key: tuple, sources: dict[str, list[dict]]) -> str:
    name, extras, specifier, has_source, _ = key
    text = name + (f"[{','.join(extras)}]" if extras else "") + specifier
    if has_source:
        declared = sources.get(name)
        shown = ", ".join(_show_source(s) for s in declared) if declared else "a direct URL"
        text += f" from {shown}"
    return text


def _show_source(source: object) -> str:
    if not isinstance(source, dict):
        return repr(source)
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in source.items()) + " }"


def difference(want: Counter, have: Counter, sources: dict[str, list[dict]]) -> str:
    """What differs, one clause per package: added, removed, or what changed (extras, specifier, source, markers)."""
    added, removed = want - have, have - want
    names = sorted({key[0] for key in added} | {key[0] for key in removed})
    clauses = []
    for name in names:
        ours = sorted(k for k in added if k[0] == name)
        theirs = sorted(k for k in removed if k[0] == name)
        if ours and not theirs and not any(k[0] == name for k in have):
            clauses.append(f"{_describe_key(ours[0], sources)} is declared but not in uv.lock")
        elif theirs and not ours and not any(k[0] == name for k in want):
            clauses.append(f"{_describe_key(theirs[0], sources)} is in uv.lock but no longer declared")
        else:
            changes = []
            a = ours[0] if ours else next(k for k in want if k[0] == name)
            b = theirs[0] if theirs else next(k for k in have if k[0] == name)
            if a[1] != b[1]:
                changes.append(f"extras [{','.join(a[1])}] in pyproject.toml, [{','.join(b[1])}] in uv.lock")
            if a[3] != b[3]:
                changes.append(
                    f"[tool.uv.sources] gives it {_describe_key(a, sources).split(' from ', 1)[1]}, uv.lock has it "
                    "from the index" if a[3] else "uv.lock has it from a source that [tool.uv.sources] no longer gives"
                )
            elif a[2] != b[2]:
                changes.append(f"specifier {a[2] or '(any)'!r} in pyproject.toml, {b[2] or '(any)'!r} in uv.lock")
            if not changes:
                changes.append("its markers or sources decide differently on the Lambda runtimes")
            clauses.append(f"{name}: " + "; ".join(changes))
    return "; ".join(clauses)
