"""With installer = "docker": each wheel installed by pip inside the Lambda image, alone in a directory of its own.

The wheels are downloaded (or built) on this machine and pass their checks
there first; one container with no network then installs each with
``pip install --no-deps --require-hashes --target``, and each directory becomes
that distribution's pack (see :mod:`hatch_lambda.packs.pack`).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from installer.records import parse_record_file
from installer.sources import WheelFile

from hatch_lambda.config.options import LambdaConfig
from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.builds import Wheel
from hatch_lambda.hashing import file_sha256
from hatch_lambda.packs.build import ImageInstall, Installed
from hatch_lambda.packs.sources import PackSource
from hatch_lambda.packs.strip import remove_empty_dirs
from hatch_lambda.packs.unpack import StagedDistribution, check_wheel
from hatch_lambda.runtime.docker import (
    PIP_ENVIRONMENT,
    PIP_QUIET,
    Container,
    connect,
    engine_with_image,
    ensure_image,
    link_or_copy,
)

if TYPE_CHECKING:
    from docker import DockerClient

#: Run inside the image: one pip install per wheel, each into a directory of its own.
INSTALL_EACH = r"""
import json, subprocess, sys
for target, requirements in json.load(open("/job/jobs.json")):
    subprocess.run([sys.executable, "-m", "pip", "install", *json.load(open("/job/flags.json")),
                    "--target", target, "-r", requirements], check=True)
"""


def install_each_in_image(
    config: LambdaConfig,
    client: DockerClient,
    wheels: list[tuple[Wheel, dict[str, str]]],
    out: Path,
    work: Path,
    log: Log,
) -> dict[str, Installed]:
    """pip inside the image installs each wheel alone into ``out/<name>``, without network.

    ``wheels``: each wheel with its RECORD (checked on this machine before
    anything is installed). One container installs them all.
    """
    python = f"/var/lang/bin/python{config.target.python}"
    wheel_dir, job = work / "wheelhouse", work / "job-install"
    job.mkdir(parents=True, exist_ok=True)
    jobs = []
    for wheel, _ in wheels:
        local = link_or_copy(wheel.path, wheel_dir)
        digest = wheel.dist.sha256 if wheel.how == "wheel" else file_sha256(local)
        (job / f"{wheel.dist.name}.txt").write_text(
            f"{wheel.dist.name} @ file:///wheels/{local.name} --hash=sha256:{digest}\n")
        (out / wheel.dist.name).mkdir(parents=True, exist_ok=True)
        jobs.append([f"/out/{wheel.dist.name}", f"/job/{wheel.dist.name}.txt"])
    (job / "jobs.json").write_text(json.dumps(jobs))
    (job / "flags.json").write_text(json.dumps([*PIP_QUIET, "--no-index", "--no-deps", "--require-hashes",
                                                "--no-compile", "--only-binary", ":all:"]))
    log(f"installing {len(wheels)} distributions in {config.image_name} ({config.target.docker_platform})")
    run = Container(client, config.image_name, config.target.docker_platform)
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


def image_installer(config: LambdaConfig, work: Path, log: Log) -> tuple[str, ImageInstall]:
    """The packs' installer for ``installer = "docker"``: (the image's id, what installs missing packs' wheels)."""
    client = connect()
    try:
        ensure_image(client, config.image_name, config.target.docker_platform, log)
        image_id = client.images.get(config.image_name).id
    finally:
        client.close()
    assert image_id is not None, "the engine names every image by its digest"

    def install(sources: list[tuple[PackSource, Path]]) -> dict[str, Installed]:
        # Every wheel passes its checks before anything is installed.
        wheels = [(wheel, check_wheel(wheel)) for wheel in (Wheel(s.dist, path, s.how) for s, path in sources)]
        with engine_with_image(connect(), config.image_name, config.target.docker_platform, log) as engine:
            return install_each_in_image(config, engine, wheels, work / "installed", work, log)

    return image_id, install


def _staged_from_pip(root: Path, wheel: Wheel) -> StagedDistribution:
    """What pip put under ``root`` for one wheel, read from its RECORD.

    pip's ``--target`` also moves scripts (``bin/``) and data files into the
    target; RECORD names them with a leading ``../``. They are removed, as the
    wheels installer never installs them.
    """
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
