"""The tests' fixtures: the session's download cache, the Docker engine, arm64 emulation.

Helpers the tests import live in ``tests/helpers/``.
"""

from __future__ import annotations

import pytest

from helpers import engine as engine_module
from helpers.dockerutil import DockerTestEngine, DockerTestEngineArm64, docker_unavailable
from helpers.notes import NOTES, note

# --------------------------------------------------------------------------
# Docker: a private engine (tests/helpers/engine.py) and the local Lambda stand-in image


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A Docker engine with the Lambda stand-in image, for the whole session.

    Reuses the engine at ``HATCH_LAMBDA_TEST_DOCKER_HOST`` when set (e.g. one left
    running by ``python tests/helpers/engine.py start``); otherwise starts a private
    dockerd in a temporary directory and stops it at the end of the session.
    """
    import os

    try:
        import docker
    except ImportError as exc:
        docker_unavailable(f"the docker Python SDK is not installed ({exc})")
    eng = engine_module

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
    """The download cache every build of this test session shares (see helpers.builds.session_cache)."""
    from helpers.builds import session_cache

    return session_cache(tmp_path_factory)


# --------------------------------------------------------------------------
# arm64: qemu user-mode emulation, the arm64 Lambda stand-in image, and an
# unpacked arm64 root filesystem to chroot into (tests/helpers/engine.py)

def pytest_terminal_summary(terminalreporter, exitstatus, config):
    notes = config.stash.get(NOTES, [])
    if notes:
        terminalreporter.section("arm64 emulation")
        for text in notes:
            terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def arm64_emulation():
    """aarch64 executables run on this machine, in chroots and in containers (qemu + binfmt_misc).

    Yields what ``engine.ensure_arm64_emulation()`` found or set up; the binfmt
    entry stays registered after the session.
    """
    eng = engine_module
    try:
        return eng.ensure_arm64_emulation()
    except Exception as exc:  # noqa: BLE001
        docker_unavailable(f"cannot emulate arm64: {exc}")


def _arm64_rootfs_tarball(config):
    """The cached arm64 root filesystem tarball; its first build is timed and noted."""
    import time

    eng = engine_module
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

    eng = engine_module
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

    eng = engine_module
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
