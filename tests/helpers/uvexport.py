"""``uv export`` as the reference for the lock reader: what uv selects for one Lambda target.

uv export writes one line per distribution with the marker under which it is
needed; judging those markers for the target (at the patch release its runtime
runs) gives the set uv would install there. Both sides are written as
:func:`identity` strings: ``name==version``, plus where it comes from when that
is not an index, as uv export writes it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hatch_lambda.fetch.git import parse_git_source
from hatch_lambda.lockfile.file import Lock, source_kind
from hatch_lambda.lockfile.markers import encode_extra, encode_group, evaluate
from hatch_lambda.runtime.target import Target

from helpers.projects import uv_command


@dataclass(frozen=True)
class Selection:
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    package: str | None = None
    prune: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        parts = [f"extra={e}" for e in self.extras] + [f"group={g}" for g in self.groups]
        parts += [f"package={self.package}"] if self.package else []
        parts += [f"prune={p}" for p in self.prune]
        return ",".join(parts) or "base"


@cache
def uv_export(directory: Path, selection: Selection) -> tuple[str, ...]:
    """``uv export`` lines (target-independent; each line carries the marker it is needed under).

    resolve(groups=...) is the project's dependencies plus those groups, and
    nothing by default: uv's default groups ("dev") are turned off and each
    asked-for group added back.
    """
    command = [*uv_command(), "export", "--frozen", "--no-default-groups", "--no-emit-project", "--no-editable",
               "--no-hashes", "--no-header", "--no-annotate"]
    for extra in selection.extras:
        command += ["--extra", extra]
    for group in selection.groups:
        command += ["--group", group]
    if selection.package:
        command += ["--package", selection.package]
    for name in selection.prune:
        command += ["--prune", name]
    run = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "UV_NO_CONFIG": "1"})
    assert run.returncode == 0, f"uv export in {directory} ({selection.id}) failed:\n{run.stderr}"
    return tuple(line for line in run.stdout.splitlines() if line.strip() and not line.startswith("#"))


def identity(dist, lock_dir: Path) -> str:
    """``name==version`` and, when it is not from an index, where it comes from, written as uv export does."""
    if dist.source_kind == "url":
        return f"{dist.pin} @ {dist.source}" + (f"#subdirectory={dist.subdirectory}" if dist.subdirectory else "")
    if dist.source_kind == "git":
        source = parse_git_source(dist.source)
        subdirectory = f"#subdirectory={source.subdirectory}" if source.subdirectory else ""
        return f"{dist.pin} @ git+{source.url}@{source.commit}{subdirectory}"
    if dist.source_kind in ("path", "directory", "editable"):
        return f"{dist.pin} @ {(lock_dir / dist.source).resolve()}"
    return dist.pin


def exported_pins(directory: Path, root: str, selection: Selection, target: Target, lock: Lock) -> set[str]:
    """What uv export in ``directory`` selects for ``target``, as :func:`identity` strings.

    ``root``: the project uv exports (``selection.package`` or the project in ``directory``).
    """
    root = canonicalize_name(selection.package or root)
    active = {encode_extra(root, e) for e in selection.extras} | {encode_group(root, g) for g in selection.groups}
    by_location, by_name = {}, {}
    for entries in lock.packages.values():
        for entry in entries:
            kind, where = source_kind(entry)
            by_name.setdefault((canonicalize_name(entry["name"]), kind), []).append(entry)
            if kind in ("editable", "directory", "path", "virtual"):
                by_location[(lock.path.parent / where).resolve()] = entry
    pins = set()
    for line in uv_export(directory, selection):
        requirement, _, marker = line.partition(" ; ")
        if not evaluate(marker.strip() or None, target.marker_environment, active):
            continue
        requirement = requirement.strip().removeprefix("-e ").strip()
        if requirement.startswith((".", "/", "file:")) and " @ " not in requirement:
            # A workspace member, a local directory or a local file: named through the lock.
            location = (directory / requirement.removeprefix("file://")).resolve()
            entry = by_location[location]
            pin = canonicalize_name(entry["name"]) + (f"=={entry['version']}" if "version" in entry else "")
            pins.add(f"{pin} @ {location}")  # a dynamic version is locked as none
            continue
        parsed = Requirement(requirement)
        name = canonicalize_name(parsed.name)
        if parsed.url:
            kind = "git" if parsed.url.startswith("git+") else "url"
            versions = {entry.get("version") for entry in by_name.get((name, kind), [])}
            assert len(versions) == 1, f"{line}: {len(versions)} versions of {name} from a {kind} source"
            version = versions.pop()
            pins.add(f"{name}{'==' + version if version else ''} @ {parsed.url}")
            continue
        (spec,) = parsed.specifier
        assert spec.operator == "==", line
        pins.add(f"{name}=={spec.version}")
    return pins
