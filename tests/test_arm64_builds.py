"""arm64 artifacts run for real, not only ELF-checked: under user-mode emulation (qemu-user-static).

The arm64 Lambda stand-in (a Debian arm64 root filesystem with python3.11,
shaped like the Lambda image; ``tests/engine.py``) serves twice: as a Docker
image the engine runs with ``platform = linux/arm64``, for the build's handler
check, ``hatch-lambda verify --runner docker`` and ``installer = "docker"``; and
as a chroot, where the built layer and function are mounted at ``/opt`` and
``/var/task`` and the handler is called by the arm64 python3.11.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import engine as engine_module
from helpers.builds import elf_machines, extract, manifest, sha256_file
from helpers.dockerutil import docker_build
from helpers.lambda_run import RESULT_MARK
from helpers.projects import LAYER, NATIVE_EXPECTED, configure, copy_fixture

pytestmark = [pytest.mark.docker, pytest.mark.network]

HANDLER = "native_app.handler.handler"


def arm64_project(tmp_path, engine, installer: str = "wheels"):
    project = copy_fixture("native-app", tmp_path)
    configure(project, arch="arm64", installer=installer, image=engine.image, docker_network="host",
              functions={"native-app": {"packages": ["src/native_app"], "handler": HANDLER}})
    return project


CALL = r"""
import importlib, json, platform, sys
sys.path[:0] = ["/var/task", "/opt/python/lib/python3.11/site-packages", "/opt/python"]
module = importlib.import_module("native_app.handler")
result = module.handler({}, None)
loaded = {name: getattr(sys.modules[name], "__file__", "") for name in ("yaml", "markupsafe", "orjson")}
print(%r + json.dumps({"result": result, "machine": platform.machine(), "loaded": loaded}))
""" % RESULT_MARK


def call_in_arm64_python(rootfs, layer, function, tmp_path) -> dict:
    """The handler called by the arm64 python3.11 with the layer at /opt and the function at /var/task."""
    eng = engine_module
    opt, task = extract(layer, tmp_path / "opt"), extract(function, tmp_path / "task")
    run = eng.run_in_rootfs(rootfs, ["/usr/bin/python3.11", "-I", "-S", "-B", "-c", CALL],
                            binds={opt: "/opt", task: "/var/task"}, env={"LANG": "C.UTF-8"}, cwd="/var/task")
    line = next((line for line in run.stdout.splitlines() if line.startswith(RESULT_MARK)), None)
    assert run.returncode == 0 and line, run.stdout + run.stderr
    return json.loads(line[len(RESULT_MARK):])


@pytest.fixture(scope="module")
def arm64_build(tmp_path_factory, docker_engine_arm64, cache):
    project = arm64_project(tmp_path_factory.mktemp("arm64"), docker_engine_arm64)
    return docker_build(project, docker_engine_arm64, cache)


def test_arm64_handler_is_imported_in_the_arm64_image_at_build_time(arm64_build, docker_engine_arm64):
    assert f"handler {HANDLER} of native-app: imported in {docker_engine_arm64.image}" in arm64_build.output
    functions = manifest(arm64_build.out())["targets"][LAYER]["functions"]
    assert functions["native-app"]["handler_check"] == f"imported in {docker_engine_arm64.image}"
    assert functions["native-app"]["architectures"] == ["arm64"]


def test_arm64_layer_runs_in_an_arm64_python(arm64_build, arm64_rootfs, tmp_path):
    machines = set(elf_machines(arm64_build.out("layer.zip"), tmp_path / "elf").values())
    assert machines == {"EM_AARCH64"}
    ran = call_in_arm64_python(arm64_rootfs, arm64_build.out("layer.zip"), arm64_build.out("native-app.zip"),
                               tmp_path / "run")
    assert ran["machine"] == "aarch64"
    assert ran["result"] == NATIVE_EXPECTED  # libyaml, markupsafe's speedups and orjson: compiled code ran
    assert all(path.startswith("/opt/python/") for path in ran["loaded"].values()), ran["loaded"]


def test_a_wrong_arm64_handler_is_refused_from_the_arm64_image(tmp_path, docker_engine_arm64, cache):
    project = arm64_project(tmp_path, docker_engine_arm64)
    configure(project, functions={"native-app": {"packages": ["src/native_app"], "handler": "native_app.handler.main"}})
    build = docker_build(project, docker_engine_arm64, cache, check=False)
    assert not build.ok and "Traceback" not in build.output
    assert ("function 'native-app', handler 'native_app.handler.main': module native_app.handler "
            "(/var/task/native_app/handler.py) has no 'main'") in build.output


def test_verify_runs_an_arm64_layer_in_the_arm64_image(arm64_build, docker_engine_arm64):
    run = subprocess.run(
        [sys.executable, "-m", "hatch_lambda", "verify", str(arm64_build.out()), "--runner", "docker",
         "--image", docker_engine_arm64.image, "--json"],
        capture_output=True, text=True, timeout=900,
        env={**__import__("os").environ, "DOCKER_HOST": docker_engine_arm64.base_url},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"]
    layer = next(r for r in report["results"] if r["artifact"] == "layer.zip")
    assert layer["interpreter"] == f"python3.11 in {docker_engine_arm64.image}"
    assert {"yaml", "markupsafe", "orjson"} <= set(layer["modules"]) and layer["failures"] == {}


def test_docker_installer_on_arm64_gives_the_same_layer(tmp_path, docker_engine_arm64, cache, arm64_build,
                                                        arm64_rootfs):
    project = arm64_project(tmp_path / "docker", docker_engine_arm64, installer="docker")
    build = docker_build(project, docker_engine_arm64, cache)
    assert "(linux/arm64)" in build.output
    assert sha256_file(build.out("layer.zip")) == sha256_file(arm64_build.out("layer.zip"))
    ran = call_in_arm64_python(arm64_rootfs, build.out("layer.zip"), build.out("native-app.zip"), tmp_path / "run")
    assert ran["result"] == NATIVE_EXPECTED
