"""Shared helpers for the lock reader tests: fixture copies and hand-written locks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    assert (path / "uv.lock").is_file(), f"fixture {name} has no uv.lock"
    return path


def copy_fixture(name: str, destination: Path) -> Path:
    """A private copy of a fixture project (for tests that edit it)."""
    target = destination / name
    shutil.copytree(
        fixture_path(name),
        target,
        ignore=shutil.ignore_patterns("__pycache__", "dist", ".venv", "*.pyc"),
    )
    # Mark the copy as a repository root so the lock search stops here.
    (target / ".git").mkdir()
    return target


def write_project(directory: Path, lock: str, *, name: str = "app", pyproject: str | None = None) -> Path:
    """A project directory with a hand-written ``uv.lock`` (dedented) and a pyproject.toml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".git").mkdir(exist_ok=True)
    if pyproject is None:
        pyproject = f"""
            [project]
            name = "{name}"
            version = "0.1.0"
            requires-python = ">=3.11"
        """
    (directory / "pyproject.toml").write_text(textwrap.dedent(pyproject).lstrip(), encoding="utf-8")
    (directory / "uv.lock").write_text(textwrap.dedent(lock).lstrip(), encoding="utf-8")
    return directory


def sha(seed: str) -> str:
    """A stable, distinct 64-hex digest for hand-written lock entries."""
    import hashlib

    return hashlib.sha256(seed.encode()).hexdigest()


def uv_command() -> list[str]:
    """How to run uv: the executable on PATH, else the ``uv`` Python package."""
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.fail("uv is a test dependency (pip install uv) but neither `uv` nor `python -m uv` works")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m hatch_lambda ...`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "hatch_lambda", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


# --------------------------------------------------------------------------
# Docker: a private engine (tests/engine.py) and the local Lambda stand-in image


def _load_engine_module():
    """tests/engine.py under a name of its own (tests/ is not a package)."""
    import importlib.util

    name = "hatch_lambda_test_engine"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("engine.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _in_ci() -> bool:
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def docker_unavailable(reason: str):
    """Skip, or fail when CI is set: CI must never silently skip the Docker tests."""
    if _in_ci():
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


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A Docker engine with the Lambda stand-in image, for the whole session.

    Reuses the engine at ``HATCH_LAMBDA_TEST_DOCKER_HOST`` when set (e.g. one left
    running by ``python tests/engine.py start``); otherwise starts a private
    dockerd in a temporary directory and stops it at the end of the session.
    """
    import os

    try:
        import docker
    except ImportError as exc:
        docker_unavailable(f"the docker Python SDK is not installed ({exc})")
    eng = _load_engine_module()

    engine = None
    base_url = os.environ.get("HATCH_LAMBDA_TEST_DOCKER_HOST")
    if base_url:
        try:
            client = docker.DockerClient(base_url=base_url, timeout=300)
            client.ping()
        except Exception as exc:  # noqa: BLE001
            docker_unavailable(f"HATCH_LAMBDA_TEST_DOCKER_HOST={base_url} does not answer: {exc}")
    else:
        try:
            engine = eng.start_engine(tmp_path_factory.mktemp("docker-engine"))
        except Exception as exc:  # noqa: BLE001
            docker_unavailable(f"cannot start a Docker engine: {exc}")
        base_url = engine.base_url
        client = engine.client()
    try:
        try:
            image = eng.ensure_lambda_image(client)
        except Exception as exc:  # noqa: BLE001
            docker_unavailable(f"cannot make the Lambda stand-in image: {exc}")
        yield DockerTestEngine(base_url=base_url, image=image, client=client, engine=engine)
    finally:
        client.close()
        if engine is not None:
            engine.stop()
            eng.remove_tree(engine.data_root)  # the image's layers: ~150 MB a session


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """The download cache every build of this test session shares (see buildutil.session_cache)."""
    from buildutil import session_cache

    return session_cache(tmp_path_factory)


# --------------------------------------------------------------------------
# arm64: qemu user-mode emulation, the arm64 Lambda stand-in image, and an
# unpacked arm64 root filesystem to chroot into (tests/engine.py)

_NOTES = pytest.StashKey[list]()


def note(config, text: str) -> None:
    """A line for the "arm64 emulation" section at the end of the test run (e.g. a timing)."""
    config.stash.setdefault(_NOTES, []).append(text)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    notes = config.stash.get(_NOTES, [])
    if notes:
        terminalreporter.section("arm64 emulation")
        for text in notes:
            terminalreporter.write_line(text)


class DockerTestEngineArm64(DockerTestEngine):
    """What the ``docker_engine_arm64`` fixture yields: the same engine, the arm64 image."""

    platform = "linux/arm64"  # pass as platform= when running ``image``

    def __repr__(self) -> str:
        return f"DockerTestEngineArm64(base_url={self.base_url!r}, image={self.image!r})"


@pytest.fixture(scope="session")
def arm64_emulation():
    """aarch64 executables run on this machine, in chroots and in containers (qemu + binfmt_misc).

    Yields what ``engine.ensure_arm64_emulation()`` found or set up; the binfmt
    entry stays registered after the session.
    """
    eng = _load_engine_module()
    try:
        return eng.ensure_arm64_emulation()
    except Exception as exc:  # noqa: BLE001
        docker_unavailable(f"cannot emulate arm64: {exc}")


def _arm64_rootfs_tarball(config):
    """The cached arm64 root filesystem tarball; its first build is timed and noted."""
    import time

    eng = _load_engine_module()
    cached = eng.rootfs_tarball_path(arch="arm64").exists()
    started = time.monotonic()
    try:
        tarball = eng.build_rootfs_tarball(arch="arm64")
    except Exception as exc:  # noqa: BLE001
        docker_unavailable(f"cannot make the arm64 root filesystem: {exc}")
    if not cached:
        note(
            config,
            f"arm64 root filesystem built (debootstrap under emulation) in {time.monotonic() - started:.0f}s: "
            f"{tarball} ({tarball.stat().st_size / 1e6:.0f} MB), cached from now on",
        )
    return tarball


@pytest.fixture(scope="session")
def docker_engine_arm64(docker_engine, arm64_emulation, pytestconfig):
    """``docker_engine``'s engine with the arm64 Lambda stand-in image.

    ``.image`` is the arm64 tag (engine.DEFAULT_ARM64_IMAGE); run it with
    ``platform=docker_engine_arm64.platform`` ("linux/arm64").
    """
    import time

    eng = _load_engine_module()
    _arm64_rootfs_tarball(pytestconfig)
    client = docker_engine.client
    started = time.monotonic()
    try:
        before = {i.id for i in client.images.list()}
        image = eng.ensure_lambda_image(client, arch="arm64")
        made = client.images.get(image).id not in before
    except Exception as exc:  # noqa: BLE001
        docker_unavailable(f"cannot make the arm64 Lambda stand-in image: {exc}")
    if made:
        note(pytestconfig, f"arm64 image {image} made in {time.monotonic() - started:.1f}s (import, platform rewrite, load)")
    yield DockerTestEngineArm64(
        base_url=docker_engine.base_url, image=image, client=client, engine=docker_engine.engine
    )


@pytest.fixture(scope="session")
def arm64_rootfs(arm64_emulation, tmp_path_factory, pytestconfig):
    """An unpacked arm64 root filesystem (the arm64 image's content) for ``engine.run_in_rootfs``.

    Its python is ``/usr/bin/python3.11`` (also ``/var/lang/bin/python3.11``).
    Shared by the session: bind directories into it, do not change it.
    """
    import time

    eng = _load_engine_module()
    _arm64_rootfs_tarball(pytestconfig)
    root = tmp_path_factory.mktemp("arm64-rootfs") / "root"
    started = time.monotonic()
    try:
        eng.unpack_rootfs(root, arch="arm64")
    except Exception as exc:  # noqa: BLE001
        eng.remove_tree(root)
        docker_unavailable(f"cannot unpack the arm64 root filesystem: {exc}")
    note(pytestconfig, f"arm64 root filesystem unpacked in {time.monotonic() - started:.1f}s")
    try:
        yield root
    finally:
        eng.remove_tree(root)
