"""``hatch-lambda requirements``: the pinned distributions one Lambda runtime needs, read from uv.lock."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hatch_lambda.cache.store import cache_dir
from hatch_lambda.lockfile.file import find_lock, read_lock
from hatch_lambda.lockfile.resolve import Distribution, Resolution, resolve
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import Target, lowest_runtime


def add_parser(commands: argparse._SubParsersAction) -> None:
    req = commands.add_parser(
        "requirements",
        help="print the pinned distributions one Lambda runtime needs, read from uv.lock",
    )
    req.add_argument("project_dir", nargs="?", default=".", type=Path, help="project directory (default: .)")
    req.add_argument("--python", help=f"Lambda python version ({', '.join(RUNTIMES)}); default: lowest allowed")
    req.add_argument("--arch", default="x86_64", help="x86_64 (default) or arm64")
    req.add_argument("--extra", action="append", default=[], metavar="NAME", help="include an optional extra")
    req.add_argument("--group", action="append", default=[], metavar="NAME", help="include a dependency group")
    req.add_argument("--package", help="a workspace member to start from instead of the project")
    req.add_argument("--exclude", action="append", default=[], metavar="NAME",
                     help="leave out a distribution and what only it pulls in")
    req.add_argument("--hashes", action="store_true", help="pip --require-hashes format, with each file's sha256")
    req.add_argument("--show-files", action="store_true", help="append the chosen wheel tag (or 'sdist') to each line")
    req.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    python = args.python
    if python is None:
        python = lowest_runtime(read_lock(find_lock(args.project_dir)).requires_python)
    resolution = resolve(
        args.project_dir,
        Target(python, args.arch),
        extras=args.extra,
        groups=args.group,
        package=args.package,
        exclude=args.exclude,
        cache=cache_dir(),
    )
    for note in resolution.notes:
        print(f"hatch-lambda: {note}", file=sys.stderr)
    out = requirement_lines(resolution, hashes=args.hashes, show_files=args.show_files)
    try:
        if out:
            print("\n".join(out))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def requirement_lines(resolution: Resolution, *, hashes: bool = False, show_files: bool = False) -> list[str]:
    """One line per distribution, in pip's requirements format."""
    lock_dir = resolution.lock_path.parent
    lines = []
    for dist in resolution.distributions:
        line = _requirement(dist, lock_dir, hashes)
        if show_files:
            label = dist.file.label if dist.file else f"built from {dist.source_kind} {dist.source}"
            line = f"{line}  # {label}" if "\n" not in line else f"{line}\n    # {label}"
        lines.append(line)
    return lines


def _requirement(dist: Distribution, lock_dir: Path, hashes: bool) -> str:
    if not hashes:
        if dist.is_local and not dist.version:  # a dynamic version: uv locks none, so name where it is
            return f"{dist.name} @ {(lock_dir / dist.source).resolve().as_uri()}"
        return dist.pin
    file = dist.file
    if file is None or not file.sha256:
        # A directory or git checkout has no file to hash; pip cannot install it
        # in --require-hashes mode, so it is named but left commented out.
        return f"# {dist.pin} (from {dist.source_kind} {dist.source}: no file to hash, build it separately)"
    if dist.source_kind == "registry":
        head = dist.pin
    elif file.url:
        head = f"{dist.name} @ {file.url}" + (f"#subdirectory={dist.subdirectory}" if dist.subdirectory else "")
    else:
        head = f"{dist.name} @ {(lock_dir / (file.path or dist.source)).resolve().as_uri()}"
    return f"{head} \\\n    --hash=sha256:{file.sha256}"
