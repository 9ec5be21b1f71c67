"""``manifest.json``: what a build wrote, one section per target, beside the zips; typed.

The file is ``{"format": 1, "targets": {"lambda-layer": <Section>, ...}}``, plus
``"incomplete": {"lambda-layer": ["layer.zip", ...]}`` while (or, after a crash,
since) a target's build puts its zips in place: that target has no section
then, and the list names the files that may be of either build (see
:mod:`hatch_lambda.assemble.publish`). Every reader goes through :meth:`Manifest.read` (the build: a section it
cannot read is left out, it is rewritten anyway) or :meth:`Manifest.load`
(``inspect`` and ``verify``: anything wrong is one error naming the key) and
reads attributes; a section of an older build (keys missing) reads with their
defaults. The files a manifest names are plain names in its own directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.jsondata import Json, ShapeError
from hatch_lambda.packs.contents import DistributionContents
from hatch_lambda.scratch import MANIFEST, MANIFEST_FORMAT

FORMAT = MANIFEST_FORMAT


@dataclass(frozen=True)
class LockedDistribution(Json):
    name: str
    version: str = ""
    source: str = ""  # the lock's source kind: registry, url, git, editable, ...
    file: str | None = None  # the wheel or sdist chosen


@dataclass(frozen=True)
class ArtifactEntry(Json):
    file: str
    kind: str = "function-fat"  # layer, function or function-fat
    sha256: str = ""
    sha256_base64: str = ""  # as Terraform's source_code_hash and CloudFormation want it
    zipped_bytes: int = 0
    unzipped_bytes: int = 0
    entries: int = 0


@dataclass(frozen=True)
class FunctionEntry(Json):
    """A function as Terraform's aws_lambda_function, SAM and the CDK name its settings."""

    filename: str
    source_code_hash: str = ""
    handler: str | None = None
    runtime: str = ""
    architectures: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    package: str = ""
    distributions: list[str] = field(default_factory=list)
    handler_check: str | None = None  # "imported", "imported in IMAGE", "static", or None (no handler)


@dataclass(frozen=True)
class LayerEntry(Json):
    """The layer as aws_lambda_layer_version and AWS::Lambda::LayerVersion name its settings."""

    filename: str
    source_code_hash: str = ""
    compatible_runtimes: list[str] = field(default_factory=list)
    compatible_architectures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LockFacts(Json):
    file: str = "uv.lock"
    sha256: str = ""


@dataclass(frozen=True)
class Stripped(Json):
    files: int = 0
    bytes: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    symbols_files: int = 0  # ELF files whose symbol tables and debug sections were taken out
    left_alone: list[str] = field(default_factory=list)  # ELF files whose layout allowed no safe removal


@dataclass(frozen=True)
class AuditFacts(Json):
    mode: str = "error"
    findings: list[dict] = field(default_factory=list)  # Finding.as_dict() of each


@dataclass(frozen=True)
class Bytecode(Json):
    """The bytecode the artifacts ship: "compile", "only" or "off", and the CPython release that compiled it."""

    mode: str = "off"
    compiler: str | None = None  # "3.12.8"; None without bytecode


@dataclass(frozen=True)
class Section(Json):
    """One target's part of the manifest."""

    python: str = ""
    runtime: str = ""
    arch: str = "x86_64"
    layout: str = "python"  # "python", "site-packages", or "root" for fat zips
    lock: LockFacts = field(default_factory=LockFacts)
    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    distributions: list[LockedDistribution] = field(default_factory=list)
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    functions: dict[str, FunctionEntry] = field(default_factory=dict)
    stripped: Stripped = field(default_factory=Stripped)
    contents: dict[str, DistributionContents] = field(default_factory=dict)
    audit: AuditFacts = field(default_factory=AuditFacts)
    bytecode: Bytecode = field(default_factory=Bytecode)
    layer: LayerEntry | None = None

    def artifact(self, file: str) -> ArtifactEntry | None:
        return next((item for item in self.artifacts if item.file == file), None)

    def modules(self) -> set[str]:
        """The top-level modules the build recorded for its distributions."""
        return {module for info in self.contents.values() for module in info.modules}


@dataclass
class Manifest:
    sections: dict[str, Section] = field(default_factory=dict)
    #: target -> the files its build was putting in place when it stopped: its section is gone until it builds again
    incomplete: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """``directory/manifest.json`` (empty when it is missing or unreadable)."""
        try:
            data = json.loads((directory / MANIFEST).read_text())
        except (OSError, ValueError):
            return cls()
        return cls._tolerant(data)

    @classmethod
    def _tolerant(cls, data: object) -> Manifest:
        targets = data.get("targets") if isinstance(data, dict) else None
        sections = {}
        for kind, section in (targets.items() if isinstance(targets, dict) else ()):
            try:
                sections[kind] = Section.from_json(section)
            except (ValueError, TypeError, KeyError):
                continue  # not a section this reader understands
        marked = data.get("incomplete") if isinstance(data, dict) else None
        incomplete = {kind: [name for name in files if isinstance(name, str) and plain_name(name)]
                      for kind, files in (marked.items() if isinstance(marked, dict) else ())
                      if isinstance(files, list)}
        return cls(sections, incomplete)

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """``directory/manifest.json`` checked whole (empty when there is none): one error for anything wrong."""
        path = directory / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise _bad(path, f"cannot be read: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _bad(path, f"is not JSON: {exc}") from None
        try:
            if not isinstance(data, dict) or "targets" not in data or not isinstance(data["targets"], dict):
                raise ShapeError("expected an object with a 'targets' object")
            targets = data["targets"]
            sections = {kind: Section.from_json(section, f"targets.{kind}") for kind, section in targets.items()}
            incomplete = _incomplete(data.get("incomplete", {}))
        except ShapeError as exc:
            raise _bad(path, f"is not a manifest hatch-lambda wrote: {exc}") from None
        for kind, section in sections.items():
            _confine(path, kind, section)
        for kind, files in incomplete.items():
            _confine_names(path, [(f"incomplete.{kind}[{n}]", name) for n, name in enumerate(files)])
        return cls(sections, incomplete)

    def text(self) -> str:
        """The document: lambda-layer and lambda-fat share one manifest.json, each in its own section."""
        data: dict[str, object] = {"format": FORMAT,
                                   "targets": {kind: section.to_json() for kind, section in self.sections.items()}}
        if self.incomplete:
            data["incomplete"] = {kind: sorted(files) for kind, files in self.incomplete.items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        """:meth:`text` written to ``path`` (not atomically: the build publishes with :mod:`.publish`)."""
        path.write_text(self.text())

    def listed(self) -> set[str]:
        """Every file a section lists."""
        return {item.file for section in self.sections.values() for item in section.artifacts}


def _bad(path: Path, what: str) -> LambdaBuildError:
    return LambdaBuildError(f"{path} {what}",
                            f"build again to write a new {MANIFEST}, or remove it (then give --python and --arch)")


def plain_name(name: str) -> bool:
    """A file name in the manifest's own directory: no separator, no ``..``."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def _incomplete(value: object) -> dict[str, list[str]]:
    """The ``incomplete`` object: target -> a list of file names."""
    if not isinstance(value, dict):
        raise ShapeError("incomplete: expected an object of lists of file names")
    for kind, files in value.items():
        if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
            raise ShapeError(f"incomplete.{kind}: expected a list of file names")
    return {kind: list(files) for kind, files in value.items()}


def _confine(path: Path, kind: str, section: Section) -> None:
    named = [(f"artifacts[{n}].file", item.file) for n, item in enumerate(section.artifacts)]
    named += [(f"functions.{name}.filename", item.filename) for name, item in section.functions.items()]
    if section.layer is not None:
        named.append(("layer.filename", section.layer.filename))
    _confine_names(path, [(f"targets.{kind}.{key}", name) for key, name in named])


def _confine_names(path: Path, named: list[tuple[str, str]]) -> None:
    for key, name in named:
        if not plain_name(name):
            raise LambdaBuildError(
                f"{path}: {key} is {name!r}, not a file name in the manifest's directory",
                "a manifest names the zips beside it by their plain names: build again to write a new "
                f"{MANIFEST}, or correct the entry",
            )
