"""The ``[tool.hatch.build.targets.lambda-layer]`` / ``lambda-fat`` tables, from one declaration per key.

Each key is one field of :class:`LambdaConfig`, declared with :func:`option`:
its TOML name, its type (``Literal[...]`` for modes), its default and a
one-line doc. The reader, its error messages and the options table of the docs
(:func:`options_table`) all come from those declarations.

``lambda-fat`` reads ``lambda-layer``'s table for every key it does not set
itself, so functions are written once (``exclude-packages`` excepted: its
default differs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, get_args, get_origin, get_type_hints

from hatch_lambda.config.functions import Function, read_functions
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.runtimes import DEFAULT_IMAGE, RUNTIMES
from hatch_lambda.runtime.target import Target, check_arch, check_python, lowest_runtime

LAYER = "lambda-layer"
FAT = "lambda-fat"
#: The unit of sizes in the options and the build output: 2**20 bytes.
MB = 1 << 20
#: Lambda's limits for a deployment package, in MB.
MAX_UNZIPPED_MB = 250
MAX_ZIPPED_MB = 50
#: Environment variables that override the table's python / arch (one build of a matrix).
PYTHON_ENV = "HATCH_LAMBDA_PYTHON"
ARCH_ENV = "HATCH_LAMBDA_ARCH"
#: What lambda-fat leaves out unless exclude-packages says otherwise: the Lambda runtime ships them.
FAT_EXCLUDED = ("boto3", "botocore")

#: Keys hatchling itself understands on any build target.
HATCHLING_KEYS = frozenset(
    {"directory", "versions", "hooks", "dependencies", "require-runtime-dependencies", "require-runtime-features"}
)


def option(default: Any, doc: str, *, shown: str | None = None, minimum: float | None = None,
           maximum: float | None = None, positive: bool = False) -> Any:
    """A configuration key: its default, its one-line doc, and limits for numbers.

    ``shown``: the default as the docs say it, where it is not a plain value.
    """
    metadata = {"doc": doc, "shown": shown, "minimum": minimum, "maximum": maximum, "positive": positive}
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple for a list default")
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class LambdaConfig:
    kind: str  # LAYER or FAT
    target: Target
    python: str | None = option(None, '`"3.10"` … `"3.14"` ("3.9" and older are retired runtimes and refused; '
                                'a deprecated one builds with a warning giving its dates). `"3.13.14"` says Lambda\'s '
                                '3.13 now runs that patch release, where `src/hatch_lambda/runtime/runtimes.py` (one '
                                'line per runtime, with its sources) knows an older one',
                                shown="lowest runtime `requires-python` allows")
    arch: str = option("x86_64", 'or `"arm64"`')
    installer: Literal["auto", "wheels", "docker"] = option(
        "auto", '`"wheels"`: unpack the lock\'s wheels on the host, build sdists on the host (pure Python '
                'results only). `"docker"`: install everything inside the Lambda base image. `"auto"`: wheels, '
                'and sdists built in the image when Docker is reachable')
    image: str = option(DEFAULT_IMAGE, "base image for `docker`/`auto`; `{python}` and `{arch}` are filled in")
    docker_network: str | None = option(None, 'network the container gets while building sdists (e.g. `"host"`)',
                                        shown="engine default")
    extras: tuple[str, ...] = option((), "optional-dependency groups of the project to include")
    groups: tuple[str, ...] = option((), "dependency groups (`[dependency-groups]`) to include")
    package: str | None = option(None, "a uv workspace member whose dependencies to build instead (the functions' "
                                       "code stays the project's)", shown="the project")
    exclude_packages: tuple[str, ...] = option(
        (), "distributions left out, with what only they pulled in (a package something else still needs stays)",
        shown='`[]`; `["boto3", "botocore"]` for lambda-fat')
    layout: Literal["python", "site-packages"] = option("python", 'or `"site-packages"` '
                                                                  "(`python/lib/python3.X/site-packages/`)")
    strip: bool = option(True, "`false` keeps every installed file")
    bytecode: Literal["compile", "only", "off"] = option(
        "compile", '`"compile"`: PEP 552 unchecked-hash `.pyc` files in `__pycache__` beside the sources, '
                   'compiled by a CPython of the runtime\'s version, so a cold start does not compile them (with '
                   'none found the default builds without and warns); `"only"`: sourceless `module.pyc` in place '
                   'of each `module.py` (smaller; tracebacks show no source lines); `"off"`: no bytecode (see '
                   '[Bytecode](bytecode.md))')
    strip_symbols: bool = option(True, "take symbol tables and debug sections (`.symtab`, `.strtab`, `.debug*`, "
                                       "`.comment`) out of every ELF shared object and executable whose layout allows "
                                       "it safely; `false` (or `strip = false`) keeps them (see Symbols below)")
    compression_level: int = option(
        6, "deflate level 1–12 of every entry ([libdeflate](https://github.com/ebiggers/libdeflate), bundled); "
           "`10`–`12` give about 2 % smaller zips and deflate about 7× slower, `9` about 0.5 % for 2.5× the time (see "
           "[Deflate](development.md#deflate))", minimum=1, maximum=12)
    strip_patterns: tuple[str, ...] = option((), 'more gitignore-style patterns to drop, e.g. `["*.pyi", '
                                                 '"pyarrow/include/"]`')
    keep_patterns: tuple[str, ...] = option((), "patterns never dropped, by any rule")
    functions: tuple[Function, ...] = option(
        (), "name → a table of the function keys (see Functions)",
        shown="one function named after the project, holding what hatch's wheel target ships")
    max_unzipped_mb: float = option(MAX_UNZIPPED_MB, "limit for what Lambda unpacks (a function counts with its "
                                                     "layer)", positive=True)
    max_zipped_mb: float = option(MAX_ZIPPED_MB, "limit for the zip (direct upload; S3 uploads may be larger)",
                                  positive=True)
    size_check: Literal["error", "warn", "off"] = option("error", '`"warn"` or `"off"`')
    audit: Literal["error", "warn", "off"] = option("error", 'native-code audit: `"warn"` builds anyway and prints the '
                                                             'findings, `"off"` skips it')
    smoke_import: bool = option(False, "`true`: import every top-level module of `layer.zip` (or of each fat zip) "
                                       "under the runtime before the artifacts are put in place (see `hatch-lambda "
                                       "verify`)")
    smoke_import_skip: tuple[str, ...] = option((), "top-level modules the smoke import leaves out: those that cannot "
                                                    "be imported on their own")
    include_secrets: tuple[str, ...] = option((), "function files to ship although they look like secrets "
                                                  '(gitignore-style patterns on the path in the zip), e.g. '
                                                  '`["app/certs/ca.pem"]`')
    exclude_is_default: bool = True  # False when the user wrote exclude-packages
    bytecode_from: str | None = None  # the table that sets bytecode; None: the default

    @property
    def image_name(self) -> str:
        return self.image.format(python=self.target.python, arch=self.target.arch)

    @property
    def layer_prefix(self) -> str:
        """Where the dependencies sit inside layer.zip."""
        if self.layout == "python":
            return "python/"
        return f"python/lib/python{self.target.python}/site-packages/"


def toml_name(field_: dataclasses.Field) -> str:
    return field_.name.replace("_", "-")


@cache
def options() -> tuple[tuple[dataclasses.Field, Any], ...]:
    """(field, type) of every declared key, in declaration order."""
    hints = get_type_hints(LambdaConfig)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(LambdaConfig) if "doc" in f.metadata)


#: Every key of the table, by its TOML name.
_KEYS = tuple(toml_name(f) for f, _ in options())


def _table_name(kind: str) -> str:
    return f"[tool.hatch.build.targets.{kind}]"


class Reader:
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

    def value(self, field_: dataclasses.Field, kind: Any) -> Any:
        """The key's value from the tables (or its default), checked against its declared type."""
        key = toml_name(field_)
        value = self.raw(key, field_.default)
        optional = type(None) in get_args(kind)
        if optional and value is None:
            return None
        base = next((t for t in get_args(kind) if t is not type(None)), kind) if optional else kind
        meta = field_.metadata
        if get_origin(base) is Literal:
            if value not in get_args(base):
                raise self.fail(key, " or ".join(repr(c) for c in get_args(base)))
        elif base is str:
            if not isinstance(value, str):
                raise self.fail(key, "a string")
        elif base is bool:
            if not isinstance(value, bool):
                raise self.fail(key, "true or false")
        elif base is int:
            if isinstance(value, bool) or not isinstance(value, int) or not meta["minimum"] <= value <= meta["maximum"]:
                raise self.fail(key, f"a whole number from {meta['minimum']} to {meta['maximum']}")
        elif base is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise self.fail(key, "a positive number")
        elif get_origin(base) is tuple:
            if isinstance(value, tuple):
                value = list(value)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(key, "a list of strings")
            value = tuple(value)
        return value


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
    reader = Reader(kind, own, layer_table if kind == FAT else {})
    values: dict[str, Any] = {}
    for field_, type_ in options():
        if field_.name == "functions":
            values["functions"] = read_functions(reader, project_name)
        elif field_.name == "exclude_packages":
            # the one key fat does not inherit: its default differs
            values["exclude_packages"] = Reader(kind, own, {}).value(field_, type_) if "exclude-packages" in own \
                else (FAT_EXCLUDED if kind == FAT else ())
        elif field_.name == "python":
            python = reader.raw("python")
            if python is not None and not isinstance(python, str):
                raise reader.fail("python", f"a string, one of {', '.join(RUNTIMES)}")
            values["python"] = python if python is not None else lowest_runtime(requires_python)
        else:
            values[field_.name] = reader.value(field_, type_)
    python, arch = values["python"], values["arch"]
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
    values.update(python=python, arch=arch)
    return LambdaConfig(kind=kind, target=Target(python, arch), exclude_is_default="exclude-packages" not in own,
                        bytecode_from=reader.where("bytecode") if reader.has("bytecode") else None, **values)


def _shown(field_: dataclasses.Field) -> str:
    if field_.metadata["shown"]:
        return field_.metadata["shown"]
    default = field_.default
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return "`[]`" if not default else "`[" + ", ".join(f'"{v}"' for v in default) + "]`"
    if isinstance(default, str):
        return f'`"{default}"`'
    return f"`{default:g}`" if isinstance(default, float) else f"`{default}`"


def options_table() -> str:
    """The docs' table of the keys (checked by a test to be what the docs say)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{toml_name(f)}` | {_shown(f)} | {f.metadata['doc']} |" for f, _ in options()]
    rows.append("| `directory` | `dist/lambda` | output directory (hatchling's own key; `hatch build -t T DIR` or "
                "`hatchling build -d DIR` overrides it) |")
    return "\n".join(rows)
