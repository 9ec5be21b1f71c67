"""An interpreter of the Lambda runtime: this machine's CPython of its version and CPU, else the image's through Docker;
and the CPython that compiles bytecode for it (any CPU).

The host's is started with ``-I -S`` (no site-packages of the host). In the
image, the artifact is mounted read-only, without network, and the image's own
site-packages (boto3) follow the artifact's directories as they do on Lambda.
Both run a script with ``sys.path`` in Lambda's order: the function's code
(``/var/task``), then the layers' site-packages directory, then ``/opt/python``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.docker import connect, ensure_image
from hatch_lambda.runtime.runtimes import DEFAULT_IMAGE
from hatch_lambda.runtime.target import Target

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

TIMEOUT = 900  # seconds for one interpreter run


def lambda_sys_path(task: str, opt: str, python: str) -> list[str]:
    """Lambda's order: the function's code, then the layers' site-packages directory, then /opt/python."""
    return [task, f"{opt}/python/lib/python{python}/site-packages", f"{opt}/python"]


@dataclass(frozen=True)
class Found:
    """An interpreter that ran: where it is, its "X.Y", its exact release ("3.12.8") and its CPU."""

    executable: str
    python: str
    release: str
    machine: str


PROBE = ("import sys, platform; print(sys.executable); print('%d.%d' % sys.version_info[:2]); "
         "print(platform.python_version()); print(platform.machine()); print(sys.implementation.name)")


def _probe(executable: str) -> Found | None:
    """What a CPython is, or None if it does not run or is not CPython."""
    try:
        result = subprocess.run([executable, "-I", "-S", "-c", PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 5 or lines[4] != "cpython":
        return None
    return Found(lines[0], lines[1], lines[2], lines[3])


def pyenv_root() -> Path:
    """Where pyenv keeps its Pythons: ``PYENV_ROOT``, else what ``pyenv root`` says, else ``~/.pyenv``."""
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        listed = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=60)
        if listed.returncode == 0 and listed.stdout.strip():
            return Path(listed.stdout.strip())
    return Path.home() / ".pyenv"


def _uv(*args: str) -> str | None:
    """What ``uv ARGS`` prints (stripped), or None without uv or when it fails."""
    uv = shutil.which("uv")
    if uv is None:
        return None
    try:
        result = subprocess.run([uv, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def _installed(version: str) -> Iterator[str]:
    """``pythonX.Y`` on PATH, in uv's managed Pythons, under pyenv's versions (newest first)."""
    found = shutil.which(f"python{version}")
    if found:
        yield found
    roots = [Path(managed)] if (managed := _uv("python", "dir")) else []
    roots.append(Path.home() / ".local" / "share" / "uv" / "python")
    for root in roots:
        yield from _newest(root.glob(f"cpython-{version}*/bin/python{version}"))
    yield from _newest((pyenv_root() / "versions").glob(f"{version}*/bin/python{version}"))


def _newest(paths: Iterator[Path]) -> list[str]:
    """Interpreters in installation directories named after their release, newest release first."""

    def release(path: Path) -> tuple[int, ...]:
        found = re.search(r"(\d+)\.(\d+)\.(\d+)", path.parents[1].name)
        return tuple(int(part) for part in found.groups()) if found else ()

    return [str(path) for path in sorted(paths, key=release, reverse=True)]


def find_python(version: str, machine: str | None = None) -> Found | None:
    """A CPython ``version`` of this machine (for ``machine``'s CPU when given), in this order: the
    interpreter running the build, ``pythonX.Y`` on PATH, uv's managed Pythons, pyenv's versions, and
    what ``uv python find X.Y`` finds."""
    if machine is not None and platform.machine() != machine:
        return None

    def candidates() -> Iterator[str]:
        if "%d.%d" % sys.version_info[:2] == version:
            yield sys.executable
        yield from _installed(version)
        found = _uv("python", "find", "--no-project", version)
        if found:
            yield found

    seen: set[str] = set()
    for executable in candidates():
        if executable in seen:
            continue
        seen.add(executable)
        probed = _probe(executable)
        if probed and probed.python == version and (machine is None or probed.machine == machine):
            return probed
    return None


def host_python(version: str, machine: str | None = None) -> str | None:
    """This machine's CPython ``version`` (see :func:`find_python`), if its CPU is ``machine``."""
    found = find_python(version, machine)
    return found.executable if found else None


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


#: Where a runner finds the packages the Lambda runtime itself provides (boto3 and what it needs),
#: when a build left them out of the artifact: last on sys.path, as Lambda's own /var/runtime.
RUNTIME_EXTRA = "runtime-extra"


class HostPython:
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


class ImagePython:
    """The runtime's Python inside the Lambda image; no network, artifact mounted read-only."""

    def __init__(self, client: DockerClient, image: str, target: Target) -> None:
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
        except Exception as exc:  # noqa: BLE001 - the SDK raises requests' timeout types, among others
            return "", f"the container did not finish: {exc}"
        finally:
            container.remove(force=True)
        return stdout, f"exit status {code}: {_tail(stderr)}"

    def _create(self, script: str, argument: str, unpacked: Path, environment: dict[str, str]) -> Container:
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


@contextmanager
def interpreter(target: Target, *, runner: str = "auto", image: str | None = None, log: Log = print,
                purpose: str = "the smoke import") -> Iterator[HostPython | ImagePython]:
    """An interpreter of ``target``'s runtime: this machine's when its version and CPU match, else the image's."""
    executable = host_python(target.python, target.machine) if runner in ("auto", "host") else None
    if runner == "host" and executable is None:
        raise LambdaBuildError(
            f"no python{target.python} for {target.machine} on this machine for {purpose}",
            "install that Python, or let the check run in the Lambda image (runner auto or docker)",
        )
    if executable is not None:
        yield HostPython(executable, target.python)
        return
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
        yield ImagePython(client, image, target)
    finally:
        client.close()


@dataclass(frozen=True)
class Compiler:
    """A CPython of the runtime's version that compiles bytecode (any CPU will do): this machine's, or the
    Lambda image's through Docker. ``release`` is its exact version ("3.12.8"), part of every pack key."""

    release: str
    executable: str = ""  # this machine's interpreter
    image: str = ""  # else the image whose python compiles, through Docker
    platform: str = ""  # the image's platform

    @property
    def description(self) -> str:
        where = self.executable if self.executable else f"in {self.image}"
        return f"CPython {self.release} ({where})"


def find_compiler(target: Target, *, image: str | None = None, log: Log = print) -> Compiler | None:
    """A CPython of ``target``'s version to compile bytecode: this machine's (see :func:`find_python`),
    else, when ``image`` is given (the installer may use Docker) and Docker is reachable, the image's."""
    found = find_python(target.python)
    if found is not None:
        return Compiler(found.release, executable=found.executable)
    if image is None:
        return None
    try:
        client = connect()
    except LambdaBuildError:
        return None
    try:
        ensure_image(client, image, target.docker_platform, log)
        output = client.containers.run(
            image, command=["-I", "-S", "-c", "import platform; print(platform.python_version())"],
            entrypoint=[f"/var/lang/bin/python{target.python}"], network_disabled=True, remove=True,
            platform=target.docker_platform, stdout=True, stderr=False,
        )
    except Exception:  # noqa: BLE001 - the SDK raises several unrelated types; no compiler then
        return None
    finally:
        client.close()
    release = output.decode("utf-8", "replace").strip() if isinstance(output, bytes) else ""
    if not re.fullmatch(rf"{re.escape(target.python)}\.\d+\S*", release):
        return None
    return Compiler(release, image=image, platform=target.docker_platform)
