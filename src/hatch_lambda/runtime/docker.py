"""The Docker engine the builds and checks use: where it is, the image on it, one container at a time.

Each container runs with the image's entrypoint overridden, for the target's
platform (``linux/amd64`` or ``linux/arm64``), as the invoking user, and is
always removed. Only a container that builds sdists gets network
(``docker-network``), with the host's CA bundle and proxy variables
(:func:`network_environment`).
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError

if TYPE_CHECKING:
    from docker import DockerClient

PIP_QUIET = ["--disable-pip-version-check", "--no-cache-dir", "--no-input"]
PIP_ENVIRONMENT = {"HOME": "/tmp", "PIP_ROOT_USER_ACTION": "ignore"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
CA_IN_CONTAINER = "/etc/hatch-lambda/ca-bundle.pem"


def where_docker_is() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (DOCKER_HOST is not set)"


def connect() -> DockerClient:
    """A client for the engine DOCKER_HOST names, or an error saying where it looked."""
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - the SDK raises several unrelated types for "not there"
        raise LambdaBuildError(
            f"Docker is not reachable at {where_docker_is()}: {exc}",
            "start the Docker engine (or point DOCKER_HOST at one), "
            'or set installer = "wheels" when every package has a wheel for the runtime',
        ) from None


@dataclass
class Container:
    """One container: image, platform, entrypoint overridden, always removed."""

    client: DockerClient
    image: str
    platform: str

    def __call__(self, command: list[str], mounts: dict[str, tuple[Path, str]], *, network: str | None,
                 environment: dict[str, str], what: str, log: Log, labels: dict[str, str] | None = None,
                 program: str = "pip") -> None:
        """Run ``command`` (``program``, as a failure names it); ``network`` None means none at all, "" the
        engine's default."""
        volumes = {str(source): {"bind": target, "mode": mode} for target, (source, mode) in mounts.items()}
        options: dict[str, Any] = {}  # left out when not set, so the engine keeps its default
        if network is None:
            options["network_disabled"] = True
        elif network:
            options["network_mode"] = network
        import docker.errors

        try:
            container = self.client.containers.create(
                self.image,
                command=command[1:],
                entrypoint=[command[0]],  # the Lambda images' entrypoint expects a handler
                volumes=volumes,
                environment=environment,
                user=f"{os.getuid()}:{os.getgid()}",
                working_dir="/tmp",
                platform=self.platform,
                labels=labels or {},
                **options,
            )
        except docker.errors.APIError as exc:
            if "platform" in str(exc):
                raise self.not_runnable(what, exc) from None
            raise LambdaBuildError(f"Docker refused to create a container of {self.image} ({what}): {exc}") from None
        try:
            container.start()
            status = container.wait()
            code = status.get("StatusCode", 1)
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        finally:
            container.remove(force=True)
        if code != 0:
            if "exec format error" in output or "exec user process caused" in output:
                raise self.not_runnable(what, output.strip())
            tail = "\n    ".join(output.strip().splitlines()[-20:])
            raise LambdaBuildError(f"{program} failed in {self.image} (exit {code}) while {what}:\n    {tail}")

    def not_runnable(self, what: str, detail: object) -> LambdaBuildError:
        return LambdaBuildError(
            f"the image {self.image} cannot run for {self.platform} on this Docker engine ({what}): {detail}",
            "install CPU emulation for the engine (binfmt with qemu-user-static), use an image of that "
            "platform, or build on a machine of the target's CPU",
        )


def ensure_image(client: DockerClient, image: str, platform: str, log: Log) -> None:
    """Pull ``image`` for ``platform`` when it is absent, showing progress."""
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise LambdaBuildError(f"cannot inspect image {image}: {exc}") from None
    log(f"pulling {image} for {platform}")
    last = None
    try:
        # The SDK splits the reference itself: name[:tag] or name@sha256:digest.
        for event in client.api.pull(image, platform=platform, stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(event["error"])
            status = event.get("status")
            if status and status != last and "id" not in event:
                log(f"  {status}")
                last = status
        client.images.get(image)
    except (docker.errors.APIError, docker.errors.ImageNotFound) as exc:
        raise LambdaBuildError(
            f"the image {image} is not on the Docker engine and pulling it failed: {exc}",
            "pull it yourself (docker pull), or set `image` to a Lambda Python base image the engine has",
        ) from None


def link_or_copy(source: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def network_environment() -> tuple[dict[str, str], dict[str, tuple[Path, str]]]:
    """Proxy variables and the host's CA bundle, for a container that builds sdists."""
    environment = {}
    for name in PROXY_VARIABLES:
        for variant in (name, name.lower()):
            if variant in os.environ:
                environment[variant] = os.environ[variant]
    mounts = {}
    paths = ssl.get_default_verify_paths()
    candidates = (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile)
    bundle = next((Path(p) for p in candidates if p and Path(p).is_file()), None)
    if bundle is not None:
        mounts[CA_IN_CONTAINER] = (bundle.resolve(), "ro")
        environment.update(PIP_CERT=CA_IN_CONTAINER, SSL_CERT_FILE=CA_IN_CONTAINER, REQUESTS_CA_BUNDLE=CA_IN_CONTAINER)
    return environment, mounts


@contextmanager
def engine_with_image(client: DockerClient, image: str, platform: str, log: Log) -> Iterator[DockerClient]:
    """``client``, once the target's image is on the engine; closed afterwards."""
    try:
        ensure_image(client, image, platform, log)
        yield client
    finally:
        client.close()


