"""Artifact names: one namespace per output directory, checked before anything is built.

lambda-layer writes ``layer.zip`` and ``<function>.zip``, lambda-fat
``<function>-fat.zip``, so a lambda-layer function ``api-fat`` and a lambda-fat
function ``api`` would write one file: the manifest would then record a digest
that is not the file's, and ``-c`` on one target would delete the other's zip.
A build is refused when a name it would write is one that ``manifest.json`` in
its directory says another target wrote, or that the other target's table
would write there, or when two of its own names differ only in case (one file
where the file system ignores case, as macOS and Windows do by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hatch_lambda.assemble.manifest import MANIFEST, Manifest
from hatch_lambda.config.options import LAYER, LambdaConfig
from hatch_lambda.errors import LambdaBuildError

LAYER_ZIP = "layer.zip"


def zip_name(kind: str, function: str) -> str:
    """The zip target ``kind`` writes for ``function``."""
    return f"{function}.zip" if kind == LAYER else f"{function}-fat.zip"


def artifact_names(config: LambdaConfig) -> dict[str, str]:
    """file -> what writes it (``layer.zip`` -> "the layer", ``api.zip`` -> "function 'api'")."""
    names = {LAYER_ZIP: "the layer"} if config.kind == LAYER else {}
    for function in config.functions:
        names[zip_name(config.kind, function.name)] = f"function {function.name!r}"
    return names


def check_names(config: LambdaConfig, out_dir: Path, others: Iterable[LambdaConfig] = ()) -> None:
    """Refuse a build whose artifact names clash, in ``out_dir``, with each other (ignoring case), with what
    ``manifest.json`` there says another target wrote, or with what ``others`` (other targets' configs,
    built into the same directory) would write."""
    out_dir = out_dir.absolute()
    mine = artifact_names(config)
    table = f"[tool.hatch.build.targets.{config.kind}]"
    seen: dict[str, str] = {}
    for file in sorted(mine):
        folded = file.casefold()
        if folded in seen:
            raise LambdaBuildError(
                f"{mine[seen[folded]]} and {mine[file]} of {config.kind} write {seen[folded]} and {file}, one "
                "file where the file system ignores case (macOS, Windows)",
                f"rename one of them in the functions of {table} in pyproject.toml",
            )
        seen[folded] = file
    document = Manifest.read(out_dir)
    for kind, section in sorted(document.sections.items()):
        if kind == config.kind:
            continue
        functions = {entry.filename: name for name, entry in section.functions.items()}
        for artifact in section.artifacts:
            ours = seen.get(artifact.file.casefold())
            if ours is not None:
                theirs = f"function {functions[artifact.file]!r}" if artifact.file in functions else "the layer"
                raise LambdaBuildError(
                    f"{mine[ours]} of {config.kind} would write {ours} in {out_dir}, where {MANIFEST} says "
                    f"{theirs} of {kind} wrote {artifact.file}",
                    _fix(config, kind),
                )
    for other in others:
        if other.kind == config.kind:
            continue
        for file, what in sorted(artifact_names(other).items()):
            clash = seen.get(file.casefold())
            if clash is not None:
                raise LambdaBuildError(
                    f"{mine[clash]} of {config.kind} and {what} of {other.kind} (in pyproject.toml) both write "
                    f"{file} in {out_dir}",
                    _fix(config, other.kind),
                )


def _fix(config: LambdaConfig, other: str) -> str:
    return (f"rename one of the functions (under [tool.hatch.build.targets.{config.kind}.functions] or "
            f"[tool.hatch.build.targets.{other}.functions] in pyproject.toml), or build the two targets into "
            "different directories (directory = ...)")
