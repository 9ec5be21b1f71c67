"""The ``[tool.hatch.build.targets.lambda-layer]`` / ``lambda-fat`` tables, validated.

``lambda-fat`` reads ``lambda-layer``'s table for every key it does not set
itself, so functions are written once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import Target, check_arch, check_python, lowest_runtime

LAYER = "lambda-layer"
FAT = "lambda-fat"
INSTALLERS = ("auto", "wheels", "docker")
LAYOUTS = ("python", "site-packages")
SIZE_CHECKS = ("error", "warn", "off")
AUDITS = ("error", "warn", "off")
DEFAULT_IMAGE = "public.ecr.aws/lambda/python:{python}"
#: Lambda's limits for a deployment package, in MB (2**20 bytes).
MAX_UNZIPPED_MB = 250
MAX_ZIPPED_MB = 50
#: Environment variables that override the table's python / arch (one build of a matrix).
PYTHON_ENV = "HATCH_LAMBDA_PYTHON"
ARCH_ENV = "HATCH_LAMBDA_ARCH"

#: Keys hatchling itself understands on any build target.
HATCHLING_KEYS = frozenset(
    {"directory", "versions", "hooks", "dependencies", "require-runtime-dependencies", "require-runtime-features"}
)


#: Lambda's Handler setting for Python: ``module.attribute``, the module dotted (``pkg.mod``) or a path (``dir/mod``).
HANDLER = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*)\.(?P<attribute>[A-Za-z_][A-Za-z0-9_]*)$")
#: What Lambda accepts as a function name (letters, digits, hyphens, underscores; 64 at most).
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Function:
    """One function: its code (hatch wheel-target file selection options), its handler and its root."""

    name: str
    packages: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    only_include: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # hatch's prefix rewriting: (prefix, replacement)
    package: str | None = None  # the workspace member whose closure and code this function is
    handler: str | None = None  # "module.attribute", as Lambda's Handler setting
    environment: tuple[tuple[str, str], ...] = ()  # variables the handler import sees, as the function's

    @property
    def is_default(self) -> bool:
        return not (self.packages or self.include or self.exclude or self.only_include or self.sources)

    @property
    def handler_module(self) -> str | None:
        """The module Lambda imports: ``pkg/mod.handler`` -> ``pkg.mod``."""
        return None if self.handler is None else self.handler.rsplit(".", 1)[0].replace("/", ".")

    @property
    def handler_attribute(self) -> str | None:
        return None if self.handler is None else self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class LambdaConfig:
    kind: str  # LAYER or FAT
    target: Target
    installer: str = "auto"
    image: str = DEFAULT_IMAGE
    docker_network: str | None = None
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    exclude_packages: tuple[str, ...] = ()
    exclude_is_default: bool = True  # False when the user wrote exclude-packages
    layout: str = "python"
    strip: bool = True
    compression_level: int = 6  # deflate level (zlib-ng) of every zip entry
    strip_patterns: tuple[str, ...] = ()
    keep_patterns: tuple[str, ...] = ()
    functions: tuple[Function, ...] = ()
    max_unzipped_mb: float = MAX_UNZIPPED_MB
    max_zipped_mb: float = MAX_ZIPPED_MB
    size_check: str = "error"
    package: str | None = None
    audit: str = "error"
    smoke_import: bool = False
    smoke_import_skip: tuple[str, ...] = ()
    include_secrets: tuple[str, ...] = ()
    sources: dict[str, Any] = field(default_factory=dict)  # key -> table it came from

    @property
    def image_name(self) -> str:
        return self.image.format(python=self.target.python, arch=self.target.arch)

    @property
    def layer_prefix(self) -> str:
        """Where the dependencies sit inside layer.zip."""
        if self.layout == "python":
            return "python/"
        return f"python/lib/python{self.target.python}/site-packages/"


def _table_name(kind: str) -> str:
    return f"[tool.hatch.build.targets.{kind}]"


class _Reader:
    """Reads typed keys from the merged tables, naming the table on error."""

    def __init__(self, kind: str, own: dict, inherited: dict) -> None:
        self.kind = kind
        self.own = own
        self.inherited = inherited
        known = set(_KEYS) | HATCHLING_KEYS
        for table_kind, table in ((kind, own), (LAYER, inherited)):
            for key in table:
                if key not in known:
                    raise LambdaBuildError(
                        f"unknown key {key!r} in {_table_name(table_kind)} of pyproject.toml",
                        f"valid keys: {', '.join(sorted(_KEYS))}",
                    )

    def where(self, key: str) -> str:
        return _table_name(self.kind if key in self.own else LAYER)

    def has(self, key: str) -> bool:
        return key in self.own or key in self.inherited

    def raw(self, key: str, default: Any = None) -> Any:
        if key in self.own:
            return self.own[key]
        return self.inherited.get(key, default)

    def fail(self, key: str, expected: str) -> LambdaBuildError:
        return LambdaBuildError(
            f"{key} in {self.where(key)} of pyproject.toml must be {expected}, not {self.raw(key)!r}"
        )

    def string(self, key: str, default: str | None, choices: tuple[str, ...] = ()) -> str | None:
        value = self.raw(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            raise self.fail(key, " or ".join(repr(c) for c in choices) if choices else "a string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(key, "a positive number")
        return value

    def level(self, key: str, default: int) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 9:
            raise self.fail(key, "a whole number from 1 to 9")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings")
        return tuple(value)


_KEYS = (
    "python",
    "arch",
    "installer",
    "image",
    "docker-network",
    "extras",
    "groups",
    "exclude-packages",
    "layout",
    "strip",
    "compression-level",
    "strip-patterns",
    "keep-patterns",
    "functions",
    "max-unzipped-mb",
    "max-zipped-mb",
    "size-check",
    "package",
    "audit",
    "smoke-import",
    "smoke-import-skip",
    "include-secrets",
)
_FUNCTION_KEYS = ("packages", "include", "exclude", "only-include", "sources", "package", "handler", "environment")


def load_config(
    kind: str,
    own: dict,
    layer_table: dict,
    *,
    project_name: str,
    requires_python: str | None,
    environ: Mapping[str, str] | None = None,
) -> LambdaConfig:
    """Build the config of target ``kind`` from its own table and lambda-layer's.

    ``environ`` (the builders pass ``os.environ``) may override python and arch
    through ``HATCH_LAMBDA_PYTHON`` / ``HATCH_LAMBDA_ARCH``.
    """
    inherited = layer_table if kind == FAT else {}
    reader = _Reader(kind, own, inherited)

    python = reader.raw("python")
    if python is None:
        python = lowest_runtime(requires_python)
    elif not isinstance(python, str):
        raise reader.fail("python", f"a string, one of {', '.join(RUNTIMES)}")
    arch = reader.string("arch", "x86_64")
    for variable, check in ((PYTHON_ENV, check_python), (ARCH_ENV, check_arch)):
        value = (environ or {}).get(variable, "").strip()
        if not value:
            continue
        try:
            value = check(value)
        except LambdaBuildError as exc:
            raise LambdaBuildError(f"{exc.problem} (from the environment variable {variable})", exc.fix) from None
        if variable == PYTHON_ENV:
            python = value
        else:
            arch = value
    for key, check, value in (("python", check_python, python), ("arch", check_arch, arch)):
        try:
            check(value)
        except LambdaBuildError as exc:
            where = reader.where(key) if reader.has(key) else "requires-python"
            raise LambdaBuildError(f"{exc.problem} (from {where} of pyproject.toml)", exc.fix) from None

    default_excluded = ("boto3", "botocore") if kind == FAT else ()
    # exclude-packages is the one key fat does not inherit: its default differs.
    exclude = own.get("exclude-packages", list(default_excluded))
    if not isinstance(exclude, list) or not all(isinstance(v, str) for v in exclude):
        raise reader.fail("exclude-packages", "a list of strings")

    return LambdaConfig(
        kind=kind,
        target=Target(python, arch),
        installer=reader.string("installer", "auto", INSTALLERS),
        image=reader.string("image", DEFAULT_IMAGE),
        docker_network=reader.string("docker-network", None),
        extras=reader.strings("extras"),
        groups=reader.strings("groups"),
        exclude_packages=tuple(exclude),
        exclude_is_default="exclude-packages" not in own,
        layout=reader.string("layout", "python", LAYOUTS),
        strip=reader.boolean("strip", True),
        compression_level=reader.level("compression-level", 6),
        strip_patterns=reader.strings("strip-patterns"),
        keep_patterns=reader.strings("keep-patterns"),
        functions=_functions(reader, project_name),
        max_unzipped_mb=reader.number("max-unzipped-mb", MAX_UNZIPPED_MB),
        max_zipped_mb=reader.number("max-zipped-mb", MAX_ZIPPED_MB),
        size_check=reader.string("size-check", "error", SIZE_CHECKS),
        package=reader.string("package", None),
        audit=reader.string("audit", "error", AUDITS),
        smoke_import=reader.boolean("smoke-import", False),
        smoke_import_skip=reader.strings("smoke-import-skip"),
        include_secrets=reader.strings("include-secrets"),
    )


def _functions(reader: _Reader, project_name: str) -> tuple[Function, ...]:
    table = reader.raw("functions")
    if table is None:
        return (Function(name=project_name),)
    if not isinstance(table, dict) or not table:
        raise reader.fail("functions", "a table of function name -> { packages, include, exclude, handler, ... }")
    out = []
    for name, options in sorted(table.items()):
        shown = name if len(name) <= 70 else name[:67] + "..."
        if not FUNCTION_NAME.match(name) or name == "layer":
            raise LambdaBuildError(
                f"function name {shown!r} in {reader.where('functions')} of pyproject.toml is not usable: "
                + ("'layer' names the layer's zip" if name == "layer" else
                   "Lambda takes 1 to 64 letters, digits, hyphens and underscores"),
                "rename the function's table",
            )
        where = f"functions.{name} in {reader.where('functions')} of pyproject.toml"
        if not isinstance(options, dict):
            raise LambdaBuildError(f"{where} must be a table like {{ packages = [\"src/pkg\"], handler = \"pkg.app.handler\" }}")
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key not in _FUNCTION_KEYS:
                raise LambdaBuildError(f"unknown key {key!r} in {where}", f"valid keys: {', '.join(_FUNCTION_KEYS)}")
            values[key.replace("-", "_")] = _function_value(key, value, where)
        out.append(Function(name=name, **values))
    return tuple(out)


def _function_value(key: str, value: Any, where: str) -> Any:
    """One function key's value, checked and normalised."""
    if key in ("package", "handler"):
        if not isinstance(value, str) or not value:
            raise LambdaBuildError(f"{key} in {where} must be a non-empty string, not {value!r}")
        if key == "handler" and not HANDLER.match(value):
            raise LambdaBuildError(
                f"handler in {where} must be module.attribute, as Lambda's Handler setting, not {value!r}",
                'e.g. handler = "app.main.handler" for the function handler in app/main.py',
            )
        return value
    if key == "sources":
        # hatch's wheel option: a list of prefixes to remove, or a table of prefix -> replacement.
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple((prefix, "") for prefix in value)
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return tuple(value.items())
        raise LambdaBuildError(
            f"sources in {where} must be a list of path prefixes to remove (hatch's wheel option), "
            f"or a table of prefix -> replacement, not {value!r}",
            'e.g. sources = ["src"], so src/app.py is app.py in the zip',
        )
    if key == "environment":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise LambdaBuildError(f"environment in {where} must be a table of names -> string values, not {value!r}")
        return tuple(sorted(value.items()))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LambdaBuildError(f"{key} in {where} must be a list of strings, not {value!r}")
    return tuple(value)
