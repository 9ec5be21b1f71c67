"""``hatch-lambda inspect PATH``: where the bytes of an artifact went, and what the audit finds in it."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.assemble.audit import audit_root
from hatch_lambda.checks.artifacts import (
    Artifact,
    artifact_command,
    find_artifacts,
    target_of,
)
from hatch_lambda.checks.zipread import Unsafe, reading, unpack
from hatch_lambda.config.options import MB
from hatch_lambda.packs.contents import (
    OTHER,
    UNKNOWN,
    owners_from_dist_info,
    owners_from_manifest,
)
from hatch_lambda.runtime.target import Target


@dataclass
class Row:
    name: str
    version: str = ""
    files: int = 0
    unzipped: int = 0
    zipped: int = 0  # compressed bytes of its entries (0 for an unpacked tree)
    stripped_files: int = 0
    stripped_bytes: int = 0  # files removed and ELF symbols taken out
    symbols_bytes: int = 0  # of which: ELF symbol tables and debug sections


@dataclass
class ArtifactReport:
    artifact: str
    kind: str
    target: Target
    file_bytes: int | None  # the zip's size on disk
    rows: list[Row] = field(default_factory=list)
    findings: list = field(default_factory=list)
    elf_objects: int = 0
    unsafe: list[Unsafe] = field(default_factory=list)  # entries that would land outside, never extracted

    @property
    def ok(self) -> bool:
        return not self.findings and not self.unsafe

    @property
    def overhead(self) -> int | None:
        """Zip headers and central directory: file size minus the entries' compressed bytes."""
        if self.file_bytes is None:
            return None
        return self.file_bytes - sum(row.zipped for row in self.rows)

    def as_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            "kind": self.kind,
            "python": self.target.python,
            "arch": self.target.arch,
            "file_bytes": self.file_bytes,
            "zip_overhead_bytes": self.overhead,
            "files": sum(row.files for row in self.rows),
            "unzipped_bytes": sum(row.unzipped for row in self.rows),
            "zipped_bytes": sum(row.zipped for row in self.rows),
            "distributions": [row.__dict__ for row in self.rows],
            "audit": {"ok": not self.findings, "elf_objects": self.elf_objects,
                      "findings": [finding.as_dict() for finding in self.findings]},
            "unsafe_entries": [item.as_dict() for item in self.unsafe],
        }


def _prefix(names: list[str], python: str) -> str:
    site = f"python/lib/python{python}/site-packages/"
    if any(name.startswith(site) for name in names):
        return site
    if names and all(name.startswith("python/") for name in names):
        return "python/"
    return ""


def _entries(artifact: Artifact) -> list[tuple[str, int, int]]:
    """(path, unzipped, zipped) of every file of the artifact."""
    if artifact.is_zip:
        with reading(artifact.path) as archive:
            return [(i.filename, i.file_size, i.compress_size) for i in archive.infolist() if not i.is_dir()]
    out = []
    for directory, dirs, files in os.walk(artifact.path):
        dirs.sort()
        for name in sorted(files):
            full = Path(directory, name)
            out.append((full.relative_to(artifact.path).as_posix(), full.lstat().st_size, 0))
    return out


def inspect_artifact(artifact: Artifact, target: Target) -> ArtifactReport:
    with tempfile.TemporaryDirectory(prefix="hatch-lambda-inspect-") as scratch:
        # first: the zip read through (archive errors, caps), its ELF files unpacked, its unsafe entries found
        unsafe = unpack(artifact.path, Path(scratch), _is_elf) if artifact.is_zip else []
        tally = _tally(artifact, target)
        names = {name.rsplit("/", 1)[-1] for name in tally.owner}
        audited = audit_root(Path(scratch) if artifact.is_zip else artifact.path, target, tally.owner,
                             names if artifact.is_zip else frozenset())
    report = tally.report
    report.findings = audited.findings
    report.elf_objects = len(audited.objects)
    report.unsafe = unsafe
    return report


@dataclass(frozen=True)
class _Tally:
    report: ArtifactReport
    owner: dict[str, str]  # each file's distribution


def _is_elf(info: object, head: bytes) -> bool:
    return head[:4] == b"\x7fELF"


def _tally(artifact: Artifact, target: Target) -> _Tally:
    """The table: each file's distribution, and their sizes."""
    entries = _entries(artifact)
    names = [name for name, _, _ in entries]
    prefix = _prefix(names, target.python)
    recorded = artifact.section.contents if artifact.section else {}
    tops = owners_from_manifest(recorded)
    files: dict[str, str] = {}
    if not tops and artifact.is_zip:
        with reading(artifact.path) as archive:
            tops, files = owners_from_dist_info(names, prefix, archive.read)
    elif not tops:
        tops, files = owners_from_dist_info(names, prefix, lambda name: (artifact.path / name).read_bytes())
    rows: dict[str, Row] = {}
    owner: dict[str, str] = {}
    for name, unzipped, zipped in entries:
        rest = name[len(prefix):] if name.startswith(prefix) else name
        dist = files.get(name) or tops.get(rest.split("/", 1)[0]) or (OTHER if recorded else UNKNOWN)
        owner[name] = dist
        row = rows.setdefault(dist, Row(dist, recorded[dist].version if dist in recorded else ""))
        row.files += 1
        row.unzipped += unzipped
        row.zipped += zipped
    for dist, info in recorded.items():
        if dist in rows:
            rows[dist].stripped_files = info.stripped_files
            rows[dist].stripped_bytes = info.stripped_bytes
            rows[dist].symbols_bytes = info.symbols_bytes
    report = ArtifactReport(
        artifact.path.name,
        artifact.kind,
        target,
        artifact.path.stat().st_size if artifact.is_zip else None,
        sorted(rows.values(), key=lambda row: (-row.unzipped, row.name)),
    )
    return _Tally(report, owner)


def _mb(size: int) -> str:
    return f"{size / MB:8.2f} MB"


def _stripped(row: Row) -> str:
    """What stripping took from one distribution: bytes, files removed, symbols taken out of its ELF files."""
    parts = [f"{row.stripped_files} files"] if row.stripped_files else []
    if row.symbols_bytes:
        parts.append(f"symbols {row.symbols_bytes / MB:.2f} MB")
    return f"{_mb(row.stripped_bytes)} ({', '.join(parts)})" if parts else ""


def render(report: ArtifactReport) -> str:
    data = report.as_dict()
    head = (f"{report.artifact} ({report.kind}) for {report.target.describe()}: {data['files']} files, "
            f"{data['unzipped_bytes'] / MB:.2f} MB unzipped")
    if report.file_bytes is not None:
        head += f", {report.file_bytes / MB:.2f} MB zipped"
    lines = [head, f"  {'distribution':<32} {'version':<12} {'files':>6} {'unzipped':>11} {'zipped':>11} "
                   f"{'stripped':>11}"]
    for row in report.rows:
        stripped = _stripped(row)
        lines.append(f"  {row.name:<32} {row.version:<12} {row.files:>6} {_mb(row.unzipped):>11} "
                     f"{_mb(row.zipped):>11} {stripped}")
    if report.overhead is not None:
        lines.append(f"  {'(zip headers and directory)':<32} {'':<12} {'':>6} {'':>11} {_mb(report.overhead):>11}")
    if report.unsafe:
        lines.append(f"  unsafe: {len(report.unsafe)} entries would land outside the zip's root; not extracted:")
        lines += [f"    {item.line}" for item in report.unsafe]
    if report.findings:
        lines.append(f"  audit: {len(report.findings)} problems in {report.elf_objects} ELF objects:")
        lines += [f"    {finding.line}" for finding in report.findings]
    else:
        lines.append(f"  audit: {report.elf_objects} ELF objects, all fit the runtime")
    return "\n".join(lines)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = artifact_command(
        commands, "inspect",
        help="sizes by distribution, what stripping removed, and the native-code audit of a built artifact",
        path_help="a zip, the output directory (with manifest.json), or an unpacked tree",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """0: everything fits; 1: the audit found problems, or unsafe entries; 2: an error (see docs/inspect-verify.md)."""
    reports = [inspect_artifact(a, target_of(a, args.python, args.arch)) for a in find_artifacts(args.path)]
    ok = all(report.ok for report in reports)
    if args.json:
        print(json.dumps({"ok": ok, "artifacts": [report.as_dict() for report in reports]}, indent=2))
    else:
        print("\n\n".join(render(report) for report in reports))
    return 0 if ok else 1

