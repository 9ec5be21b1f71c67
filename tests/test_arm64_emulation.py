"""arm64 for the tests: the emulated image and root filesystem really run aarch64 code.

The arm64 Lambda stand-in image runs in the private engine with
``platform="linux/arm64"``; the same root filesystem unpacked into a directory
runs commands with chroot (``engine.run_in_rootfs``), without Docker.  Both go
through qemu's user-mode emulator, which binfmt_misc hands aarch64 executables
to.
"""

from __future__ import annotations

import struct
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from helpers import engine as engine_module
from helpers.notes import note
from helpers.projects import pip_download

eng = engine_module

PYTHON = "/var/lang/bin/python3.11"
ROOTFS_PYTHON = "/usr/bin/python3.11"
EM_AARCH64 = 0xB7
EM_X86_64 = 0x3E
# the last numpy with manylinux2014 (glibc 2.17) aarch64 wheels for CPython 3.11
NUMPY_VERSION = "2.2.6"
NUMPY_CHECK = (
    "import platform, numpy; "
    "print(platform.machine()); print(numpy.__version__); print(numpy.__file__); "
    "print(int(numpy.arange(10).sum())); "
    "print(int((numpy.ones((64, 64)) @ numpy.ones((64, 64)))[0, 0]))"
)


def elf_machine(path: Path) -> int:
    """e_machine of an ELF file (0xB7 aarch64, 0x3E x86-64)."""
    head = Path(path).read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return struct.unpack_from("<H", head, 18)[0]


def mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p == str(root) or p.startswith(prefix)]


def run_arm64(docker_engine_arm64, argv: list[str], **kwargs) -> str:
    """Run the arm64 image (platform linux/arm64) to completion; its stdout. Always removes it."""
    kwargs.setdefault("network_mode", "none")
    container = docker_engine_arm64.client.containers.run(
        docker_engine_arm64.image,
        entrypoint=argv,
        platform=docker_engine_arm64.platform,
        detach=True,
        **kwargs,
    )
    try:
        status = container.wait(timeout=600)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        assert status["StatusCode"] == 0, f"exit {status['StatusCode']}\nstdout:\n{out}\nstderr:\n{err}"
        return out
    finally:
        container.remove(force=True)


# --------------------------------------------------------------------------
# the image


@pytest.mark.docker
def test_arm64_image_says_arm64(docker_engine_arm64):
    attrs = docker_engine_arm64.client.images.get(docker_engine_arm64.image).attrs
    assert (attrs["Os"], attrs["Architecture"], attrs.get("Variant")) == ("linux", "arm64", "v8")
    labels = attrs["Config"]["Labels"] or {}
    assert labels.get(eng.RECIPE_LABEL) == eng.recipe_key("arm64")
    assert eng.recipe_key("arm64") != eng.recipe_key("amd64")


@pytest.mark.docker
def test_arm64_container_runs_aarch64_python(docker_engine_arm64, docker_engine):
    code = (
        "import os, platform, sys; print(platform.machine()); print(sys.executable); "
        "print('%d.%d' % sys.version_info[:2]); print(os.getcwd())"
    )
    shown = run_arm64(docker_engine_arm64, [PYTHON, "-c", code]).split()
    assert shown == ["aarch64", PYTHON, "3.11", "/var/task"]
    # the amd64 image on the same engine is not emulated
    native = docker_engine.client.containers.run(
        docker_engine.image, entrypoint=[PYTHON, "-c", "import platform; print(platform.machine())"],
        network_mode="none", remove=True,
    )
    assert native.decode().split() == ["x86_64"]


@pytest.mark.docker
def test_arm64_image_keeps_the_lambda_entrypoint(docker_engine_arm64):
    import docker

    with pytest.raises(docker.errors.ContainerError) as caught:
        docker_engine_arm64.client.containers.run(
            docker_engine_arm64.image, platform=docker_engine_arm64.platform,
            network_mode="none", remove=True,
        )
    assert caught.value.exit_status == 1
    assert eng.ENTRYPOINT_MESSAGE.encode() in caught.value.stderr


# --------------------------------------------------------------------------
# the chroot root filesystem


def test_rootfs_python_is_aarch64_and_imports_a_bound_directory(arm64_rootfs, tmp_path):
    assert elf_machine(arm64_rootfs / ROOTFS_PYTHON.lstrip("/")) == EM_AARCH64
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "hl_arm64_probe.py").write_text("VALUE = 6 * 7\n")
    proc = eng.run_in_rootfs(
        arm64_rootfs,
        [ROOTFS_PYTHON, "-c",
         "import platform, sys, hl_arm64_probe as m; "
         "print(platform.machine()); print(sys.executable); print(m.VALUE); print(m.__file__)"],
        binds={modules: "/opt/hl-probe"},
        env={"PYTHONPATH": "/opt/hl-probe", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["aarch64", ROOTFS_PYTHON, "42", "/opt/hl-probe/hl_arm64_probe.py"]
    assert mounts_under(arm64_rootfs) == []
    assert not (arm64_rootfs / "opt/hl-probe").exists()  # the mount point it made is gone again


def test_rootfs_binds_are_read_only_and_unmounted_after_a_failure(arm64_rootfs, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    code = (
        "import errno, sys\n"
        "try:\n"
        "    open('/mnt/shared/written', 'w')\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
        "    sys.exit(3)\n"
    )
    proc = eng.run_in_rootfs(arm64_rootfs, [ROOTFS_PYTHON, "-c", code], binds={shared: "/mnt/shared"})
    assert (proc.returncode, proc.stdout.strip()) == (3, "EROFS"), proc.stderr
    assert not (shared / "written").exists()
    assert mounts_under(arm64_rootfs) == []
    with pytest.raises(eng.EngineError, match="exited 3"):
        eng.run_in_rootfs(arm64_rootfs, [ROOTFS_PYTHON, "-c", code], binds={shared: "/mnt/shared"}, check=True)
    assert mounts_under(arm64_rootfs) == []


def test_rootfs_unmounts_after_a_timeout(arm64_rootfs, tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        eng.run_in_rootfs(
            arm64_rootfs, [ROOTFS_PYTHON, "-c", "import time; time.sleep(120)"],
            binds={tmp_path: "/mnt/timeout"}, timeout=5,
        )
    assert mounts_under(arm64_rootfs) == []


def test_rootfs_refuses_binds_through_symlinks(arm64_rootfs, tmp_path):
    # /var/run is an absolute link to /run: followed here it would leave the root
    assert (arm64_rootfs / "var/run").is_symlink()
    with pytest.raises(eng.EngineError, match="symlink"):
        eng.run_in_rootfs(arm64_rootfs, ["/bin/true"], binds={tmp_path: "/var/run/x"})
    with pytest.raises(eng.EngineError, match="absolute"):
        eng.run_in_rootfs(arm64_rootfs, ["/bin/true"], binds={tmp_path: "../x"})
    assert mounts_under(arm64_rootfs) == []


# --------------------------------------------------------------------------
# a real aarch64 extension module: numpy's manylinux2014 aarch64 wheel


@pytest.fixture(scope="module")
def numpy_aarch64(tmp_path_factory) -> Path:
    """numpy's cp311 aarch64 wheel from the package index, unzipped; the directory holding ``numpy/``."""
    wheels = tmp_path_factory.mktemp("numpy-aarch64-wheel")
    pip_download(f"numpy=={NUMPY_VERSION}", wheels, "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
                 "--implementation", "cp", "--abi", "cp311")
    (wheel,) = wheels.glob(f"numpy-{NUMPY_VERSION}-cp311-cp311-*aarch64*.whl")
    assert "manylinux2014_aarch64" in wheel.name or "manylinux_2_17_aarch64" in wheel.name
    site = tmp_path_factory.mktemp("numpy-aarch64")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    (core,) = (site / "numpy/_core").glob("_multiarray_umath.cpython-311-aarch64-linux-gnu.so")
    assert elf_machine(core) == EM_AARCH64
    return site


@pytest.mark.network
def test_numpy_aarch64_computes_in_rootfs(arm64_rootfs, numpy_aarch64, pytestconfig):
    started = time.monotonic()
    proc = eng.run_in_rootfs(
        arm64_rootfs, [ROOTFS_PYTHON, "-c", NUMPY_CHECK],
        binds={numpy_aarch64: "/opt/python"},
        env={"PYTHONPATH": "/opt/python", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    machine, version, location, total, product = proc.stdout.split()
    assert (machine, version, total, product) == ("aarch64", NUMPY_VERSION, "45", "64")
    assert location == "/opt/python/numpy/__init__.py"
    note(pytestconfig, f"numpy {NUMPY_VERSION} aarch64 import + compute in the chroot: {took:.1f}s")


@pytest.mark.docker
@pytest.mark.network
def test_numpy_aarch64_computes_in_container(docker_engine_arm64, numpy_aarch64, pytestconfig):
    started = time.monotonic()
    out = run_arm64(
        docker_engine_arm64, [PYTHON, "-c", NUMPY_CHECK],
        volumes={str(numpy_aarch64): {"bind": "/opt/python", "mode": "ro"}},
        environment={"PYTHONPATH": "/opt/python", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    took = time.monotonic() - started
    machine, version, location, total, product = out.split()
    assert (machine, version, total, product) == ("aarch64", NUMPY_VERSION, "45", "64")
    assert location == "/opt/python/numpy/__init__.py"
    note(pytestconfig, f"numpy {NUMPY_VERSION} aarch64 import + compute in a linux/arm64 container: {took:.1f}s")
