"""sdists into wheels: on this machine when the result is pure Python, else in the Lambda image.

``installer = "wheels"`` builds on this machine (pure Python results only);
``"docker"`` builds in the image; ``"auto"`` builds in the image when Docker is
reachable, else on this machine. Only this container gets network
(``docker-network``), with the host's CA bundle and proxy variables. A wheel
built in the image is checked like one built here: it must be the
distribution and version uv.lock names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion

from hatch_lambda.config.options import LambdaConfig
from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.builds import Wheel, host_build, refuse_other
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.runtime.docker import (
    PIP_ENVIRONMENT,
    PIP_QUIET,
    Container,
    connect,
    engine_with_image,
    link_or_copy,
    network_environment,
    where_docker_is,
)

if TYPE_CHECKING:
    from docker import DockerClient


def build_sdists_in_image(
    config: LambdaConfig,
    client: DockerClient,
    sdists: list[Distribution],
    downloads: dict[str, Path],
    work: Path,
    log: Log,
) -> list[Wheel]:
    """Build each sdist into a wheel with pip inside the image; the only step with network."""
    python = f"/var/lang/bin/python{config.target.python}"
    source_dir, out_dir, job = work / "sdists", work / "built", work / "job-sdists"
    out_dir.mkdir(parents=True, exist_ok=True)
    job.mkdir(parents=True, exist_ok=True)
    lines = []
    for dist in sdists:
        local = link_or_copy(downloads[dist.name], source_dir)
        subdirectory = f"#subdirectory={dist.subdirectory}" if dist.subdirectory else ""
        lines.append(f"{dist.name} @ file:///sdists/{local.name}{subdirectory} --hash=sha256:{dist.sha256}")
    (job / "requirements.txt").write_text("\n".join(lines) + "\n")
    environment, mounts = network_environment()
    environment.update(PIP_ENVIRONMENT)
    log(f"building in {config.image_name}: {', '.join(d.pin for d in sdists)}")
    run = Container(client, config.image_name, config.target.docker_platform)
    run(
        [python, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "--require-hashes", "--wheel-dir", "/built",
         "-r", "/job/requirements.txt"],
        {"/sdists": (source_dir, "ro"), "/job": (job, "ro"), "/built": (out_dir, "rw"), **mounts},
        network=config.docker_network or "",
        environment=environment,
        what=f"building {', '.join(d.pin for d in sdists)}",
        log=log,
    )
    return wheels_built(sdists, downloads, out_dir, config.image_name)


def wheels_built(sdists: list[Distribution], downloads: dict[str, Path], out_dir: Path, image: str) -> list[Wheel]:
    """The wheel pip built in ``image`` into ``out_dir`` for each sdist, checked as one built on this machine is:
    it must be the distribution and version uv.lock names, whatever the sdist's archive is called."""
    built: dict[str, Path] = {}
    for path in sorted(out_dir.glob("*.whl")):
        try:
            built[canonicalize_name(parse_wheel_filename(path.name)[0])] = path
        except (InvalidWheelFilename, InvalidVersion) as exc:
            raise LambdaBuildError(f"building {', '.join(d.pin for d in sdists)} in {image} gave {path.name}, "
                                   f"which is not a valid wheel file name ({exc})") from None
    unclaimed = [path for name, path in built.items() if name not in {dist.name for dist in sdists}]
    wheels = []
    for dist in sdists:
        wheel = built.get(dist.name)
        if wheel is None and len(sdists) == 1 and len(unclaimed) == 1:
            wheel = unclaimed[0]  # the one sdist gave another distribution's wheel: refused below, naming it
        if wheel is None:
            raise LambdaBuildError(f"building {dist.pin} in {image} produced no wheel of {dist.name}")
        refuse_other(dist, wheel, downloads[dist.name])
        wheels.append(Wheel(dist, wheel, f"sdist built in {image}"))
    return wheels


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
                wheels.append(host_build(dist, downloads[dist.name], work, cache, log, config.target.python))
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
    with engine_with_image(client, config.image_name, config.target.docker_platform, log):
        return build_sdists_in_image(config, client, sdists, downloads, work, log)


def sdist_wheels(config: LambdaConfig, sdists: list[Distribution], downloads: dict[str, Path], cache: Path,
                  work: Path, log: Log) -> list[Wheel]:
    """sdists into wheels: in the image for ``docker``; for ``auto`` there when Docker is reachable, else on the
    host (pure Python only); on the host for ``wheels``."""
    if config.installer == "wheels":
        return [host_build(dist, downloads[dist.name], work, cache, log, config.target.python) for dist in sdists]
    if config.installer == "auto":
        return auto_sdists(config, sdists, downloads, work, cache, log)
    with engine_with_image(connect(), config.image_name, config.target.docker_platform, log) as client:
        return build_sdists_in_image(config, client, sdists, downloads, work, log)
