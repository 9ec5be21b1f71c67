"""Each function's handler, proven before its zip is put in place.

A function that names ``handler = "module.attribute"`` is checked the way
Lambda will load it: the layer unpacked under ``/opt``, the function's zip
(or fat zip) under ``/var/task``, the module imported with ``sys.path`` in
Lambda's order, then the attribute looked up and checked to be callable. The
import runs with the variables Lambda sets (a region, the function's name, the
task root) and the function's own ``environment``, but no credentials.

The interpreter is this machine's CPython of the runtime's version and CPU when
there is one, else the runtime's Python in the Lambda image through Docker
(for the other CPU too, where the engine emulates it). With neither, the check
is static: the module file must sit where Lambda looks and define the name;
the build then warns that the handler was not imported.

A failure names the function, the handler and what was found, e.g. that the
module is at ``src/app.py`` in the zip and ``sources = ["src"]`` would put it
where Lambda looks.
"""

from __future__ import annotations

import ast
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.checks.artifacts import Artifact
from hatch_lambda.checks.smoke import MARK, lay_out
from hatch_lambda.config.functions import Function
from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.interpreters import (
    RUNTIME_EXTRA,
    HostPython,
    ImagePython,
    interpreter,
)
from hatch_lambda.runtime.target import Target

SCRIPT = r"""
import importlib, json, sys, traceback
paths, module, attribute = json.loads(sys.argv[1])
sys.path[:0] = paths
report = {"ok": False}
try:
    loaded = importlib.import_module(module)
except BaseException as exc:
    # the innermost frame in the artifacts' own code, not the standard library's
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(tuple(paths))]
    report.update(stage="import", error=(type(exc).__name__ + ": " + str(exc)).strip(),
                  missing=getattr(exc, "name", None) if isinstance(exc, ImportError) else None,
                  line=(frames[-1].filename + ":" + str(frames[-1].lineno)) if frames else None)
else:
    report["file"] = getattr(loaded, "__file__", None)
    if not hasattr(loaded, attribute):
        report.update(stage="attribute", defined=sorted(n for n in vars(loaded) if not n.startswith("_"))[:12])
    elif not callable(getattr(loaded, attribute)):
        report.update(stage="callable", type=type(getattr(loaded, attribute)).__name__)
    else:
        report["ok"] = True
print(%r + json.dumps(report))
""" % MARK


@dataclass(frozen=True)
class HandlerJob:
    """One function's handler and the zips Lambda would give it."""

    function: Function
    code: Path  # the function's zip: slim (with ``layer``) or fat
    layer: Path | None = None


@dataclass(frozen=True)
class Proof:
    function: str
    handler: str
    how: str  # for the build output: "imported with python3.12 (/usr/bin/python3.12)", ...
    method: str  # for the manifest, the same on every machine: "imported", "imported in IMAGE", "static"


def lambda_environment(function: Function, target: Target, task: str) -> dict[str, str]:
    """What Lambda sets for a function's code (no credentials), then the function's own ``environment``."""
    return {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{target.runtime}",
        "LAMBDA_TASK_ROOT": task,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
        **dict(function.environment),
    }


def prove_handlers(
    jobs: list[HandlerJob],
    target: Target,
    *,
    image: str,
    runtime_extra: Path | None = None,
    log: Log = print,
    warn: Log = print,
) -> list[Proof]:
    """Check every job's handler; raise one error naming each that fails.

    ``runtime_extra``: a directory of what the Lambda runtime provides but the
    artifacts leave out (boto3 in fat zips), put last on ``sys.path``.
    """
    jobs = [job for job in jobs if job.function.handler]
    if not jobs:
        return []
    failures: list[str] = []
    proofs: list[Proof] = []
    try:
        with interpreter(target, image=image, log=log, purpose="the handler check") as run, \
                tempfile.TemporaryDirectory(prefix="hatch-lambda-handlers-") as scratch:
            layers: dict[Path, Path] = {}  # each layer is unpacked once, for all its functions
            for number, job in enumerate(jobs):
                unpacked = Path(scratch, f"function-{number}")
                unpacked.mkdir()
                if job.layer is not None:
                    if job.layer not in layers:
                        layers[job.layer] = lay_out(Artifact(job.layer, "layer", None),
                                                    Path(scratch, f"layer-{len(layers)}"), target.python)
                    # A link, which a bind mount follows too.
                    (unpacked / "opt").symlink_to(layers[job.layer], target_is_directory=True)
                if runtime_extra is not None:
                    (unpacked / RUNTIME_EXTRA).symlink_to(runtime_extra, target_is_directory=True)
                failure = _import_check(run, job, target, unpacked)
                if failure is None:
                    if isinstance(run, HostPython):
                        how, short = f"imported with {run.description}", "imported"
                    else:
                        how = short = f"imported in {run.image}"
                    proofs.append(Proof(job.function.name, job.function.handler or "", how, short))
                else:
                    failures.append(failure)
    except LambdaBuildError as exc:
        if failures or proofs:
            raise
        warn(f"warning: the handlers were checked statically, not imported: {exc.problem}")
        for job in jobs:
            failure = _static_check(job, target)
            if failure is None:
                proofs.append(Proof(job.function.name, job.function.handler or "", "checked statically (not imported)",
                                    "static"))
            else:
                failures.append(failure)
    if failures:
        raise LambdaBuildError(
            "a function's handler cannot be loaded the way Lambda loads it:\n    " + "\n    ".join(failures),
            "fix the handler setting or the function's files (packages, include, sources) as each line says",
        )
    for proof in proofs:
        log(f"  handler {proof.handler} of {proof.function}: {proof.how}")
    return proofs


def _import_check(run: HostPython | ImagePython, job: HandlerJob, target: Target, unpacked: Path) -> str | None:
    """Import one handler with the function's zip unpacked under ``unpacked/var/task`` (its layer at opt/)."""
    function = job.function
    scratch = str(unpacked)
    lay_out(Artifact(job.code, "function", None), unpacked, target.python)
    task = str(unpacked / "var" / "task") if isinstance(run, HostPython) else "/var/task"
    argument = json.dumps([run.sys_path(unpacked), function.handler_module, function.handler_attribute])
    stdout, why = run.execute(unpacked, SCRIPT, argument, lambda_environment(function, target, task))
    report = next((json.loads(line[len(MARK):]) for line in stdout.splitlines() if line.startswith(MARK)), None)
    if report is None:
        return f"{_label(job)}: the interpreter died importing {function.handler_module} ({why})"
    if report["ok"]:
        return None
    if report["stage"] == "import":
        missing = report.get("missing")
        module = function.handler_module
        if missing and (module == missing or module.startswith(missing + ".")):
            return f"{_label(job)}: {_not_found(job, target)}"
        where = f" (at {_short(report['line'], scratch)})" if report.get("line") else ""
        hint = ""
        if missing:
            found = _locate(missing, _names(job.code), target)
            hint = (f"; {missing} is at {found[0]} in {job.code.name}, where Lambda does not look: add sources = "
                    f"[\"{found[1]}\"] to functions.{function.name}" if found else
                    f"; {missing} is not in the artifacts: add the distribution that provides it to the project's "
                    "dependencies and run `uv lock`")
        return f"{_label(job)}: importing {function.handler_module} failed: {report['error']}{where}{hint}"
    if report["stage"] == "attribute":
        defined = ", ".join(report.get("defined") or []) or "nothing public"
        return (f"{_label(job)}: module {function.handler_module} ({_short(report.get('file'), scratch)}) has no "
                f"{function.handler_attribute!r}; it defines {defined}")
    return (f"{_label(job)}: {function.handler_module}.{function.handler_attribute} is a {report.get('type')}, "
            "not a function Lambda can call")


def _short(path: str | None, scratch: str) -> str:
    """A file in the unpacked artifacts, as Lambda would name it (/var/task/..., /opt/...)."""
    if not path:
        return "?"
    return path.replace(scratch, "") if path.startswith(scratch) else path


def _label(job: HandlerJob) -> str:
    return f"function {job.function.name!r}, handler {job.function.handler!r}"


# --------------------------------------------------------------------------
# where Lambda looks, and where the module really is


def _module_files(module: str, python: str, machine: str) -> list[str]:
    """The files that can be ``module`` inside one sys.path entry."""
    path = module.replace(".", "/")
    tags = (f"cpython-{python.replace('.', '')}-{machine}-linux-gnu", "abi3")
    return [f"{path}.py", f"{path}/__init__.py", *(f"{path}.{tag}.so" for tag in tags), f"{path}.so",
            f"{path}.pyc", f"{path}/__init__.pyc"]  # the last two: sourceless (bytecode = "only")


def _roots(job: HandlerJob, python: str) -> list[tuple[str, Path]]:
    """(prefix in the zip, zip) of each sys.path entry, in Lambda's order."""
    roots = [("", job.code)]
    if job.layer is not None:
        roots += [(f"python/lib/python{python}/site-packages/", job.layer), ("python/", job.layer)]
    return roots


def _names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [name for name in archive.namelist() if not name.endswith("/")]


def _locate(module: str, names: list[str], target: Target) -> tuple[str, str] | None:
    """(file, directory prefix) of ``module`` deeper in a zip than Lambda looks, if it is there."""
    for candidate in _module_files(module, target.python, target.machine):
        for name in sorted(names, key=len):
            if name.endswith("/" + candidate):
                return name, name[: -len(candidate)].rstrip("/")
    return None


def _not_found(job: HandlerJob, target: Target) -> str:
    """Module not where Lambda looks: where it is instead, and the option that would put it right."""
    module = job.function.handler_module
    names = _names(job.code)
    found = _locate(module, names, target)
    if found:
        return (f"module {module} is not where Lambda looks (the root of {job.code.name}): it is at {found[0]} "
                f"in the zip; add sources = [\"{found[1]}\"] to functions.{job.function.name}")
    top = sorted({name.split("/", 1)[0] for name in names} - {"__pycache__"})
    return (f"no module {module} in {job.code.name}" + (" or the layer" if job.layer else "")
            + f" (the zip's top level holds: {', '.join(top[:10])}{', ...' if len(top) > 10 else ''})")


def _defines(source: str, name: str) -> bool | None:
    """Whether a module's source binds ``name`` at its top level; None when it cannot tell (star imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for target in targets for t in ast.walk(target)):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                if (alias.asname or alias.name.split(".")[0]) == name:
                    return True
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return None
    return False


def _static_check(job: HandlerJob, target: Target) -> str | None:
    function = job.function
    wanted = _module_files(function.handler_module, target.python, target.machine)
    for prefix, zip_path in _roots(job, target.python):
        names = set(_names(zip_path))
        for candidate in wanted:
            if prefix + candidate not in names:
                continue
            if not candidate.endswith(".py"):
                return None  # an extension module: its names cannot be read without loading it
            with zipfile.ZipFile(zip_path) as archive:
                source = archive.read(prefix + candidate).decode("utf-8", "replace")
            if _defines(source, function.handler_attribute) is False:
                return (f"{_label(job)}: {prefix + candidate} in {zip_path.name} defines no "
                        f"{function.handler_attribute!r} at its top level")
            return None
    return f"{_label(job)}: {_not_found(job, target)}"
