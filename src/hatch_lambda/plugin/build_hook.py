"""The ``lambda`` build hook: a wheel build also writes the Lambda artifacts.

PEP 517 frontends (``uv build``, ``python -m build``, pip) only ask hatchling
for an sdist and a wheel. With this hook enabled on the wheel target, each
regular wheel build ends by running the ``lambda-layer`` / ``lambda-fat``
builders into ``<wheel directory>/lambda/``, so every frontend writes the same
artifacts as ``hatch build -t lambda-layer``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from hatch_lambda.config.options import FAT, LAYER
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.nesting import is_nested
from hatch_lambda.plugin.builders import LambdaFatBuilder, LambdaLayerBuilder

HOOK = "lambda"
SUBDIRECTORY = "lambda"
BUILDERS = {LAYER: LambdaLayerBuilder, FAT: LambdaFatBuilder}
#: Keys hatchling itself reads from any hook's table.
HATCHLING_HOOK_KEYS = frozenset(
    {"enable-by-default", "dependencies", "require-runtime-dependencies", "require-runtime-features"}
)
HOOK_KEYS = ("targets",)


def hook_targets(config: dict[str, Any], table: str) -> tuple[str, ...]:
    """The validated ``targets`` of the hook's table (default: lambda-layer only)."""
    for key in config:
        if key not in HOOK_KEYS and key not in HATCHLING_HOOK_KEYS:
            raise LambdaBuildError(
                f"unknown key {key!r} in {table} of pyproject.toml",
                f"valid keys: {', '.join(HOOK_KEYS)} (and hatchling's enable-by-default)",
            )
    targets = config.get("targets", [LAYER])
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise LambdaBuildError(
            f"targets in {table} of pyproject.toml must be a non-empty list of strings, not {targets!r}",
            f'e.g. targets = ["{LAYER}", "{FAT}"]',
        )
    for target in targets:
        if target not in BUILDERS:
            raise LambdaBuildError(
                f"unknown target {target!r} in targets of {table} of pyproject.toml",
                f"use {LAYER!r} and/or {FAT!r}",
            )
    return tuple(dict.fromkeys(targets))


class LambdaBuildHook(BuildHookInterface):
    PLUGIN_NAME = HOOK

    @property
    def table(self) -> str:
        """Where the hook's table is: the wheel target's, else hatch's table for every target."""
        if HOOK in self.build_config.target_config.get("hooks", {}):
            return f"[tool.hatch.build.targets.{self.target_name}.hooks.{HOOK}]"
        return f"[tool.hatch.build.hooks.{HOOK}]"

    @property
    def output_directory(self) -> Path:
        return Path(self.directory, SUBDIRECTORY)

    def active(self, version: str) -> bool:
        # Only a regular wheel: not editable installs, not the sdist (its wheel
        # is built from it later), and never inside a Lambda build's own wheel builds.
        return self.target_name == "wheel" and version == "standard" and not is_nested()

    def checked_targets(self, *, lock: bool = True) -> tuple[str, ...]:
        try:
            targets = hook_targets(self.config, self.table)
            if lock:
                self._check_lock_is_here()
        except LambdaBuildError as exc:
            self.app.abort(f"hatch-lambda: {exc}", code=2)
            raise  # abort exits; this line only runs with a test double
        return targets

    def clean(self, versions: list[str]) -> None:
        """``hatch build -c`` / ``hatchling build -c``: the wheel goes, and so do the hooked targets' zips."""
        if self.target_name != "wheel" or is_nested():
            return
        for target in self.checked_targets(lock=False):
            BUILDERS[target](self.root, app=self.app).clean(str(self.output_directory), ["standard"])

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Refuse a wrong hook table before the wheel is built, not after."""
        if self.active(version):
            self.checked_targets()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if not self.active(version):
            return
        for target in self.checked_targets():
            builder = BUILDERS[target](self.root, app=self.app)
            # The builders report their own errors (exit status 2) and leave earlier artifacts alone.
            for artifact in builder.build(directory=str(self.output_directory), versions=["standard"]):
                self.app.display_info(os.path.relpath(artifact, self.directory))

    def _check_lock_is_here(self) -> None:
        """A wheel built from an unpacked sdist (``uv build``) needs ``uv.lock`` inside that sdist."""
        root = Path(self.root)
        if (root / "PKG-INFO").is_file() and not (root / "uv.lock").is_file():
            raise LambdaBuildError(
                f"the wheel is built from an sdist of {self.metadata.core.name} that holds no uv.lock",
                "include uv.lock in the sdist (hatchling's sdist target does unless it is excluded or "
                "git-ignored; a workspace member's lock lives in the workspace root), or build the wheel "
                "straight from the project: `uv build --wheel`",
            )
