"""``hatch-lambda build``: the Lambda targets without hatch, for one runtime or a matrix.

Each (python, arch) combination runs ``python -m hatchling build -t <target> -d <dir>``
in the project with ``HATCH_LAMBDA_PYTHON`` / ``HATCH_LAMBDA_ARCH`` set, which is
exactly what a hatch user does by hand. With more than one combination each goes
to its own subdirectory, ``py<python>-<arch>``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.config.options import ARCH_ENV, FAT, LAYER, PYTHON_ENV
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import find_lock, read_lock, read_toml
from hatch_lambda.lockfile.workspace import member_directory, workspace_members
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import check_arch, check_python


@dataclass(frozen=True)
class Job:
    """One run of one target for one runtime."""

    target: str
    python: str
    arch: str
    directory: Path
    environ: dict[str, str]

    @property
    def label(self) -> str:
        return f"py{self.python}-{self.arch}"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build",
        help="build lambda-layer / lambda-fat for one or several Lambda runtimes, without hatch",
        description="Build the Lambda targets of a project with hatchling, for each --python x --arch combination.",
    )
    parser.add_argument("project_dir", nargs="?", default=".", type=Path, help="project directory (default: .)")
    parser.add_argument("-t", "--target", dest="targets", action="append", choices=(LAYER, FAT),
                        help=f"target to build, repeatable (default: {LAYER})")
    parser.add_argument("--python", dest="pythons", action="append", metavar="VERSION",
                        help=f"Lambda python version ({', '.join(RUNTIMES)}), repeatable; default: the table's")
    parser.add_argument("--arch", dest="arches", action="append", metavar="ARCH",
                        help="x86_64 or arm64, repeatable; default: the table's")
    parser.add_argument("-d", "--directory", type=Path,
                        help="output directory (default: the target's, dist/lambda); "
                             "several runtimes get one subdirectory each, py<python>-<arch>")
    parser.set_defaults(handler=run)


def plan(project: Path, targets: list[str], pythons: list[str], arches: list[str],
         directory: Path | None) -> list[Job]:
    """The jobs to run, in order; raises LambdaBuildError for bad input."""
    # hatchling and the whole build are imported only by the command that builds
    from hatch_lambda.plugin.builders import LambdaFatBuilder, LambdaLayerBuilder

    builders = {LAYER: LambdaLayerBuilder, FAT: LambdaFatBuilder}
    if not (project / "pyproject.toml").is_file():
        raise LambdaBuildError(f"no pyproject.toml in {project}", "pass the project directory: hatch-lambda build DIR")
    _refuse_virtual_root(project)
    pythons, arches = _checked("--python", check_python, pythons), _checked("--arch", check_arch, arches)
    python_choices: list[str | None] = [*pythons] or [None]
    arch_choices: list[str | None] = [*arches] or [None]
    combinations = list(itertools.product(python_choices, arch_choices))
    matrix = len(combinations) > 1
    jobs = []
    for (python, arch), target in itertools.product(combinations, dict.fromkeys(targets)):
        environ = dict(os.environ)
        if python:
            environ[PYTHON_ENV] = python
        if arch:
            environ[ARCH_ENV] = arch
        builder = builders[target](str(project))
        config = builder.lambda_config(environ)  # the table's values where no option was given
        base = directory.resolve() if directory else Path(builder.config.directory)
        label = f"py{config.target.python}-{config.target.arch}"
        environ[PYTHON_ENV], environ[ARCH_ENV] = config.target.python, config.target.arch
        jobs.append(Job(target, config.target.python, config.target.arch, base / label if matrix else base, environ))
    return jobs


def _refuse_virtual_root(project: Path) -> None:
    """A virtual workspace root is no project hatchling can build: say which members can be built."""
    if "project" in read_toml(project / "pyproject.toml"):
        return
    lock = read_lock(find_lock(project))
    members = workspace_members(lock)
    places = [f"{os.path.relpath(directory, project)} ({name})" for name in members
              if (directory := member_directory(lock, name)) is not None]
    raise LambdaBuildError(
        f"{project / 'pyproject.toml'} has no [project] table: it is a virtual workspace root, which has no "
        "Lambda targets of its own",
        "build a member, `hatch-lambda build MEMBER_DIR`, one whose table names its functions, or a deploy project "
        f"whose functions each name a member (package = \"NAME\"); members: {', '.join(places) or 'none'}",
    )


def _checked(option: str, check: Callable[[str], str], values: list[str]) -> list[str]:
    """The values, normalised (``aarch64`` is ``arm64``) and without repeats; an error names the option."""
    out = []
    for value in values:
        try:
            out.append(check(value))
        except LambdaBuildError as exc:
            raise LambdaBuildError(f"{option} {value}: {exc.problem}", exc.fix) from None
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    project = args.project_dir.resolve()
    try:
        jobs = plan(project, args.targets or [LAYER], args.pythons or [], args.arches or [], args.directory)
    except (ValueError, TypeError) as exc:  # hatchling reports bad tables as these
        raise LambdaBuildError(str(exc)) from None
    # Targets of one runtime that share an output directory run in one hatchling process.
    for (_, directory), group in itertools.groupby(jobs, key=lambda job: (job.label, job.directory)):
        batch = list(group)
        targets = [job.target for job in batch]
        print(f"hatch-lambda: {', '.join(targets)} for {batch[0].label} -> {os.path.relpath(directory)}", flush=True)
        command = [sys.executable, "-m", "hatchling", "build", "-d", str(directory)]
        for target in targets:
            command += ["-t", target]
        result = subprocess.run(command, cwd=project, env=batch[0].environ)
        if result.returncode != 0:
            return result.returncode
    return 0
