"""Reading ``uv.lock`` fast: the top tables at once, each package's table when it is needed.

uv writes a lock as its top tables (``version``, ``requires-python``,
``[manifest]``, ...) followed by one ``[[package]]`` table per distribution,
each starting on its own ``[[package]]`` line with ``name = "..."`` next. A
build reads only the packages its target reaches, often a fraction of a large
universal lock, so the file is cut at those lines and a package's text is
parsed (with its wheels for other systems blanked out first) the first time it
is asked for. A lock that is not laid out that way is parsed whole. Errors
name the line in the file either way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import tomli  # tomllib's own parser, with wheels compiled by mypyc: about 3x faster on a large lock
from packaging.utils import canonicalize_name

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.shape import check_package_shape, check_shape
from hatch_lambda.runtime.target import Target

SUPPORTED_LOCK_VERSIONS = (1,)
SOURCE_KINDS = ("registry", "editable", "directory", "virtual", "path", "url", "git")
#: Sources whose code lives in the project tree and is built, not downloaded.
LOCAL_KINDS = ("editable", "directory", "virtual")
PACKAGE = "[[package]]"
NAME = re.compile(r'^name = "([^"\\]+)"$')
LINE = re.compile(r"at line (\d+)")
#: Local sources as uv writes them, on one line: the packages the freshness check reads.
LOCAL_SOURCES = tuple(f"\nsource = {{ {kind} = " for kind in ("editable", "directory", "virtual"))
REGENERATE = "regenerate it with `uv lock` (and resolve any merge conflict)"


@dataclass
class _Block:
    index: int  # position among the lock's packages, for messages (package[3])
    line: int  # line of its [[package]] header in the file, counting from 0
    text: str
    entry: dict | None = None


@dataclass
class Lock:
    """A ``uv.lock``: its top tables, and its packages by canonical name (parsed on first use)."""

    path: Path
    digest: str
    data: dict
    target: Target | None = None  # wheels that cannot fit it are left out of the parsed packages
    _blocks: dict[str, list[_Block]] = field(default_factory=dict)

    @property
    def requires_python(self) -> str | None:
        return self.data.get("requires-python")

    @property
    def members(self) -> list[str]:
        return [canonicalize_name(m) for m in self.data.get("manifest", {}).get("members", [])]

    @property
    def names(self) -> list[str]:
        """Every package's canonical name, without parsing any."""
        return list(self._blocks)

    def entries(self, name: str) -> list[dict]:
        """The package tables of ``name`` (several for a fork)."""
        return [self._parse(block) for block in self._blocks.get(canonicalize_name(name), [])]

    @property
    def packages(self) -> dict[str, list[dict]]:
        """Every package table, by canonical name (parses them all)."""
        return {name: self.entries(name) for name in self._blocks}

    def local_entries(self) -> Iterator[dict]:
        """The tables of packages built from a directory (members, path dependencies)."""
        for blocks in self._blocks.values():
            for block in blocks:
                start = block.text.find("\nsource = ")
                if block.entry is not None or start < 0 or block.text.startswith(LOCAL_SOURCES, start):
                    entry = self._parse(block)
                    if any(kind in entry.get("source", {}) for kind in ("editable", "directory", "virtual")):
                        yield entry

    def entry(self, name: str, *, version: str | None = None, source: dict | None = None, via: str = "") -> dict:
        """The package entry an edge points at; forks carry ``version``/``source``."""
        candidates = self.entries(name)
        if version is not None:
            candidates = [c for c in candidates if c.get("version") == version]
        if source is not None:
            candidates = [c for c in candidates if c.get("source") == source]
        if len(candidates) != 1:
            what = f"{name}" + (f" {version}" if version else "")
            found = "no entry" if not candidates else f"{len(candidates)} entries"
            raise LambdaBuildError(
                f"{self.path}: {via or 'a dependency edge'} points at {what}, which has {found} in the lock",
                "the lock is inconsistent; run `uv lock` to regenerate it",
            )
        return candidates[0]

    def _parse(self, block: _Block) -> dict:
        if block.entry is None:
            text = _without_foreign_wheels(block.text, self.target) if self.target is not None else block.text
            data = _loads(text, self.path, block.line)
            packages = data.get("package")
            if not isinstance(packages, list) or len(packages) != 1 or set(data) != {"package"}:
                raise LambdaBuildError(f"{self.path}: line {block.line + 1}: the [[package]] table is malformed",
                                       REGENERATE)
            check_package_shape(packages[0], block.index, self.path)
            block.entry = packages[0]
        return block.entry


def source_kind(entry: dict) -> tuple[str, str]:
    source = entry.get("source", {})
    for kind in SOURCE_KINDS:
        if kind in source:
            return kind, str(source[kind])
    raise LambdaBuildError(f"package {entry.get('name')} has an unknown source {source!r} in uv.lock")


def find_lock(project_dir: Path) -> Path:
    """``uv.lock`` of the project, or of the workspace that holds it."""
    project_dir = project_dir.resolve()
    for directory in (project_dir, *project_dir.parents):
        candidate = directory / "uv.lock"
        if candidate.is_file():
            return candidate
        if (directory / ".git").exists():
            break
    raise LambdaBuildError(
        f"no uv.lock in {project_dir} or the workspace above it",
        f"run `uv lock` in {project_dir} and commit the uv.lock it writes",
    )


def too_deep(path: Path) -> LambdaBuildError:
    """The error for a TOML file nested deeper than a parser can follow (arrays in arrays in ...)."""
    fix = REGENERATE if path.name == "uv.lock" else f"write the nested arrays or inline tables of {path.name} flatter"
    return LambdaBuildError(f"{path}: TOML nested too deeply to read (arrays or inline tables inside each other "
                            f"hundreds of levels deep)", fix)


def read_toml(path: Path) -> dict:
    try:
        return tomli.loads(path.read_text(encoding="utf-8"))
    except (RecursionError, MemoryError):
        raise too_deep(path) from None
    except FileNotFoundError:
        raise LambdaBuildError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise LambdaBuildError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomli.TOMLDecodeError as exc:
        raise LambdaBuildError(f"{path}: TOML syntax error: {exc}", f"fix the syntax of {path.name}") from None


def may_fit(filename: str, target: Target) -> bool:
    """False when a wheel's name alone rules it out for ``target`` (cheaper than parsing its tags)."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return True  # not a wheel name we understand: let the full check decide
    interpreters, _, platforms = parts[-3:]
    if platforms != "any" and not any(p in target.platform_set for p in platforms.split(".")):
        return False
    return any(i in target.interpreter_set for i in interpreters.split("."))


def _without_foreign_wheels(text: str, target: Target) -> str:
    """Blank out the lines of wheels that cannot fit ``target`` before parsing.

    uv writes one wheel per line; most wheels of a universal lock are for
    other systems, and parsing them is most of the cost of reading the lock.
    Blanking keeps every line number, so syntax errors still point right.
    """
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line.startswith('    { url = "') and '.whl"' in line:
            name = line.split('"', 2)[1].rsplit("/", 1)[-1]
            if not may_fit(unquote(name) if "%" in name else name, target):
                lines[number] = ""
    return "\n".join(lines)


def _loads(text: str, path: Path, first_line: int = 0) -> dict:
    """``tomli.loads``, a syntax error naming the line in the whole file."""
    try:
        return tomli.loads(text)
    except (RecursionError, MemoryError):
        raise too_deep(path) from None
    except tomli.TOMLDecodeError as exc:
        message = LINE.sub(lambda m: f"at line {int(m.group(1)) + first_line}", str(exc))
        raise LambdaBuildError(f"{path}: TOML syntax error: {message}", REGENERATE) from None


def _split(text: str) -> tuple[str, list[tuple[int, str]]] | None:
    """(top tables, [(line, text) of each package]), or None when the lock is not laid out as uv writes it."""
    lines = text.split("\n")
    starts = [number for number, line in enumerate(lines) if line == PACKAGE]
    if not starts:
        return text, []
    blocks = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        body = lines[start:end]
        # Only the package's own tables may follow: another top table would belong to the whole file.
        if any(line.startswith("[") and line != PACKAGE and not line.startswith("[package.") for line in body):
            return None
        blocks.append((start, "\n".join(body)))
    return "\n".join(lines[: starts[0]]), blocks


def read_lock(path: Path, target: Target | None = None) -> Lock:
    """Read ``uv.lock``; with ``target``, wheels that cannot fit it are left out of its packages."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LambdaBuildError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", REGENERATE) from None
    split = _split(text)
    if split is None:
        data = _loads(_without_foreign_wheels(text, target) if target is not None else text, path)
        packages = data.pop("package", [])
        blocks: list[tuple[int, str]] = []
    else:
        head, blocks = split
        data = _loads(head, path)
        packages = None
    version = data.get("version")
    if version not in SUPPORTED_LOCK_VERSIONS:
        raise LambdaBuildError(
            f"{path}: lock file version {version!r} is not supported (hatch-lambda reads version "
            f"{', '.join(map(str, SUPPORTED_LOCK_VERSIONS))})",
            "regenerate the lock with a uv release that writes version 1, or upgrade hatch-lambda",
        )
    check_shape(data, path)
    lock = Lock(path=path, digest=hashlib.sha256(raw).hexdigest(), data=data, target=target)
    if packages is not None:
        if not isinstance(packages, list):
            check_shape({"package": packages}, path)
        for index, entry in enumerate(packages):
            check_package_shape(entry, index, path)
            block = _Block(index, 0, "", entry)
            lock._blocks.setdefault(canonicalize_name(entry["name"]), []).append(block)
        return lock
    for index, (line, body) in enumerate(blocks):
        second = body.split("\n", 2)[1] if "\n" in body else ""
        match = NAME.match(second)
        block = _Block(index, line, body)
        # Not the order uv writes when there is no match: parse this one now to learn its name.
        name = match.group(1) if match is not None else lock._parse(block)["name"]
        lock._blocks.setdefault(canonicalize_name(name), []).append(block)
    return lock
