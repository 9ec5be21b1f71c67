"""Helpers for the Docker installer tests: builds against the test engine, small sdist projects, a compiler image.

Builds run like every other build test (see ``helpers.builds``): ``python -m hatchling
build`` in a subprocess, in a private copy of a project, with the session's
download cache. Here ``DOCKER_HOST`` points at the test engine (or at a socket
nobody listens on), and the target's table names the engine's Lambda stand-in
image with ``docker-network = "host"``, since the test engine has no bridge
network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.builds import Build, digests, hatchling_build
from helpers.projects import LAYER, configure, uv_lock

#: Tag of the stand-in image with a C compiler and Python's headers added.
COMPILER_IMAGE = "hatch-lambda-test/python-cc:3.11"
COMPILER_PACKAGES = ("gcc", "libc6-dev", "python3.11-dev")
BASE_LABEL = "org.hatch-lambda.test.base-image"


def image_template(tag: str) -> str:
    """``repo:3.11`` -> ``repo:{python}``: the image option with its placeholder."""
    repository, _, version = tag.rpartition(":")
    assert repository and version, tag
    return f"{repository}:{{python}}"


def unreachable(directory: Path) -> str:
    """A DOCKER_HOST where nothing listens."""
    return f"unix://{directory}/none.sock"


def use_docker(project: Path, installer: str, image: str, **keys) -> dict:
    """Set installer, image and docker-network = "host" (and any other keys) in lambda-layer's table."""
    return configure(project, installer=installer, image=image, docker_network="host", **keys)


def docker_build(project: Path, engine, cache: Path, *, docker_host: str | None = None, check: bool = True,
                 env: dict[str, str | None] | None = None, args: tuple[str, ...] = (),
                 python: str = sys.executable) -> Build:
    """Build lambda-layer with DOCKER_HOST set to the test engine (or ``docker_host``), run by ``python``.

    Every build, failed or not, must leave no container behind on the engine.
    """
    build = hatchling_build(
        project, LAYER, cache=cache, check=check, args=args, python=python,
        env={"DOCKER_HOST": docker_host or engine.base_url, **(env or {})},
    )
    left = engine.client.containers.list(all=True)
    assert left == [], f"containers left on the engine: {[(c.short_id, c.image.tags, c.status) for c in left]}"
    return build


def scratch_left(build: Build) -> list[str]:
    """Staging directories a build left in its output directory."""
    out = build.out()
    return sorted(p.name for p in out.glob(".hatch-lambda-*")) if out.is_dir() else []


def refused_without_changes(build_again, build: Build) -> Build:
    """Run ``build_again()`` (a failing build of the same project); the artifacts must not change."""
    before = digests(build.out())
    assert before, "the first build wrote nothing"
    failed = build_again()
    assert digests(build.out()) == before, "a failed build changed the previous artifacts"
    assert scratch_left(failed) == []
    return failed


# --------------------------------------------------------------------------
# small projects around hand-made sdists


def make_sdist(source: Path, outdir: Path) -> Path:
    """``python -m build --sdist`` of a source tree; the path of the sdist."""
    outdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "build", "--sdist", "--outdir", str(outdir), str(source)]
    if shutil.which("uv"):
        command[4:4] = ["--installer", "uv"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"building the sdist of {source} failed:\n{result.stdout}\n{result.stderr}"
    [sdist] = sorted(outdir.glob("*.tar.gz"))
    return sdist


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def setuptools_sdist(directory: Path, name: str, files: dict[str, str]) -> Path:
    """An sdist of a setuptools project (a pyproject.toml naming the backend, plus ``files``)."""
    source = write_tree(directory / f"{name}-src", {
        "pyproject.toml": """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
        """,
        **files,
    })
    return make_sdist(source, directory / f"{name}-dist")


def app_with_sdists(directory: Path, name: str, sdists: dict[str, Path], handler: str,
                    requires: tuple[str, ...] = ()) -> Path:
    """A project ``name`` depending on each sdist as a path source (and on ``requires``), locked with ``uv lock``.

    Its one function is the package ``src/<name>`` whose ``handler.py`` is ``handler``.
    """
    package = name.replace("-", "_")
    project = directory / name
    vendor = project / "vendor"
    vendor.mkdir(parents=True)
    sources = []
    for dist, sdist in sorted(sdists.items()):
        shutil.copyfile(sdist, vendor / sdist.name)
        sources.append(f'{dist} = {{ path = "vendor/{sdist.name}" }}')
    dependencies = ", ".join(f'"{dist}"' for dist in [*sorted(sdists), *requires])
    pyproject = "\n".join([
        "[build-system]",
        'requires = ["hatchling", "hatch-lambda"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{name}"',
        'version = "0.1.0"',
        'requires-python = ">=3.11"',
        f"dependencies = [{dependencies}]",
        "",
        "[tool.uv.sources]",
        *sources,
        "",
        "[tool.hatch.build.targets.wheel]",
        f'packages = ["src/{package}"]',
        "",
        "[tool.hatch.build.targets.lambda-layer]",
        'python = "3.11"',
        "",
    ])
    write_tree(project, {
        "pyproject.toml": pyproject,
        f"src/{package}/__init__.py": "",
        f"src/{package}/handler.py": handler,
    })
    (project / ".git").mkdir()  # the lock search stops here
    uv_lock(project)
    return project


# --------------------------------------------------------------------------
# the stand-in image with a compiler


def _proxy_environment() -> dict[str, str]:
    names = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
    return {v: os.environ[v] for n in names for v in (n, n.lower()) if v in os.environ}


def ensure_compiler_image(client, base: str, tag: str = COMPILER_IMAGE) -> str:
    """``base`` plus gcc and Python's headers (apt-get in a container with host network), tagged ``tag``.

    Neither the Lambda base image nor its stand-in has a compiler; an sdist with a C extension needs
    one. Made once per engine; remade when ``base`` changed.
    """
    import docker.errors

    base_id = client.images.get(base).id
    try:
        if client.images.get(tag).labels.get(BASE_LABEL) == base_id:
            return tag
    except docker.errors.ImageNotFound:
        pass
    script = (
        "apt-get update -q && "
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {' '.join(COMPILER_PACKAGES)} "
        "&& apt-get clean && rm -rf /var/lib/apt/lists/*"
    )
    container = client.containers.create(
        base, entrypoint=["/bin/sh", "-c"], command=[script], user="0:0", network_mode="host",
        environment=_proxy_environment(),
    )
    try:
        container.start()
        status = container.wait(timeout=900)
        if status.get("StatusCode") != 0:
            output = container.logs().decode("utf-8", "replace")
            raise RuntimeError(f"installing {', '.join(COMPILER_PACKAGES)} in {base} failed:\n{output[-3000:]}")
        config = client.images.get(base).attrs["Config"]
        repository, _, version = tag.rpartition(":")
        container.commit(repository=repository, tag=version, conf={
            "Entrypoint": config.get("Entrypoint"),
            "Cmd": config.get("Cmd"),
            "WorkingDir": config.get("WorkingDir"),
            "Env": config.get("Env"),
            "Labels": {**(config.get("Labels") or {}), BASE_LABEL: base_id},
        })
    finally:
        container.remove(force=True)
    return tag


# --------------------------------------------------------------------------
# the engine the fixtures give


def in_ci() -> bool:
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def docker_unavailable(reason: str):
    """Skip, or fail when CI is set: CI must never silently skip the Docker tests."""
    if in_ci():
        pytest.fail(f"Docker tests cannot run (CI is set, so this fails instead of skipping): {reason}", pytrace=False)
    pytest.skip(reason)


class DockerTestEngine:
    """What the ``docker_engine`` fixture yields."""

    def __init__(self, base_url: str, image: str, client, engine=None):
        self.base_url = base_url  # unix://... of the engine
        self.image = image  # tag of the Lambda stand-in image
        self.client = client  # docker.DockerClient
        self.engine = engine  # engine.Engine we started, or None when reused

    def __repr__(self) -> str:
        return f"DockerTestEngine(base_url={self.base_url!r}, image={self.image!r})"


class DockerTestEngineArm64(DockerTestEngine):
    """What the ``docker_engine_arm64`` fixture yields: the same engine, the arm64 image."""

    platform = "linux/arm64"  # pass as platform= when running ``image``

    def __repr__(self) -> str:
        return f"DockerTestEngineArm64(base_url={self.base_url!r}, image={self.image!r})"
