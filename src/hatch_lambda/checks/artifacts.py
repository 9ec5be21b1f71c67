"""Finding a built artifact's facts again: its kind, its manifest section, its runtime.

Used by ``hatch-lambda inspect`` and ``hatch-lambda verify``. PATH is a zip
(its ``manifest.json`` is looked for beside it), an output directory holding a
``manifest.json`` (every artifact it lists), or an unpacked tree. A target whose
build stopped while putting its zips in place has no section, only its files
under ``incomplete``: those zips, and a directory holding them, are an error
asking for the build to run again.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.assemble.manifest import MANIFEST, Manifest, Section
from hatch_lambda.checks.zipread import Unsafe, reading, unpack
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import Target

LAYER_KIND = "layer"
FAT_KIND = "function-fat"
FUNCTION_KIND = "function"
TREE_KIND = "tree"


@dataclass(frozen=True)
class Artifact:
    path: Path
    kind: str  # layer, function, function-fat, or tree (an unpacked directory)
    section: Section | None  # its target's section of manifest.json, when there is one

    @property
    def is_zip(self) -> bool:
        return self.kind != TREE_KIND


def _guess_kind(path: Path) -> str:
    with reading(path) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
    return LAYER_KIND if names and all(name.startswith("python/") for name in names) else FAT_KIND


def _describe(path: Path, manifest: Manifest) -> Artifact:
    for section in manifest.sections.values():
        item = section.artifact(path.name)
        if item is not None:
            return Artifact(path, item.kind, section)
    return Artifact(path, _guess_kind(path), None)


def _unfinished(directory: Path, manifest: Manifest, name: str | None = None) -> None:
    """Refuse what a target whose build did not finish was putting in place: ``name``, or anything of it."""
    for kind, files in sorted(manifest.incomplete.items()):
        if name is None or name in files:
            shown = ", ".join(files) if files else "nothing yet"
            raise LambdaBuildError(
                f"{directory / MANIFEST} lists no artifacts of {kind}: its last build into {directory} stopped "
                f"while putting its zips in place ({shown}), so they may be of that build or the one before",
                f"build {kind} again (`hatch build -t {kind}`, with the same -d if one was given): it puts "
                "every zip and the manifest in place",
            )


def find_artifacts(path: Path) -> list[Artifact]:
    """The artifacts PATH stands for, with their manifest sections."""
    if path.is_file():
        manifest = Manifest.load(path.parent)
        _unfinished(path.parent, manifest, path.name)
        return [_describe(path, manifest)]
    if path.is_dir():
        manifest = Manifest.load(path)
        _unfinished(path, manifest)
        out = [Artifact(path / item.file, item.kind, section)
               for section in manifest.sections.values()
               for item in section.artifacts
               if (path / item.file).is_file()]
        return out or [Artifact(path, TREE_KIND, None)]
    raise LambdaBuildError(f"{path} does not exist", "give a zip built by hatch-lambda, or its output directory")


def artifact_command(
    commands: argparse._SubParsersAction, name: str, help: str, path_help: str
) -> argparse.ArgumentParser:
    """A command that reads built artifacts: ``PATH``, ``--python`` / ``--arch`` (see :func:`target_of`), ``--json``."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
    parser.add_argument("path", type=Path, help=path_help)
    parser.add_argument("--python", help=f"Lambda python version ({', '.join(RUNTIMES)}); default: from manifest.json")
    parser.add_argument("--arch", help="x86_64 or arm64; default: from manifest.json, else x86_64")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def target_of(artifact: Artifact, python: str | None, arch: str | None) -> Target:
    """The runtime to check against: the options, else the manifest section."""
    section = artifact.section
    python = python or (section.python if section else None)
    arch = arch or (section.arch if section else None) or "x86_64"
    if not python:
        raise LambdaBuildError(
            f"no manifest.json beside {artifact.path.name} says which Lambda runtime it is for",
            "give --python (and --arch for arm64)",
        )
    return Target(python, arch)


def extract(artifact: Artifact, destination: Path) -> list[Unsafe]:
    """A zip's safe entries unpacked into ``destination`` (capped, see checks/zipread.py); the unsafe ones."""
    return unpack(artifact.path, destination)


def dependency_roots(root: Path, python: str) -> list[Path]:
    """Where the dependencies sit in an unpacked artifact, in Lambda's sys.path order."""
    site = root / "python" / "lib" / f"python{python}" / "site-packages"
    if (root / "python").is_dir():
        return [path for path in (site, root / "python") if path.is_dir()]
    return [root]
