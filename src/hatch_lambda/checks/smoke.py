"""Smoke import: every top-level module of a layer or fat zip, imported the way Lambda would.

The artifact is unpacked as Lambda unpacks it (a layer under ``/opt``, function
code under ``/var/task``) and an interpreter of the runtime's version imports
each top-level module with ``sys.path`` in Lambda's order. The interpreter is
this machine's ``pythonX.Y`` when its version and CPU match the target (started
with ``-I -S``: no site-packages of the host), else the runtime's Python inside
the Lambda image through Docker, where the image's own site-packages (boto3)
follow the artifact's directories as they do on Lambda.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.assemble.archive import WrittenZip
from hatch_lambda.checks.artifacts import Artifact, dependency_roots, extract
from hatch_lambda.checks.importtime import ImportProfile, profile_imports
from hatch_lambda.checks.zipread import Unsafe
from hatch_lambda.config.options import FAT, LambdaConfig
from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.packs.contents import top_level_modules
from hatch_lambda.runtime.interpreters import HostPython, ImagePython, interpreter
from hatch_lambda.runtime.target import Target

RUNNERS = ("auto", "host", "docker")
MARK = "@@hatch-lambda-smoke@@"

SCRIPT = r"""
import importlib, json, sys
paths, modules = json.loads(sys.argv[1])
sys.path[:0] = paths
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = (type(exc).__name__ + ": " + str(exc)).strip()
print(%r + json.dumps(failed))
""" % MARK


@dataclass
class SmokeResult:
    artifact: str
    interpreter: str  # how it ran: "python3.12 (/usr/bin/python3.12)" or "python3.12 in IMAGE"
    modules: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # module -> error
    unsafe: list[Unsafe] = field(default_factory=list)  # entries never extracted
    profile: ImportProfile | None = None  # with importtime: where the import time went

    def as_dict(self) -> dict:
        return {"artifact": self.artifact, "interpreter": self.interpreter, "modules": self.modules,
                "skipped": self.skipped, "failures": self.failures,
                "unsafe_entries": [item.as_dict() for item in self.unsafe],
                **({"importtime": self.profile.as_dict()} if self.profile is not None else {})}


# --------------------------------------------------------------------------
# interpreters


def _parse(stdout: str) -> dict[str, str] | None:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return None


def _import_all(runner: HostPython | ImagePython, unpacked: Path, modules: list[str]) -> tuple[dict | None, str]:
    stdout, why = runner.execute(unpacked, SCRIPT, json.dumps([runner.sys_path(unpacked), modules]))
    return _parse(stdout), why


def _run(runner: HostPython | ImagePython, unpacked: Path, modules: list[str]) -> dict[str, str]:
    """module -> error; a crashed interpreter is retried one module at a time to name the culprit."""
    failed, why = _import_all(runner, unpacked, modules)
    if failed is not None:
        return failed
    if len(modules) == 1:
        return {modules[0]: f"the interpreter died ({why})"}
    out: dict[str, str] = {}
    for name in modules:
        out.update(_run(runner, unpacked, [name]))
    return out


# --------------------------------------------------------------------------
# the check


def lay_out(artifact: Artifact, unpacked: Path, python: str) -> Path:
    """Unpack ``artifact`` as Lambda does (a layer under opt/, function code under var/task/); its root."""
    return lay_out_checked(artifact, unpacked)[0]


def lay_out_checked(artifact: Artifact, unpacked: Path) -> tuple[Path, list[Unsafe]]:
    """:func:`lay_out`, and the zip's entries left out as unsafe."""
    (unpacked / "opt").mkdir(parents=True, exist_ok=True)
    task = unpacked / "var" / "task"
    task.mkdir(parents=True, exist_ok=True)
    layer = artifact.kind == "layer" or (artifact.kind == "tree" and (artifact.path / "python").is_dir())
    root = unpacked / "opt" if layer else task
    if artifact.is_zip:
        return root, extract(artifact, root)
    shutil.copytree(artifact.path, root, dirs_exist_ok=True, symlinks=True)
    return root, []


def smoke_import(
    artifacts: list[Artifact],
    target: Target,
    *,
    skip: tuple[str, ...] = (),
    runner: str = "auto",
    image: str | None = None,
    log: Log = print,
    importtime: bool = False,
) -> list[SmokeResult]:
    """Import every top-level module of each layer or fat zip; report the failures (and, with
    ``importtime``, where a fresh interpreter's import time went)."""
    results = []
    with interpreter(target, runner=runner, image=image, log=log) as run:
        for artifact in artifacts:
            with tempfile.TemporaryDirectory(prefix="hatch-lambda-smoke-") as scratch:
                unpacked = Path(scratch)
                root, unsafe = lay_out_checked(artifact, unpacked)
                present = {m for d in dependency_roots(root, target.python) for m in top_level_modules(d)}
                # a module the build put in but that is gone now is imported too, and fails
                found = sorted(present | (artifact.section.modules() if artifact.section else set()))
                result = SmokeResult(artifact.path.name, run.description, unsafe=unsafe)
                result.skipped = [m for m in found if m in skip]
                result.modules = [m for m in found if m not in skip]
                if result.modules:
                    result.failures = _run(run, unpacked, result.modules)
                    if importtime:
                        result.profile = profile_imports(run, unpacked, artifact.path.name, result.modules)
                results.append(result)
    return results


def failure_error(results: list[SmokeResult]) -> LambdaBuildError | None:
    """One line per module that failed to import and per entry left out as unsafe, or None when all is well."""
    unsafe = [f"{result.artifact}: unsafe entry {item.line}" for result in results for item in result.unsafe]
    lines = [f"{result.artifact}: import {module}: {error}"
             for result in results for module, error in sorted(result.failures.items())]
    if not lines and not unsafe:
        return None
    fixes = []
    if unsafe:
        fixes.append("build the zip again: Lambda would unpack those entries outside its directory "
                     "(hatch-lambda never writes such entries)")
    if lines:
        fixes.append("fix or leave out the package whose import fails; a module that cannot be imported on its "
                     "own (it needs configuration or a package you provide elsewhere) can be listed in "
                     "smoke-import-skip (--skip for hatch-lambda verify)")
    where = ", ".join(sorted({r.interpreter for r in results}))
    head = f"smoke import with {where} failed" if lines else "the zip holds unsafe entries"
    return LambdaBuildError(f"{head}:\n    " + "\n    ".join(unsafe + lines), "; ".join(fixes))


def smoke_check(config: LambdaConfig, written: list[WrittenZip], log: Log) -> None:
    """The build's ``smoke-import = true``: the layer zip, or every fat zip, must import."""

    artifacts = [
        Artifact(item.path, "function-fat" if config.kind == FAT else "layer", None)
        for item in written
        if config.kind == FAT or item.path.name == "layer.zip"
    ]
    results = smoke_import(artifacts, config.target, skip=config.smoke_import_skip, image=config.image, log=log)
    error = failure_error(results)
    if error is not None:
        raise error
    count = sum(len(result.modules) for result in results)
    log(f"  smoke import: {count} top-level modules imported with {results[0].interpreter if results else '-'}")
