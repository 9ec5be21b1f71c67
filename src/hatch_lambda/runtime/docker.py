"""Installing inside the Lambda base image, through the Docker Engine API.

``installer = "docker"``: every distribution is installed by pip inside the
image, exactly the lock's pins (``--no-deps``, with hashes). Wheels are
downloaded on the host and mounted read-only; that container has no network.
Sdists are first built into wheels in a container of their own, which alone
gets network (``docker-network``), with the host's CA bundle and proxy
variables.

``installer = "auto"``: the lock's wheels are unpacked on the host; a package
with only an sdist is built in the image when Docker is reachable, otherwise on
the host (accepted only when pure Python).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hatch_lambda.config import LambdaConfig
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.files import file_sha256
from hatch_lambda.packs.unpack import StagedDistribution, Wheel, host_build
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.packs.pack import Installed
from hatch_lambda.packs.strip import remove_empty_dirs

Log = Callable[[str], None]
PIP_QUIET = ["--disable-pip-version-check", "--no-cache-dir", "--no-input"]
PIP_ENVIRONMENT = {"HOME": "/tmp", "PIP_ROOT_USER_ACTION": "ignore"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
CA_IN_CONTAINER = "/etc/hatch-lambda/ca-bundle.pem"


def where_docker_is() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (DOCKER_HOST is not set)"


def connect():
    """A client for the engine DOCKER_HOST names, or an error saying where it looked."""
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except Exception as exc:  # the SDK raises several unrelated types for "not there"
        raise LambdaBuildError(
            f"Docker is not reachable at {where_docker_is()}: {exc}",
            "start the Docker engine (or point DOCKER_HOST at one), "
            'or set installer = "wheels" when every package has a wheel for the runtime',
        ) from None


@dataclass
class _Run:
    """One container: image, platform, entrypoint overridden, always removed."""

    client: object
    image: str
    platform: str

    def __call__(self, command: list[str], mounts: dict[str, tuple[Path, str]], *, network: str | None,
                 environment: dict[str, str], what: str, log: Log) -> None:
        """Run ``command``; ``network`` None means none at all, "" the engine's default."""
        volumes = {str(source): {"bind": target, "mode": mode} for target, (source, mode) in mounts.items()}
        if network is None:
            options = {"network_disabled": True}
        else:
            options = {"network_mode": network} if network else {}
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
            raise LambdaBuildError(f"pip failed in {self.image} while {what}:\n    {tail}")


    def not_runnable(self, what: str, detail: object) -> LambdaBuildError:
        return LambdaBuildError(
            f"the image {self.image} cannot run for {self.platform} on this Docker engine ({what}): {detail}",
            "install CPU emulation for the engine (binfmt with qemu-user-static), use an image of that "
            "platform, or build on a machine of the target's CPU",
        )


def ensure_image(client, image: str, platform: str, log: Log) -> None:
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


def _link_or_copy(source: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def _network_environment() -> tuple[dict[str, str], dict[str, tuple[Path, str]]]:
    """Proxy variables and the host's CA bundle, for a container that builds sdists."""
    environment = {}
    for name in PROXY_VARIABLES:
        for variant in (name, name.lower()):
            if variant in os.environ:
                environment[variant] = os.environ[variant]
    mounts = {}
    paths = ssl.get_default_verify_paths()
    bundle = next(
        (Path(p) for p in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()),
        None,
    )
    if bundle is not None:
        mounts[CA_IN_CONTAINER] = (bundle.resolve(), "ro")
        environment.update(PIP_CERT=CA_IN_CONTAINER, SSL_CERT_FILE=CA_IN_CONTAINER, REQUESTS_CA_BUNDLE=CA_IN_CONTAINER)
    return environment, mounts


def build_sdists_in_image(
    config: LambdaConfig, client, sdists: list[Distribution], downloads: dict[str, Path], work: Path, log: Log
) -> list[Wheel]:
    """Build each sdist into a wheel with pip inside the image; the only step with network."""
    python = f"/var/lang/bin/python{config.target.python}"
    source_dir, out_dir, job = work / "sdists", work / "built", work / "job-sdists"
    out_dir.mkdir(parents=True, exist_ok=True)
    job.mkdir(parents=True, exist_ok=True)
    lines = []
    for dist in sdists:
        local = _link_or_copy(downloads[dist.name], source_dir)
        subdirectory = f"#subdirectory={dist.subdirectory}" if dist.subdirectory else ""
        lines.append(f"{dist.name} @ file:///sdists/{local.name}{subdirectory} --hash=sha256:{dist.file.sha256}")
    (job / "requirements.txt").write_text("\n".join(lines) + "\n")
    environment, mounts = _network_environment()
    environment.update(PIP_ENVIRONMENT)
    log(f"building in {config.image_name}: {', '.join(d.pin for d in sdists)}")
    run = _Run(client, config.image_name, config.target.docker_platform)
    run(
        [python, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "--require-hashes", "--wheel-dir", "/built",
         "-r", "/job/requirements.txt"],
        {"/sdists": (source_dir, "ro"), "/job": (job, "ro"), "/built": (out_dir, "rw"), **mounts},
        network=config.docker_network or "",
        environment=environment,
        what=f"building {', '.join(d.pin for d in sdists)}",
        log=log,
    )
    from packaging.utils import canonicalize_name, parse_wheel_filename

    built = {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in out_dir.glob("*.whl")}
    wheels = []
    for dist in sdists:
        if dist.name not in built:
            raise LambdaBuildError(f"building {dist.pin} in {config.image_name} produced no wheel")
        wheels.append(Wheel(dist, built[dist.name], f"sdist built in {config.image_name}"))
    return wheels


#: Run inside the image: one pip install per wheel, each into a directory of its own.
INSTALL_EACH = r"""
import json, subprocess, sys
for target, requirements in json.load(open("/job/jobs.json")):
    subprocess.run([sys.executable, "-m", "pip", "install", *json.load(open("/job/flags.json")),
                    "--target", target, "-r", requirements], check=True)
"""


def install_each_in_image(config: LambdaConfig, client, wheels: list[tuple[Wheel, dict[str, str]]], out: Path,
                          work: Path, log: Log) -> dict[str, Installed]:
    """pip inside the image installs each wheel alone into ``out/<name>``, without network.

    ``wheels``: each wheel with its RECORD (checked on this machine before
    anything is installed). One container installs them all.
    """
    python = f"/var/lang/bin/python{config.target.python}"
    wheel_dir, job = work / "wheelhouse", work / "job-install"
    job.mkdir(parents=True, exist_ok=True)
    jobs = []
    for wheel, _ in wheels:
        local = _link_or_copy(wheel.path, wheel_dir)
        digest = wheel.dist.file.sha256 if wheel.how == "wheel" and wheel.dist.file else file_sha256(local)
        (job / f"{wheel.dist.name}.txt").write_text(
            f"{wheel.dist.name} @ file:///wheels/{local.name} --hash=sha256:{digest}\n")
        (out / wheel.dist.name).mkdir(parents=True, exist_ok=True)
        jobs.append([f"/out/{wheel.dist.name}", f"/job/{wheel.dist.name}.txt"])
    (job / "jobs.json").write_text(json.dumps(jobs))
    (job / "flags.json").write_text(json.dumps([*PIP_QUIET, "--no-index", "--no-deps", "--require-hashes",
                                                "--no-compile", "--only-binary", ":all:"]))
    log(f"installing {len(wheels)} distributions in {config.image_name} ({config.target.docker_platform})")
    run = _Run(client, config.image_name, config.target.docker_platform)
    run(
        [python, "-c", INSTALL_EACH],
        {"/wheels": (wheel_dir, "ro"), "/job": (job, "ro"), "/out": (out, "rw")},
        network=None,
        environment=PIP_ENVIRONMENT,
        what=f"installing {', '.join(w.dist.pin for w, _ in wheels)}",
        log=log,
    )
    installed = {}
    for wheel, record in wheels:
        root = out / wheel.dist.name
        staged = _staged_from_pip(root, wheel)
        remove_empty_dirs(root)
        installed[wheel.dist.name] = Installed(root, staged, record)
    return installed


def image_installer(config: LambdaConfig, work: Path, log: Log):
    """The packs' installer for ``installer = "docker"``: (the image's id, what installs missing packs' wheels)."""
    from hatch_lambda.packs.unpack import check_wheel

    client = connect()
    try:
        ensure_image(client, config.image_name, config.target.docker_platform, log)
        image_id = client.images.get(config.image_name).id
    finally:
        client.close()

    def install(sources) -> dict[str, Installed]:
        # Every wheel passes its checks before anything is installed.
        wheels = [(wheel, check_wheel(wheel)) for wheel in (Wheel(s.dist, path, s.how) for s, path in sources)]
        with engine_with_image(connect(), config, log) as engine:
            return install_each_in_image(config, engine, wheels, work / "installed", work, log)

    return image_id, install


def _staged_from_pip(root: Path, wheel: Wheel) -> StagedDistribution:
    """What pip put under ``root`` for one wheel, read from its RECORD.

    pip's ``--target`` also moves scripts (``bin/``) and data files into the
    target; RECORD names them with a leading ``../``. They are removed, as the
    wheels installer never installs them.
    """
    from installer.records import parse_record_file
    from installer.sources import WheelFile

    with WheelFile.open(wheel.path) as source:
        dist_info = source.dist_info_dir
    record = root / dist_info / "RECORD"
    if not record.is_file():
        raise LambdaBuildError(f"pip left no {dist_info}/RECORD for {wheel.dist.pin} in the image's install")
    files, outside = [], []
    for name, _, _ in parse_record_file(record.read_text().splitlines()):
        parts = PurePosixPath(name).parts
        if ".." in parts:
            outside.append("/".join(p for p in parts if p != ".."))
        elif "__pycache__" not in parts:
            files.append(name)
    for name in outside:
        (root / name).unlink(missing_ok=True)
    return StagedDistribution(name=wheel.dist.name, version=wheel.dist.version, how=wheel.how,
                              files=tuple(sorted(files)))


@contextmanager
def engine_with_image(client, config: LambdaConfig, log: Log) -> Iterator:
    """``client``, once the target's image is on the engine; closed afterwards."""
    try:
        ensure_image(client, config.image_name, config.target.docker_platform, log)
        yield client
    finally:
        client.close()


def auto_sdists(
    config: LambdaConfig, sdists: list[Distribution], downloads: dict[str, Path], work: Path, cache: Path, log: Log
) -> list[Wheel]:
    """sdists for ``auto``: in the image when Docker is reachable, else on the host if pure."""
    try:
        client = connect()
    except LambdaBuildError as unreachable:
        wheels, failed, reasons = [], [], []
        for dist in sdists:
            try:
                wheels.append(host_build(dist, downloads[dist.name], work, cache, log))
            except LambdaBuildError as exc:  # not pure Python, or the build itself failed
                failed.append(dist)
                reasons.append(exc.problem.replace("\n", "\n    "))
        if failed:
            names = ", ".join(d.pin for d in failed)
            raise LambdaBuildError(
                f"{names} {'has' if len(failed) == 1 else 'have'} only an sdist that could not be built into a "
                f"pure Python wheel here, so it must be built in the Lambda image, but Docker is not reachable "
                f"at {where_docker_is()}:\n    " + "\n    ".join(reasons),
                f"start Docker (or set DOCKER_HOST), or pin {'it' if len(failed) == 1 else 'them'} to a "
                f"release with a wheel for {config.target.platforms[0]} or older and run `uv lock`",
            ) from unreachable
        return wheels
    with engine_with_image(client, config, log):
        return build_sdists_in_image(config, client, sdists, downloads, work, log)
