"""An interpreter of the Lambda runtime: this machine's CPython of its version and CPU, else the image's through Docker.

The host's is started with ``-I -S`` (no site-packages of the host). In the
image, the artifact is mounted read-only, without network, and the image's own
site-packages (boto3) follow the artifact's directories as they do on Lambda.
Both run a script with ``sys.path`` in Lambda's order: the function's code
(``/var/task``), then the layers' site-packages directory, then ``/opt/python``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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
