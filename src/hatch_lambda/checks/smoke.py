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
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.cli.artifacts import Artifact, dependency_roots, unpack
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.target import Target

Log = Callable[[str], None]
RUNNERS = ("auto", "host", "docker")
MARK = "@@hatch-lambda-smoke@@"
TIMEOUT = 900  # seconds for one interpreter run
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOT_PACKAGES = (".dist-info", ".data", ".libs", ".egg-info")

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


def lambda_sys_path(task: str, opt: str, python: str) -> list[str]:
    """Lambda's order: the function's code, then the layers' site-packages directory, then /opt/python."""
    return [task, f"{opt}/python/lib/python{python}/site-packages", f"{opt}/python"]


def module_name(entry: Path) -> str | None:
    """The top-level module a file or directory of a sys.path entry provides, if any."""
    if entry.is_dir():
        if entry.name.endswith(NOT_PACKAGES) or not IDENTIFIER.match(entry.name) or entry.name == "__pycache__":
            return None
        if (entry / "__init__.py").is_file() or any(
            name.endswith((".py", ".so")) for _, _, files in os.walk(entry) for name in files
        ):
            return entry.name  # a package, or a namespace package
        return None
    if entry.suffix in (".py", ".so"):
        stem = entry.name.split(".", 1)[0]
        if IDENTIFIER.match(stem) and not stem.startswith("__"):
            return stem
    return None


def top_level_modules(directory: Path) -> list[str]:
    """Importable top-level names in ``directory``: packages, namespace packages, modules, extensions."""
    if not directory.is_dir():
        return []
    return sorted({name for entry in directory.iterdir() if (name := module_name(entry)) is not None})


def recorded_modules(section: dict | None) -> set[str]:
    """The top-level modules the build recorded in manifest.json for the artifact's distributions."""
    contents = (section or {}).get("contents") or {}
    return {module for info in contents.values() for module in info.get("modules", [])}


@dataclass
class SmokeResult:
    artifact: str
    interpreter: str  # how it ran: "python3.12 (/usr/bin/python3.12)" or "python3.12 in IMAGE"
    modules: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # module -> error

    def as_dict(self) -> dict:
        return {"artifact": self.artifact, "interpreter": self.interpreter, "modules": self.modules,
                "skipped": self.skipped, "failures": self.failures}


# --------------------------------------------------------------------------
# interpreters


def _probe(executable: str, env: dict | None) -> tuple[str, str, str] | None:
    """(sys.executable, "X.Y", machine) of an interpreter, or None if it does not run."""
    try:
        result = subprocess.run(
            [executable, "-I", "-S", "-c",
             "import sys, platform; print(sys.executable); print('%d.%d' % sys.version_info[:2]); "
             "print(platform.machine())"],
            capture_output=True, text=True, env=env, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.split()
    return (lines[0], lines[1], lines[2]) if result.returncode == 0 and len(lines) == 3 else None


def host_python(version: str, machine: str | None = None) -> str | None:
    """This machine's CPython ``version`` (pyenv versions included), if its CPU is ``machine``."""
    if machine is not None and platform.machine() != machine:
        return None
    candidates: list[tuple[str, dict | None]] = []
    found = shutil.which(f"python{version}")
    if found:
        candidates.append((found, None))
    pyenv = shutil.which("pyenv")
    if pyenv:
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        for line in listed.stdout.split():
            if line == version or line.startswith(f"{version}."):
                if found:
                    candidates.append((found, {**os.environ, "PYENV_VERSION": line}))
                candidates.append((str(Path(root, "versions", line, "bin", f"python{version}")), None))
    for executable, env in candidates:
        probed = _probe(executable, env)
        if probed and probed[1] == version and (machine is None or probed[2] == machine):
            return probed[0]
    return None


def _parse(stdout: str) -> dict[str, str] | None:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return None


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


#: Where a runner finds the packages the Lambda runtime itself provides (boto3 and what it needs),
#: when a build left them out of the artifact: last on sys.path, as Lambda's own /var/runtime.
RUNTIME_EXTRA = "runtime-extra"


class _Host:
    def __init__(self, executable: str, python: str) -> None:
        self.executable = executable
        self.python = python
        self.description = f"python{python} ({executable})"

    def execute(self, unpacked: Path, script: str, argument: str, environment: dict[str, str] | None = None
                ) -> tuple[str, str]:
        """Run ``script`` with ``argument`` in ``unpacked`` (opt/, var/task/): (stdout, how it ended)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(unpacked),
               **(environment or {})}
        try:
            process = subprocess.run(
                [self.executable, "-I", "-S", "-B", "-c", script, argument],
                capture_output=True, text=True, env=env, cwd=unpacked / "var" / "task", timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return "", f"no answer within {TIMEOUT} s"
        return process.stdout, f"exit status {process.returncode}: {_tail(process.stderr)}"

    def sys_path(self, unpacked: Path) -> list[str]:
        paths = lambda_sys_path(str(unpacked / "var" / "task"), str(unpacked / "opt"), self.python)
        if (unpacked / RUNTIME_EXTRA).is_dir():
            paths.append(str(unpacked / RUNTIME_EXTRA))
        return paths

    def __call__(self, unpacked: Path, modules: list[str]) -> tuple[dict | None, str]:
        stdout, why = self.execute(unpacked, SCRIPT, json.dumps([self.sys_path(unpacked), modules]))
        return _parse(stdout), why


class _Image:
    """The runtime's Python inside the Lambda image; no network, artifact mounted read-only."""

    def __init__(self, client, image: str, target: Target) -> None:
        self.client = client
        self.image = image
        self.target = target
        self.description = f"python{target.python} in {image}"

    def sys_path(self, unpacked: Path) -> list[str]:
        paths = lambda_sys_path("/var/task", "/opt", self.target.python)
        if (unpacked / RUNTIME_EXTRA).is_dir():
            paths.append(f"/var/{RUNTIME_EXTRA}")
        return paths

    def execute(self, unpacked: Path, script: str, argument: str, environment: dict[str, str] | None = None
                ) -> tuple[str, str]:
        import docker.errors

        try:
            container = self._create(script, argument, unpacked, environment or {})
        except docker.errors.APIError as exc:
            raise LambdaBuildError(
                f"Docker refused to run {self.image} for {self.target.docker_platform}: {exc}",
                "give an image of the Lambda Python runtime for that platform (--image), "
                "or smoke-import on a machine with that python and CPU",
            ) from None
        try:
            container.start()
            code = container.wait(timeout=TIMEOUT).get("StatusCode", 1)
            stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        except Exception as exc:  # the SDK raises requests' timeout types, among others
            return "", f"the container did not finish: {exc}"
        finally:
            container.remove(force=True)
        return stdout, f"exit status {code}: {_tail(stderr)}"

    def __call__(self, unpacked: Path, modules: list[str]) -> tuple[dict | None, str]:
        stdout, why = self.execute(unpacked, SCRIPT, json.dumps([self.sys_path(unpacked), modules]))
        return _parse(stdout), why

    def _create(self, script: str, argument: str, unpacked: Path, environment: dict[str, str]):
        volumes = {
            str(unpacked / "opt"): {"bind": "/opt", "mode": "ro"},
            str(unpacked / "var" / "task"): {"bind": "/var/task", "mode": "ro"},
        }
        if (unpacked / RUNTIME_EXTRA).is_dir():
            volumes[str(unpacked / RUNTIME_EXTRA)] = {"bind": f"/var/{RUNTIME_EXTRA}", "mode": "ro"}
        return self.client.containers.create(
            self.image,
            # no -S: the image's own site-packages (boto3 in the Lambda images) come last, as on Lambda
            command=["-I", "-B", "-c", script, argument],
            entrypoint=[f"/var/lang/bin/python{self.target.python}"],
            volumes=volumes,
            network_disabled=True,
            platform=self.target.docker_platform,
            working_dir="/var/task",
            environment={"LANG": "C.UTF-8", "HOME": "/tmp", **environment},
        )


def _run(runner, unpacked: Path, modules: list[str]) -> dict[str, str]:
    """module -> error; a crashed interpreter is retried one module at a time to name the culprit."""
    failed, why = runner(unpacked, modules)
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


@contextmanager
def interpreter(target: Target, *, runner: str = "auto", image: str | None = None, log: Log = print,
                purpose: str = "the smoke import") -> Iterator[_Host | _Image]:
    """An interpreter of ``target``'s runtime: this machine's when its version and CPU match, else the image's."""
    executable = host_python(target.python, target.machine) if runner in ("auto", "host") else None
    if runner == "host" and executable is None:
        raise LambdaBuildError(
            f"no python{target.python} for {target.machine} on this machine for {purpose}",
            "install that Python, or let the check run in the Lambda image (runner auto or docker)",
        )
    if executable is not None:
        yield _Host(executable, target.python)
        return
    from hatch_lambda.config import DEFAULT_IMAGE
    from hatch_lambda.runtime.docker import connect, ensure_image

    image = (image or DEFAULT_IMAGE).format(python=target.python, arch=target.arch)
    try:
        client = connect()
    except LambdaBuildError as exc:
        why = (f"{purpose} runs in the Lambda image (runner docker)" if runner == "docker" else
               f"no python{target.python} for {target.machine} on this machine, so {purpose} "
               "must run in the Lambda image")
        raise LambdaBuildError(
            f"{why}, but {exc.problem}",
            f"start Docker (or set DOCKER_HOST), or install python{target.python} to check on this "
            "machine (when its CPU is the target's)",
        ) from None
    try:
        ensure_image(client, image, target.docker_platform, log)
        yield _Image(client, image, target)
    finally:
        client.close()


def lay_out(artifact: Artifact, unpacked: Path, python: str) -> Path:
    """Unpack ``artifact`` as Lambda does (a layer under opt/, function code under var/task/); its root."""
    (unpacked / "opt").mkdir(parents=True, exist_ok=True)
    task = unpacked / "var" / "task"
    task.mkdir(parents=True, exist_ok=True)
    layer = artifact.kind == "layer" or (artifact.kind == "tree" and (artifact.path / "python").is_dir())
    root = unpacked / "opt" if layer else task
    if artifact.is_zip:
        unpack(artifact, root)
    else:
        shutil.copytree(artifact.path, root, dirs_exist_ok=True, symlinks=True)
    return root


def smoke_import(
    artifacts: list[Artifact],
    target: Target,
    *,
    skip: tuple[str, ...] = (),
    runner: str = "auto",
    image: str | None = None,
    log: Log = print,
) -> list[SmokeResult]:
    """Import every top-level module of each layer or fat zip; report the failures."""
    results = []
    with interpreter(target, runner=runner, image=image, log=log) as run:
        for artifact in artifacts:
            with tempfile.TemporaryDirectory(prefix="hatch-lambda-smoke-") as scratch:
                unpacked = Path(scratch)
                root = lay_out(artifact, unpacked, target.python)
                found = {m for d in dependency_roots(root, target.python) for m in top_level_modules(d)}
                # a module the build put in but that is gone now is imported too, and fails
                found = sorted(found | recorded_modules(artifact.section))
                result = SmokeResult(artifact.path.name, run.description)
                result.skipped = [m for m in found if m in skip]
                result.modules = [m for m in found if m not in skip]
                if result.modules:
                    result.failures = _run(run, unpacked, result.modules)
                results.append(result)
    return results


def failure_error(results: list[SmokeResult]) -> LambdaBuildError | None:
    """One line per module that failed to import, or None when all imported."""
    lines = []
    for result in results:
        for module, error in sorted(result.failures.items()):
            lines.append(f"{result.artifact}: import {module}: {error}")
    if not lines:
        return None
    where = ", ".join(sorted({r.interpreter for r in results}))
    return LambdaBuildError(
        f"smoke import with {where} failed:\n    " + "\n    ".join(lines),
        "fix or leave out the package whose import fails; a module that cannot be imported on its own "
        "(it needs configuration or a package you provide elsewhere) can be listed in smoke-import-skip "
        "(--skip for hatch-lambda verify)",
    )


def smoke_check(config, written, log: Log) -> None:
    """The build's ``smoke-import = true``: the layer zip, or every fat zip, must import."""
    from hatch_lambda.config import FAT

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
