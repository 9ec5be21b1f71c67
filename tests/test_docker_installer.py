"""installer = "docker" and "auto" against a real Docker engine and the Lambda stand-in image.

Every build runs ``python -m hatchling build -t lambda-layer`` in a subprocess,
in a private copy of a project, with ``DOCKER_HOST`` pointing at the test
engine (``docker_engine``) or at a socket where nothing listens. The engine has
no bridge network, so the target's table sets ``docker-network = "host"`` for
the containers that build sdists.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest

from hatch_lambda.packs.elf import read_elf

from helpers.builds import (
    assert_failed_cleanly,
    extract,
    fresh_cache,
    hatchling_build,
    manifest,
    sha256_file,
    zip_files,
)
from helpers.dockerutil import (
    app_with_sdists,
    docker_build,
    ensure_compiler_image,
    image_template,
    refused_without_changes,
    scratch_left,
    setuptools_sdist,
    unreachable,
    use_docker,
)
from helpers.lambda_run import invoke, lambda_root
from helpers.projects import LAYER, NATIVE_EXPECTED, configure, copy_fixture

pytestmark = [
    pytest.mark.docker,
    pytest.mark.network,
    pytest.mark.skipif(
        platform.machine() != "x86_64",
        reason="the stand-in image is linux/amd64 and the artifacts are run on this machine's interpreter",
    ),
]

SDIST_EVENT = {"command": "photo.png --width=320"}
SDIST_EXPECTED = {"ok": True, "image": "photo.png", "width": 320, "height": 600}

# fixture -> function zip -> (handler module, event, expected result, modules that must come from the layer)
HANDLERS = {
    "native-app": {
        "native-app": ("native_app.handler", {}, NATIVE_EXPECTED, ("yaml", "markupsafe", "orjson")),
    },
    "workspace-app": {
        "api": (
            "wsapp.api",
            {},
            {"ok": True, "function": "api", "host": "xn--bcher-kva.example", "days": 60, "member": "0.2.0"},
            ("idna", "wsmember", "dateutil"),
        ),
        "worker": (
            "wsapp.worker",
            {"date": "2024-01-31", "months": 1},
            {"ok": True, "function": "worker", "next_run": "2024-02-29"},
            ("wsmember", "dateutil"),
        ),
    },
    "sdist-app": {
        "sdist-app": ("sdist_app.handler", SDIST_EVENT, SDIST_EXPECTED, ("docopt", "six")),
    },
}


def run_handlers(build, fixture: str, directory: Path) -> None:
    """Each function zip with the layer, unzipped as Lambda does, its handler called."""
    for function, (module, event, expected, from_layer) in HANDLERS[fixture].items():
        root = lambda_root(directory / function, "3.11", layer=build.out("layer.zip"),
                           function=build.out(f"{function}.zip"))
        run = invoke(root, module, event)
        assert run.result == expected
        assert run.loaded[module].startswith(str(root.task))
        for name in from_layer:
            assert run.loaded[name].startswith(str(root.opt / "python")), (name, run.loaded.get(name))


@pytest.fixture(scope="module")
def image(docker_engine) -> str:
    """The image option for the stand-in image, with its {python} placeholder."""
    return image_template(docker_engine.image)


def _docker_build(tmp_path_factory, docker_engine, cache, fixture: str, installer: str, image: str, **env):
    project = copy_fixture(fixture, tmp_path_factory.mktemp(f"{fixture}-{installer}"))
    use_docker(project, installer, image)
    return docker_build(project, docker_engine, cache, env=env or None)


@pytest.fixture(scope="module")
def native_docker(tmp_path_factory, docker_engine, cache, image):
    return _docker_build(tmp_path_factory, docker_engine, cache, "native-app", "docker", image)


@pytest.fixture(scope="module")
def native_wheels(tmp_path_factory, cache):
    project = copy_fixture("native-app", tmp_path_factory.mktemp("native-app-wheels"))
    configure(project, installer="wheels")
    return hatchling_build(project, LAYER, cache=cache)  # DOCKER_HOST points nowhere: not needed


@pytest.fixture(scope="module")
def workspace_docker(tmp_path_factory, docker_engine, cache):
    # the image named literally this time, without the placeholder
    return _docker_build(tmp_path_factory, docker_engine, cache, "workspace-app", "docker", docker_engine.image)


@pytest.fixture(scope="module")
def sdist_docker(tmp_path_factory, docker_engine, cache, image):
    return _docker_build(tmp_path_factory, docker_engine, cache, "sdist-app", "docker", image)


@pytest.fixture(scope="module")
def sdist_auto(tmp_path_factory, docker_engine, cache, image):
    return _docker_build(tmp_path_factory, docker_engine, cache, "sdist-app", "auto", image)


# --------------------------------------------------------------------------
# 1. installer = "docker": the artifacts run like Lambda runs them


@pytest.mark.parametrize(("fixture", "distributions"), [
    pytest.param("native-app", {"markupsafe", "orjson", "pyyaml"}, id="native-app"),
    pytest.param("workspace-app", {"idna", "python-dateutil", "tzdata", "wsmember"}, id="workspace-app"),
])
def test_docker_installer_artifacts_run_like_lambda(request, docker_engine, tmp_path, fixture, distributions):
    build = request.getfixturevalue({"native-app": "native_docker", "workspace-app": "workspace_docker"}[fixture])
    section = manifest(build.out())["targets"][LAYER]
    assert {d["name"] for d in section["distributions"]} == distributions
    assert f"installing {len(section['distributions'])} distributions in {docker_engine.image} (linux/amd64)" in (
        build.output
    )
    assert {name.split("/")[0] for name in zip_files(build.out("layer.zip"))} == {"python"}
    run_handlers(build, fixture, tmp_path)


def test_workspace_member_is_built_on_the_host_and_installed_in_the_image(workspace_docker):
    assert "wsmember 0.2.0: built from packages/wsmember" in workspace_docker.output
    names = zip_files(workspace_docker.out("layer.zip"))
    assert "python/wsmember/__init__.py" in names
    assert "python/wsmember-0.2.0.dist-info/METADATA" in names
    # pip --target's leftovers are not in the layer: no scripts, no bytecode but the build's own (__pycache__)
    assert not any(n.startswith("python/bin/") for n in names)
    assert all("/__pycache__/" in n and n.endswith(".cpython-311.pyc") for n in names if n.endswith(".pyc"))


# --------------------------------------------------------------------------
# 2. every package has a wheel: "docker" and "wheels" give the same bytes


def test_docker_and_wheels_installers_give_identical_zips(native_docker, native_wheels, docker_engine):
    assert docker_engine.image in native_docker.output
    assert docker_engine.image not in native_wheels.output
    for name in ("layer.zip", "native-app.zip"):
        assert sha256_file(native_docker.out(name)) == sha256_file(native_wheels.out(name)), name
    docker_section = manifest(native_docker.out())["targets"][LAYER]
    wheels_section = manifest(native_wheels.out())["targets"][LAYER]
    assert docker_section["artifacts"] == wheels_section["artifacts"]
    assert docker_section["distributions"] == wheels_section["distributions"]


# --------------------------------------------------------------------------
# 3. an sdist-only dependency (pure Python)


@pytest.mark.parametrize("installer", ["docker", "auto"])
def test_sdist_only_dependency_is_built_in_the_image(request, docker_engine, tmp_path, installer):
    build = request.getfixturevalue(f"sdist_{installer}")
    assert f"building in {docker_engine.image}: docopt==0.6.2" in build.output
    assert f"docopt 0.6.2: sdist built in {docker_engine.image}" in build.output
    assert "built on host" not in build.output
    # "docker" installs everything in the image; "auto" unpacks the wheels (six) on the host
    installed_in_image = f"installing 2 distributions in {docker_engine.image}" in build.output
    assert installed_in_image == (installer == "docker")
    names = zip_files(build.out("layer.zip"))
    assert {"python/docopt.py", "python/six.py"} <= names
    docopt = next(d for d in manifest(build.out())["targets"][LAYER]["distributions"] if d["name"] == "docopt")
    assert docopt["file"] == "docopt-0.6.2.tar.gz"
    run_handlers(build, "sdist-app", tmp_path)


def test_auto_without_docker_builds_a_pure_sdist_on_the_host(tmp_path, docker_engine, cache, image):
    project = copy_fixture("sdist-app", tmp_path)
    use_docker(project, "auto", image)
    build = docker_build(project, docker_engine, cache, docker_host=unreachable(tmp_path))
    assert "docopt 0.6.2: sdist built on host" in build.output
    assert "built in" not in build.output
    assert "python/docopt.py" in zip_files(build.out("layer.zip"))
    run_handlers(build, "sdist-app", tmp_path / "run")


# --------------------------------------------------------------------------
# 4. an sdist with a C extension: only the image may build it


CEXT_FILES = {
    "setup.py": """
        from setuptools import Extension, setup

        setup(
            name="hlcext",
            version="0.1.0",
            packages=["hlcext"],
            package_dir={"": "src"},
            ext_modules=[Extension("hlcext._speed", ["src/hlcext/_speed.c"])],
        )
    """,
    "src/hlcext/__init__.py": """
        from ._speed import triple
    """,
    "src/hlcext/_speed.c": """
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>

        static PyObject *triple(PyObject *self, PyObject *arg) {
            long value = PyLong_AsLong(arg);
            if (value == -1 && PyErr_Occurred()) return NULL;
            return PyLong_FromLong(value * 3);
        }

        static PyMethodDef methods[] = {{"triple", triple, METH_O, NULL}, {NULL, NULL, 0, NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};

        PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
    """,
}
CEXT_HANDLER = """
    import hlcext
    import hlcext._speed


    def handler(event, context):
        return {"ok": True, "tripled": hlcext.triple(event.get("n", 14)), "compiled": hlcext._speed.__file__}
"""
CEXT_SO = "python/hlcext/_speed.cpython-311-x86_64-linux-gnu.so"


@pytest.fixture(scope="module")
def compiler_image(docker_engine) -> str:
    """The stand-in image with gcc and Python's headers: neither the Lambda image nor the stand-in has them."""
    try:
        return ensure_compiler_image(docker_engine.client, docker_engine.image)
    except Exception as exc:  # noqa: BLE001
        message = f"cannot add a compiler to {docker_engine.image}: {exc}"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def cext_build(tmp_path_factory, docker_engine, cache, compiler_image):
    """A project whose one dependency is a path-source sdist with a C extension, built with "auto"."""
    base = tmp_path_factory.mktemp("cext")
    sdist = setuptools_sdist(base, "hlcext", CEXT_FILES)
    project = app_with_sdists(base, "cext-app", {"hlcext": sdist}, CEXT_HANDLER)
    use_docker(project, "auto", image_template(compiler_image))
    return docker_build(project, docker_engine, cache)


def test_auto_builds_a_c_extension_sdist_in_the_image(cext_build, compiler_image, tmp_path):
    assert f"building in {compiler_image}: hlcext==0.1.0" in cext_build.output
    assert f"hlcext 0.1.0: sdist built in {compiler_image}" in cext_build.output
    layer = cext_build.out("layer.zip")
    assert CEXT_SO in zip_files(layer)
    extract(layer, tmp_path / "layer")
    machine, glibc = read_elf(tmp_path / "layer" / CEXT_SO)
    assert machine == "EM_X86_64"
    assert glibc is None or glibc <= (2, 26)  # also enforced by the build's own audit
    section = manifest(cext_build.out())["targets"][LAYER]
    assert section["distributions"] == [
        {"name": "hlcext", "version": "0.1.0", "source": "path", "file": "hlcext-0.1.0.tar.gz"}
    ]
    root = lambda_root(tmp_path / "lambda", "3.11", layer=layer, function=cext_build.out("cext-app.zip"))
    run = invoke(root, "cext_app.handler", {"n": 14})
    assert run.result["tripled"] == 42
    assert run.result["compiled"] == str(root.opt / CEXT_SO)


def test_auto_without_docker_refuses_a_c_extension_sdist(cext_build, docker_engine, cache, tmp_path):
    where = unreachable(tmp_path)
    failed = refused_without_changes(
        lambda: docker_build(cext_build.project, docker_engine, cache, docker_host=where, check=False), cext_build
    )
    assert_failed_cleanly(
        failed,
        "hlcext==0.1.0",
        f"Docker is not reachable at {where}",
        "not pure Python",
        "start Docker",
        "pin it to a release with a wheel for manylinux_2_26_x86_64",
    )


# --------------------------------------------------------------------------
# 5. errors: a clear message, no traceback, the previous artifacts untouched


BROKEN_FILES = {
    "setup.py": """
        import sys

        from setuptools import setup

        if "bdist_wheel" in sys.argv:
            sys.exit("hlbroken: this sdist refuses to become a wheel")
        setup(name="hlbroken", version="0.1.0", py_modules=["hlbroken"])
    """,
    "hlbroken.py": """
        VALUE = 1
    """,
}
BROKEN_HANDLER = """
    import six


    def handler(event, context):
        return {"ok": True, "six": six.__name__}
"""


@pytest.fixture(scope="module")
def broken_app(tmp_path_factory):
    """A project depending on six and on a pure Python sdist whose wheel build fails."""
    base = tmp_path_factory.mktemp("broken")
    sdist = setuptools_sdist(base, "hlbroken", BROKEN_FILES)
    return app_with_sdists(base, "broken-app", {"hlbroken": sdist}, BROKEN_HANDLER, requires=("six",))


def native_built_with_wheels(tmp_path: Path, cache: Path, **keys):
    """A copy of native-app built with installer = "wheels": the artifacts a failed build must keep."""
    project = copy_fixture("native-app", tmp_path)
    configure(project, installer="wheels", **keys)
    return hatchling_build(project, LAYER, cache=cache)


def test_docker_installer_without_docker(tmp_path, docker_engine, cache, image):
    build = native_built_with_wheels(tmp_path, cache)
    use_docker(build.project, "docker", image)
    where = unreachable(tmp_path)
    failed = refused_without_changes(
        lambda: docker_build(build.project, docker_engine, cache, docker_host=where, check=False), build
    )
    assert_failed_cleanly(
        failed, f"Docker is not reachable at {where}", "start the Docker engine", "DOCKER_HOST", 'installer = "wheels"'
    )


def test_absent_image_that_cannot_be_pulled(tmp_path, docker_engine, cache):
    build = native_built_with_wheels(tmp_path, cache)
    use_docker(build.project, "docker", "hatch-lambda-test/absent:1")
    failed = refused_without_changes(lambda: docker_build(build.project, docker_engine, cache, check=False), build)
    assert_failed_cleanly(
        failed,
        "pulling hatch-lambda-test/absent:1 for linux/amd64",
        "the image hatch-lambda-test/absent:1 is not on the Docker engine and pulling it failed",
        "pull it yourself",
        "set `image`",
    )


def test_absent_image_pinned_by_digest_is_pulled_by_that_digest(tmp_path, docker_engine, cache):
    digest = "sha256:" + "0" * 64
    build = native_built_with_wheels(tmp_path, cache)
    use_docker(build.project, "docker", f"hatch-lambda-test/absent@{digest}")
    failed = refused_without_changes(lambda: docker_build(build.project, docker_engine, cache, check=False), build)
    assert_failed_cleanly(failed, f"the image hatch-lambda-test/absent@{digest} is not on the Docker engine")
    # The engine was asked for the digest (the error quotes the request), not for a tag made of its hex.
    assert "sha256%3A" + "0" * 64 in failed.output, failed.output


def test_arm64_target_with_an_amd64_only_image(tmp_path, docker_engine, cache, image):
    build = native_built_with_wheels(tmp_path, cache, arch="arm64")
    use_docker(build.project, "docker", image)
    failed = refused_without_changes(lambda: docker_build(build.project, docker_engine, cache, check=False), build)
    assert_failed_cleanly(
        failed,
        f"the image {docker_engine.image} cannot run for linux/arm64 on this Docker engine",
        "use an image of that platform",
    )


def test_pip_failure_in_the_container(tmp_path, broken_app, docker_engine, cache, image):
    project = tmp_path / "broken-app"
    shutil.copytree(broken_app, project)
    cache = fresh_cache(cache, tmp_path / "cache")  # the downloads, but no pack: six is installed in the image
    # First without the broken package: six alone installs fine in the image...
    use_docker(project, "docker", image, exclude_packages=["hlbroken"])
    build = docker_build(project, docker_engine, cache)
    assert f"installing 1 distributions in {docker_engine.image}" in build.output
    # ...then with it: its wheel build fails inside the container.
    configure(project, exclude_packages=None)
    failed = refused_without_changes(lambda: docker_build(project, docker_engine, cache, check=False), build)
    assert_failed_cleanly(
        failed,
        f"pip failed in {docker_engine.image} (exit 1) while building hlbroken==0.1.0",
        "hlbroken: this sdist refuses to become a wheel",  # pip's last lines
        "Failed to build hlbroken",
    )


def test_auto_without_docker_shows_why_the_host_build_failed(tmp_path, broken_app, docker_engine, cache, image):
    """A pure Python sdist whose build fails is not reported as "not pure Python"."""
    project = tmp_path / "broken-app"
    shutil.copytree(broken_app, project)
    use_docker(project, "auto", image)
    where = unreachable(tmp_path)
    failed = docker_build(project, docker_engine, cache, docker_host=where, check=False)
    assert_failed_cleanly(
        failed,
        "hlbroken==0.1.0",
        f"Docker is not reachable at {where}",
        "building a wheel of hlbroken==0.1.0 (sdist) failed",
        "hlbroken: this sdist refuses to become a wheel",
    )
    assert "not pure Python" not in failed.output.replace("into a pure Python wheel", "")


# --------------------------------------------------------------------------
# 6. containers are removed; what they write belongs to the user


def test_no_container_is_left_and_files_belong_to_the_user(tmp_path, docker_engine, cache, image):
    project = copy_fixture("sdist-app", tmp_path)
    use_docker(project, "docker", image)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # docker_build also checks that the engine has no container left, created or exited
    build = docker_build(project, docker_engine, cache, env={"TMPDIR": str(scratch)})
    assert "docopt 0.6.2: sdist built in" in build.output
    assert docker_engine.client.containers.list(all=True) == []
    # the staging trees the containers wrote into were removed, so they were the user's to remove
    assert list(scratch.iterdir()) == []
    assert scratch_left(build) == []
    written = [build.out(), *build.out().rglob("*")]
    assert {(p.name, p.stat().st_uid, p.stat().st_gid) for p in written} == {
        (p.name, os.getuid(), os.getgid()) for p in written
    }
    assert sorted(p.name for p in build.out().iterdir()) == ["layer.zip", "manifest.json", "sdist-app.zip"]
