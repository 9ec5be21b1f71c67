"""A target's functions: each one's code, handler, root and environment, from its table under ``functions``.

The code is selected with hatch's wheel-target options (``packages``,
``include``, ``exclude``, ``only-include``, ``sources``); ``handler`` is
Lambda's Handler setting; ``package`` names the workspace member the function
is; ``environment`` is what its handler import sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from hatch_lambda.errors import LambdaBuildError

#: Lambda's Handler setting for Python: ``module.attribute``, the module dotted (``pkg.mod``) or a path (``dir/mod``).
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
HANDLER = re.compile(rf"^(?P<module>{_IDENTIFIER}(?:[./]{_IDENTIFIER})*)\.(?P<attribute>{_IDENTIFIER})$")
#: What Lambda accepts as a function name (letters, digits, hyphens, underscores; 64 at most).
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
    def handler_module(self) -> str:
        """The module Lambda imports: ``pkg/mod.handler`` -> ``pkg.mod``; "" without a handler."""
        return "" if self.handler is None else self.handler.rsplit(".", 1)[0].replace("/", ".")

    @property
    def handler_attribute(self) -> str:
        """The name Lambda calls in that module; "" without a handler."""
        return "" if self.handler is None else self.handler.rsplit(".", 1)[1]


class TableReader(Protocol):
    """What reading ``functions`` needs of the target's tables (config.options.Reader)."""

    def raw(self, key: str, default: Any = None) -> Any: ...
    def fail(self, key: str, expected: str) -> LambdaBuildError: ...
    def where(self, key: str) -> str: ...


_FUNCTION_KEYS = ("packages", "include", "exclude", "only-include", "sources", "package", "handler", "environment")


def read_functions(reader: TableReader, project_name: str) -> tuple[Function, ...]:
    table = reader.raw("functions")
    if table is None:
        return (Function(name=project_name),)
    if not isinstance(table, dict) or not table:
        raise reader.fail("functions", "a table of function name -> { packages, include, exclude, handler, ... }")
    out = []
    for name, options in sorted(table.items()):
        shown = name if len(name) <= 70 else name[:67] + "..."
        # fullmatch: "$" alone would let a name end in a newline.
        if not FUNCTION_NAME.fullmatch(name) or name == "layer":
            raise LambdaBuildError(
                f"function name {shown!r} in {reader.where('functions')} of pyproject.toml is not usable: "
                + ("'layer' names the layer's zip" if name == "layer" else
                   "Lambda takes 1 to 64 letters, digits, hyphens and underscores (so no path separator, "
                   "NUL, dot or space), and it names the function's zip"),
                "rename the function's table",
            )
        where = f"functions.{name} in {reader.where('functions')} of pyproject.toml"
        if not isinstance(options, dict):
            example = '{ packages = ["src/pkg"], handler = "pkg.app.handler" }'
            raise LambdaBuildError(f"{where} must be a table like {example}")
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
