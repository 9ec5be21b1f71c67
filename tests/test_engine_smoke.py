"""The private Docker engine and the Lambda stand-in image behave as the builders expect."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from helpers.projects import pip_download

pytestmark = pytest.mark.docker

PYTHON = "/var/lang/bin/python3.11"
PIP = "/var/lang/bin/pip"


def run(docker_engine, **kwargs) -> bytes:
    """Run a container to completion and return its stdout; always removes it."""
    kwargs.setdefault("network_mode", "none")
    container = docker_engine.client.containers.run(docker_engine.image, detach=True, **kwargs)
    try:
        status = container.wait(timeout=300)
        out = container.logs(stdout=True, stderr=False)
        err = container.logs(stdout=False, stderr=True)
        assert status["StatusCode"] == 0, (
            f"exit {status['StatusCode']}\nstdout:\n{out.decode(errors='replace')}\n"
            f"stderr:\n{err.decode(errors='replace')}"
        )
        return out
    finally:
        container.remove(force=True)


def make_wheel(directory: Path, name: str = "hl_smoke", version: str = "1.0") -> Path:
    """A small but complete pure-Python wheel, written by hand."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), text)
    return wheel


def hashed_requirements(wheels: Path, pins: dict[str, Path]) -> Path:
    """requirements.txt pinning each name==version to its wheel's sha256.

    (``--hash`` is only accepted inside a requirements file, not on pip's command line.)
    """
    lines = []
    for pin, wheel in pins.items():
        lines.append(f"{pin} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}")
    req = wheels / "requirements.txt"
    req.write_text("\n".join(lines) + "\n")
    return req


def pip_install_target(docker_engine, wheels: Path, out: Path, **kwargs) -> bytes:
    """pip install --target /out/site from the read-only /wheels, without network."""
    return run(
        docker_engine,
        entrypoint=[
            PIP, "install", "--target", "/out/site", "--no-deps", "--require-hashes",
            "--no-index", "--find-links", "/wheels", "-r", "/wheels/requirements.txt",
        ],
        volumes={str(wheels): {"bind": "/wheels", "mode": "ro"}, str(out): {"bind": "/out", "mode": "rw"}},
        network_mode="none",
        **kwargs,
    )


def test_python_in_image(docker_engine):
    code = (
        "import os, sys, pip; "
        "print('%d.%d' % sys.version_info[:2]); print(sys.executable); "
        "print(os.getcwd()); print(os.environ['LAMBDA_TASK_ROOT']); print(pip.__version__)"
    )
    out = run(docker_engine, entrypoint=[PYTHON, "-c", code]).decode().split()
    assert out[:4] == ["3.11", PYTHON, "/var/task", "/var/task"]
    assert int(out[4].split(".")[0]) >= 23
    pip_version = run(docker_engine, entrypoint=[PIP, "--version"]).decode()
    assert "(python 3.11)" in pip_version


def test_default_entrypoint_needs_a_handler(docker_engine):
    import docker

    with pytest.raises(docker.errors.ContainerError) as caught:
        docker_engine.client.containers.run(docker_engine.image, network_mode="none", remove=True)
    assert caught.value.exit_status == 1
    assert b"this is the Lambda entrypoint; it needs a handler" in caught.value.stderr


def test_pip_install_target_offline(docker_engine, tmp_path):
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir()
    out.mkdir()
    wheel = make_wheel(wheels)
    hashed_requirements(wheels, {"hl_smoke==1.0": wheel})

    pip_install_target(docker_engine, wheels, out)

    site = out / "site"
    assert (site / "hl_smoke" / "__init__.py").read_text() == 'VERSION = "1.0"\n'
    assert (site / "hl_smoke-1.0.dist-info" / "RECORD").is_file()
    # the container runs as root: what it writes into the mount belongs to root
    assert (site / "hl_smoke" / "__init__.py").stat().st_uid == 0
    # and the image's Python imports it
    shown = run(
        docker_engine,
        entrypoint=[PYTHON, "-c", "import hl_smoke; print(hl_smoke.VERSION, hl_smoke.__file__)"],
        volumes={str(out): {"bind": "/opt/python", "mode": "ro"}},
        environment={"PYTHONPATH": "/opt/python/site"},
    )
    assert shown.decode().split() == ["1.0", "/opt/python/site/hl_smoke/__init__.py"]


def test_pip_install_target_rejects_wrong_hash(docker_engine, tmp_path):
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir()
    out.mkdir()
    make_wheel(wheels)
    (wheels / "requirements.txt").write_text("hl_smoke==1.0 --hash=sha256:" + "0" * 64 + "\n")
    container = docker_engine.client.containers.run(
        docker_engine.image,
        entrypoint=[PIP, "install", "--target", "/out/site", "--no-deps", "--require-hashes",
                    "--no-index", "--find-links", "/wheels", "-r", "/wheels/requirements.txt"],
        volumes={str(wheels): {"bind": "/wheels", "mode": "ro"}, str(out): {"bind": "/out", "mode": "rw"}},
        network_mode="none",
        detach=True,
    )
    try:
        assert container.wait(timeout=300)["StatusCode"] != 0
        assert b"DO NOT MATCH THE HASHES" in container.logs(stdout=True, stderr=True)
    finally:
        container.remove(force=True)
    assert not (out / "site" / "hl_smoke").exists()


def test_pip_install_target_as_unprivileged_user(docker_engine, tmp_path):
    """user="uid:gid" writes files owned by that uid into the mounted directory."""
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir()
    out.mkdir()
    wheel = make_wheel(wheels)
    hashed_requirements(wheels, {"hl_smoke==1.0": wheel})
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() != 0 else (1000, 1000)
    if os.getuid() == 0:
        os.chown(out, uid, gid)

    pip_install_target(
        docker_engine, wheels, out,
        user=f"{uid}:{gid}",
        environment={"HOME": "/tmp"},  # a uid without a passwd entry has HOME=/
    )

    installed = out / "site" / "hl_smoke" / "__init__.py"
    assert installed.is_file()
    assert (installed.stat().st_uid, installed.stat().st_gid) == (uid, gid)


@pytest.mark.network
def test_pip_install_target_real_wheel_from_pypi(docker_engine, tmp_path):
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir()
    out.mkdir()
    pip_download("six==1.17.0", wheels, timeout=300)
    (wheel,) = wheels.glob("six-1.17.0-*.whl")
    hashed_requirements(wheels, {"six==1.17.0": wheel})

    pip_install_target(docker_engine, wheels, out)

    site = out / "site"
    assert (site / "six.py").is_file()
    assert (site / "six-1.17.0.dist-info" / "METADATA").is_file()
