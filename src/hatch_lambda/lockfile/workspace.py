"""The workspace a lock covers: its members, where each lives, and which one a build starts from.

uv lists a workspace's members in ``[manifest] members``; a lock of a single
project has its one member at ``.``. A virtual workspace root (no
``[project]``) is no package: the build must name a member. A name that is no
member is refused, as uv refuses it, with the members listed.
"""

from __future__ import annotations

from pathlib import Path

from packaging.utils import (
    canonicalize_name,
)

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import LOCAL_KINDS, Lock, read_toml, source_kind


def workspace_members(lock: Lock) -> list[str]:
    """The workspace's members, canonical and sorted: ``[manifest] members``, else the lock's one project."""
    if lock.members:
        return sorted(lock.members)
    return sorted(
        canonicalize_name(entry["name"])
        for entry in lock.local_entries()
        if entry.get("source", {}).get("editable") == "." or entry.get("source", {}).get("virtual") == "."
    )


def _choose_member_fix(members: list[str]) -> str:
    listed = ", ".join(members) or "none"
    return (
        f"choose a member: `--package NAME` (hatch-lambda requirements), `package = \"NAME\"` in the target's "
        f"table or in a function's, or build from the member's own directory; members: {listed}"
    )


def member_directory(lock: Lock, name: str) -> Path | None:
    """Where a local package of the lock (a workspace member) lives, or None."""
    for entry in lock.entries(name):
        kind, where = source_kind(entry)
        if kind in LOCAL_KINDS:
            return (lock.path.parent / where).resolve()
    return None


def choose_root(project_dir: Path, lock: Lock, package: str | None) -> str:
    """The workspace member a build starts from: ``package``, else the project in ``project_dir``."""
    members = workspace_members(lock)
    if package:
        name = canonicalize_name(package)
        if members and name not in members:
            raise LambdaBuildError(
                f"{package!r} is not a member of the workspace of {lock.path}",
                _choose_member_fix(members),
            )
        return name
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        raise LambdaBuildError(f"no pyproject.toml in {project_dir}")
    data = read_toml(pyproject)
    declared = data.get("project", {}).get("name") if isinstance(data.get("project"), dict) else None
    if not declared:
        what = ("has no [project] table: it is a virtual workspace root, not a package"
                if "project" not in data else "has no [project] name")
        raise LambdaBuildError(f"{pyproject} {what}", _choose_member_fix(members))
    return canonicalize_name(declared)
