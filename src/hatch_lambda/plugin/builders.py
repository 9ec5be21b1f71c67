"""The hatchling builders ``lambda-layer`` and ``lambda-fat``.

Thin glue: read the target's table, collect each function's code the way
hatch's wheel target selects files, and hand over to :mod:`hatch_lambda.pipeline`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.constants import BuildEnvVars
from hatchling.builders.plugin.interface import BuilderInterface
from hatchling.builders.wheel import WheelBuilder

from hatch_lambda.assemble.publish import withdraw
from hatch_lambda.config.functions import Function
from hatch_lambda.config.options import FAT, LAYER, LambdaConfig, load_config
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import read_toml, too_deep
from hatch_lambda.packs.deflate import Entry
from hatch_lambda.pipeline import InterruptedAfterPublishing, build
from hatch_lambda.plugin.confine import confined
from hatch_lambda.plugin.secrets import filter_secrets
from hatch_lambda.scratch import output_directory


class LambdaBuilderConfig(BuilderConfig):
    @property
    def directory(self) -> str:
        """``directory`` of the target (lambda-fat falls back to lambda-layer's, like every key),
        else ``<hatch's build directory>/lambda``."""
        if "directory" in self.target_config:
            return super().directory
        layer = self.build_config.get("targets", {}).get(LAYER, {})
        if self.plugin_name == FAT and isinstance(layer, dict) and "directory" in layer:
            directory = layer["directory"]
            if not isinstance(directory, str):
                raise TypeError(f"Field `tool.hatch.build.targets.{LAYER}.directory` must be a string")
            return self.normalize_build_directory(directory)
        return os.path.join(super().directory, "lambda")


class _LambdaBuilder(BuilderInterface):
    KIND = ""

    @classmethod
    def get_config_class(cls) -> type[BuilderConfig]:
        return LambdaBuilderConfig

    def get_version_api(self) -> dict[str, Any]:
        return {"standard": self._build_standard}

    def get_default_versions(self) -> list[str]:
        return ["standard"]

    def build(self, **kwargs: Any) -> Generator[str, None, None]:
        # hatchling checks, then creates, the output directory: two builds started
        # at once (lambda-layer and lambda-fat) race there, so create it first.
        with self._reported():
            output_directory(Path(self._output(kwargs)))
        # One "version" writes several zips; report each the way hatch reports a wheel.
        self._artifacts: list[str] = []
        # `hatch build -c` (clean) or HATCH_LAMBDA_NO_CACHE=1: build everything afresh, reading no cache.
        self._no_cache = bool(kwargs.get("clean")) or os.environ.get("HATCH_LAMBDA_NO_CACHE", "") not in ("", "0")
        for _ in super().build(**kwargs):
            yield from self._artifacts

    def _output(self, kwargs: dict[str, Any]) -> str:
        """The output directory hatchling will use: ``-d``, else hatch's location variable, else the table's."""
        directory = kwargs.get("directory")
        if directory is not None:
            return str(directory)
        location = os.environ.get(BuildEnvVars.LOCATION)
        try:
            return self.config.normalize_build_directory(location) if location else self.config.directory
        except (RecursionError, MemoryError):  # hatchling reads pyproject.toml here, with tomllib
            raise too_deep(Path(self.root) / "pyproject.toml") from None

    @contextmanager
    def _reported(self) -> Iterator[None]:
        """A LambdaBuildError becomes hatchling's one-message abort with exit status 2."""
        try:
            yield
        except LambdaBuildError as exc:
            self.app.abort(f"hatch-lambda: {exc}", code=2)
            raise  # abort exits; this line only runs with a test double

    def clean(self, directory: str, versions: list[str]) -> None:
        """Remove the zips a previous build of this target wrote, and its manifest section (see
        :func:`~hatch_lambda.assemble.publish.withdraw`: a file another target's section lists too stays)."""
        with self._reported():
            withdraw(Path(directory), self.KIND)

    def lambda_config(self, environ: Mapping[str, str] = os.environ) -> LambdaConfig:
        targets = self.build_config.get("targets", {})
        return load_config(
            self.KIND,
            self.target_config,
            targets.get(LAYER, {}),
            project_name=self.metadata.core.name,
            requires_python=self.metadata.core.requires_python,
            environ=environ,
        )

    def _build_standard(self, directory: str, **build_data: Any) -> str:
        try:
            with self._reported():
                config = self.lambda_config()
                output = build(
                    config,
                    Path(self.root),
                    Path(directory),
                    lambda function, where: self.function_code(function, config, where, Path(directory)),
                    log=self.app.display_info,
                    warn=self.app.display_warning,
                    no_cache=getattr(self, "_no_cache", False),
                    neighbours=self.neighbours(Path(directory)),
                )
        except InterruptedAfterPublishing as interrupted:
            self.app.abort(f"hatch-lambda: interrupted once the new artifacts were in place; "
                           f"{interrupted.output.manifest} describes them", code=130)
            raise
        except KeyboardInterrupt:
            # The scratch directory is gone by now; nothing in the output directory was replaced.
            self.app.abort("hatch-lambda: interrupted; the previous artifacts are untouched", code=130)
            raise
        self._artifacts = [str(path) for path in output.artifacts]
        self.app.display_info(f"wrote {output.manifest}")
        return self._artifacts[0]

    def function_code(self, function: Function, config: LambdaConfig, directory: Path | None = None,
                      output: Path | None = None) -> list[Entry]:
        """The function's files, kept to the project and without the build output (``output`` and the
        targets' directories) nor files that look like secrets (reported as left out)."""
        roots = [Path(self.root)] + ([directory] if directory is not None else [])
        outputs = self.output_directories() + ([output] if output is not None else [])
        files = confined(self.function_files(function, directory), function.name, roots, outputs)
        if not files:
            raise LambdaBuildError(
                f"function {function.name!r} selects no files in {directory or self.root} but build output",
                f"check its packages/include under [tool.hatch.build.targets.{LAYER}.functions]",
            )
        picked = filter_secrets(files, config.include_secrets)
        for name in picked.left_out:
            self.app.display_warning(
                f"hatch-lambda: left {name} out of function {function.name!r}: it looks like a secret "
                f"(list it in include-secrets to ship it)"
            )
        return picked.kept

    def neighbours(self, directory: Path) -> tuple[LambdaConfig, ...]:
        """The config of the other target (lambda-fat for lambda-layer, and back) when pyproject.toml declares
        its table and it writes into ``directory`` too: its own ``directory`` is the same, or this build's was
        given for the build (``-d``, the build hook, ``hatch-lambda build``), where the other goes as well."""
        other = LambdaFatBuilder if self.KIND == LAYER else LambdaLayerBuilder
        if other.KIND not in self.build_config.get("targets", {}):
            return ()
        try:
            builder = other(self.root, plugin_manager=self.plugin_manager, config=self.raw_config, app=self.app)
            here, own = directory.resolve(), Path(self.config.directory).resolve()
            if here == own and Path(builder.config.directory).resolve() != own:
                return ()  # each target into a directory of its own
            return (builder.lambda_config(),)
        except (LambdaBuildError, TypeError, ValueError):  # a bad table: that target's own build says so
            return ()

    def output_directories(self) -> list[Path]:
        """Where lambda-layer and lambda-fat write by default (their ``directory``), as configured."""
        found = []
        for builder in (LambdaLayerBuilder, LambdaFatBuilder):
            try:
                other = builder(self.root, plugin_manager=self.plugin_manager, config=self.raw_config, app=self.app)
                found.append(Path(other.config.directory))
            except (TypeError, ValueError):  # a bad directory: that target's own build says so
                continue
        return found

    def function_files(self, function: Function, directory: Path | None = None) -> list[Entry]:
        """The files hatch's wheel target would ship with this function's options.

        ``directory``: the project the function's code is in (a workspace member
        named by ``package``), with that project's own wheel target as the default.
        """
        own = directory is None or Path(directory).resolve() == Path(self.root).resolve()
        root = self.root if own else str(directory)
        raw = copy.deepcopy(self.raw_config) if own else read_toml(Path(root) / "pyproject.toml")
        targets = raw.setdefault("tool", {}).setdefault("hatch", {}).setdefault("build", {}).setdefault("targets", {})
        selection = {
            key: list(value)
            for key, value in (
                ("packages", function.packages),
                ("include", function.include),
                ("exclude", function.exclude),
                ("only-include", function.only_include),
            )
            if value
        }
        if selection:
            targets["wheel"] = selection  # the function's selection replaces the wheel target's
        if function.sources:
            wheel = targets.setdefault("wheel", {})
            if not isinstance(wheel, dict):
                wheel = targets["wheel"] = {}
            pairs = dict(function.sources)
            wheel["sources"] = list(pairs) if not any(pairs.values()) else pairs
        # No metadata=self.metadata: hatchling reads the build tables from the
        # metadata object, so sharing it would ignore the function's options.
        wheel_builder = WheelBuilder(root, plugin_manager=self.plugin_manager, config=raw, app=self.app)
        table = f"[tool.hatch.build.targets.{LAYER}.functions]"
        try:
            entries = [
                Entry(included.distribution_path.replace(os.sep, "/"), Path(included.path))
                for included in wheel_builder.recurse_included_files()
            ]
        except (ValueError, TypeError) as exc:
            raise LambdaBuildError(
                f"cannot select the code of function {function.name!r} in {root}: {exc}",
                _selection_fix(function, Path(root), table),
            ) from None
        if not entries:
            raise LambdaBuildError(
                f"function {function.name!r} selects no files in {root}",
                f"check its packages/include under {table}",
            )
        return entries


def _selection_fix(function: Function, root: Path, table: str) -> str:
    """What to write so hatch finds the function's code: the handler's module file when it is there."""
    module = function.handler_module
    if module:
        for candidate in (f"{module.replace('.', '/')}.py", module.split(".")[0]):
            found = [path for path in (root / candidate, root / "src" / candidate) if path.exists()]
            if found:
                relative = found[0].relative_to(root).as_posix()
                parent = relative.rsplit("/", 1)[0] if "/" in relative else ""
                option = f'only-include = ["{relative}"]' + (f', sources = ["{parent}"]' if parent else "")
                return f"the handler's module is {relative}: set {option} for {function.name} under {table}"
    flat = sorted(p.name for p in root.glob("*.py") if p.name != "setup.py")
    if flat:
        return (f"the project has modules at its top level ({', '.join(flat[:5])}): list them, e.g. "
                f'only-include = ["{flat[0]}"], for {function.name} under {table}')
    return f"set packages/include for {function.name} under {table}"


class LambdaLayerBuilder(_LambdaBuilder):
    PLUGIN_NAME = LAYER
    KIND = LAYER


class LambdaFatBuilder(_LambdaBuilder):
    PLUGIN_NAME = FAT
    KIND = FAT
