"""Precompiled bytecode (``bytecode = "compile"``, ``"only"``, ``"off"``): what the zips hold, and that it loads.

Builds run in a subprocess (``python -m hatchling build``) on small local
projects whose dependency is a wheel written here; the unzipped layer is
imported by a fresh ``pythonX.Y -B -I -S`` of the target's version, the way
Lambda's read-only ``/opt`` is: nothing can be written, so only ``.pyc`` files
the build shipped are read. The search for a compiler is tested by running it
in a subprocess whose PATH and pyenv root hold only what the test puts there;
with nothing there, a build run by a virtual environment of another Python
version has the Lambda stand-in image's Python compile (through the test's
Docker engine), and the image imports what it compiled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from hatch_lambda.packs.pack import PackSpec, pack_key
from hatch_lambda.runtime.interpreters import Compiler, find_python

from helpers.builds import assert_failed_cleanly, build_env, digests, extract, hatchling_build, manifest
from helpers.dockerutil import docker_build, image_template, in_ci, use_docker
from helpers.projects import (
    LAYER,
    NATIVE_EXPECTED,
    OUT,
    ROOT,
    configure,
    copy_fixture,
    local_project,
    make_wheel,
    run_cli,
    uv_command,
)

PYTHON = "3.12"
RUNNING = "%d.%d" % sys.version_info[:2]
#: A dependency whose code has a constant set (its order in the .pyc depends on the hash seed), a
#: subpackage, a module whose source is not valid Python 3, and a stale .pyc the wheel shipped.
DEPENDENCY = {
    "bcdep/__init__.py": b'KINDS = {"alpha", "beta", "gamma", "delta"}\nSOURCE = "compiled"\n'
                         b'def kind(name):\n    return name in {"alpha", "beta", "gamma"}\n',
    "bcdep/sub/__init__.py": b"",
    "bcdep/sub/deep.py": b"def fail():\n    raise ValueError('from deep')\n",
    "bcdep/legacy.py": b"print 'python 2'\n",
    "bcdep/__pycache__/__init__.cpython-312.pyc": b"stale bytes from the wheel",
    "bcdep/data/not-a-module.py": b"# a file read as data, never imported\n",
}
FLAGS_UNCHECKED_HASH = 0b01


def _python(version: str) -> str:
    found = find_python(version)
    if found is None:
        pytest.skip(f"no CPython {version} on this machine")
    return found.executable


def _project(tmp_path: Path, **layer: object) -> Path:
    project = tmp_path / "bcapp"
    make_wheel(project / "wheels", "bcdep", "1.0", DEPENDENCY)
    local_project(project, "bcapp", {"bcdep": "wheels/bcdep-1.0-py3-none-any.whl"}, python=PYTHON, layer={
        "functions": {"api": {"handler": "bcapp.handler.handler", "packages": ["src/bcapp"]}}, **layer})
    return project


def _unzip(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into


def _pyc_flags(data: bytes) -> int:
    return int.from_bytes(data[4:8], "little")


def _import(python: str, paths: list[Path], code: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh ``python -B -I -S`` with ``paths`` first on sys.path."""
    script = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n{code}"
    return subprocess.run([python, "-B", "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120)


@pytest.mark.network
@pytest.mark.parametrize("mode", ["compile", "only"])
def test_every_pyc_of_a_layer_is_unchecked_hash_and_loads(tmp_path, cache, mode):
    python = _python(PYTHON)
    project = _project(tmp_path, **{"bytecode": mode, "smoke-import": True})
    build = hatchling_build(project, LAYER, cache=cache)
    assert f"bytecode ({mode}): compiled by CPython {PYTHON}." in build.output
    assert "smoke import: 1 top-level modules imported" in build.output
    release = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip()
    section = manifest(project / OUT)["targets"][LAYER]
    assert section["bytecode"] == {"mode": mode, "compiler": release}

    layer = zipfile.ZipFile(build.out("layer.zip"))
    names = set(layer.namelist())
    pycs = sorted(n for n in names if n.endswith(".pyc"))
    assert pycs, names
    assert all(_pyc_flags(layer.read(n)) == FLAGS_UNCHECKED_HASH for n in pycs), pycs
    assert layer.read(pycs[0])[:4] == subprocess.run(
        [python, "-c", "import importlib.util, sys; sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"],
        capture_output=True).stdout
    # the stale .pyc the wheel shipped is gone; what does not compile, or is not importable, stays as source
    assert "python/bcdep/legacy.py" in names and not any("legacy" in n for n in pycs)
    assert "python/bcdep/data/not-a-module.py" in names and not any("not-a-module" in n for n in pycs)
    if mode == "compile":
        assert {"python/bcdep/__pycache__/__init__.cpython-312.pyc", "python/bcdep/sub/__pycache__/deep.cpython-312.pyc",
                "python/bcdep/__init__.py", "python/bcdep/sub/deep.py"} <= names
        assert layer.read("python/bcdep/__pycache__/__init__.cpython-312.pyc") != DEPENDENCY[
            "bcdep/__pycache__/__init__.cpython-312.pyc"]
    else:
        assert {"python/bcdep/__init__.pyc", "python/bcdep/sub/deep.pyc"} <= names
        assert not {"python/bcdep/__init__.py", "python/bcdep/sub/deep.py"} & names
        assert not any("__pycache__" in n for n in names)

    opt = _unzip(build.out("layer.zip"), tmp_path / "opt")
    if mode == "compile":
        # An unchecked-hash .pyc is loaded without reading the source: a changed source is not seen.
        (opt / "python" / "bcdep" / "__init__.py").write_text('SOURCE = "source"\n')
    loaded = _import(python, [opt / "python"], (
        "import bcdep, bcdep.sub.deep, traceback\n"
        "print(bcdep.SOURCE, bcdep.kind('beta'), bcdep.__spec__.loader.__class__.__name__)\n"
        "try:\n    bcdep.sub.deep.fail()\n"
        "except ValueError as exc:\n    print(exc.__traceback__.tb_next.tb_frame.f_code.co_filename)\n"))
    assert loaded.returncode == 0, loaded.stderr
    lines = loaded.stdout.split()
    loader = "SourceFileLoader" if mode == "compile" else "SourcelessFileLoader"
    assert lines[:3] == ["compiled", "True", loader]
    # compile: the import system gives the code the source's real path; only: the path inside site-packages
    expected = str(opt / "python" / "bcdep" / "sub" / "deep.py") if mode == "compile" else "bcdep/sub/deep.py"
    assert lines[3] == expected

    # the function's own code is compiled too, and its handler proven from it
    code = zipfile.ZipFile(build.out("api.zip")).namelist()
    own = "bcapp/__pycache__/handler.cpython-312.pyc" if mode == "compile" else "bcapp/handler.pyc"
    assert own in code
    assert ("bcapp/handler.py" in code) == (mode == "compile")
    assert section["functions"]["api"]["handler_check"] == "imported"
    task = _unzip(build.out("api.zip"), tmp_path / "task")
    called = _import(python, [task, opt / "python"], "import bcapp.handler; print(bcapp.handler.handler({}, None))")
    assert called.returncode == 0 and called.stdout.strip() == "{'ok': True}", called.stderr

    # hatch-lambda verify imports from the .pyc files as well
    verified = run_cli("verify", build.out("layer.zip"), "--runner", "host")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.network
def test_bytecode_off_ships_none(tmp_path, cache):
    project = _project(tmp_path, bytecode="off")
    build = hatchling_build(project, LAYER, cache=cache)
    names = zipfile.ZipFile(build.out("layer.zip")).namelist()
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert "compiled by" not in build.output
    assert manifest(project / OUT)["targets"][LAYER]["bytecode"] == {"mode": "off", "compiler": None}


@pytest.mark.network
def test_two_clean_builds_give_the_same_bytes(tmp_path, cache):
    _python(PYTHON)
    runs = []
    for number in range(2):
        project = copy_fixture("native-app", tmp_path / f"run{number}")
        configure(project, python=PYTHON, bytecode="compile")
        relock = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=600)
        assert relock.returncode == 0, relock.stderr
        build = hatchling_build(project, LAYER, cache=cache, args=["-c"])
        runs.append(digests(project / OUT))
        with zipfile.ZipFile(build.out("layer.zip")) as layer:
            assert sum(name.endswith(".pyc") for name in layer.namelist()) > 20
    assert runs[0] == runs[1]


def _bare_environment(tmp_path: Path) -> dict[str, str | None]:
    """PATH with uv and nothing else, an empty pyenv root, no uv-managed Pythons, a home without any, and no
    virtual environment (uv finds the one ``VIRTUAL_ENV`` or ``CONDA_PREFIX`` names); None: unset."""
    bin_dir, empty = tmp_path / "bin", tmp_path / "empty"
    bin_dir.mkdir()
    empty.mkdir()
    # uv's own executable, never a pyenv shim: the shim runs uv with pyenv's Pythons first on PATH
    (bin_dir / "uv").symlink_to(find_uv_bin())
    return {"PATH": str(bin_dir), "PYENV_ROOT": str(empty), "UV_PYTHON_INSTALL_DIR": str(empty),
            "HOME": str(tmp_path), "VIRTUAL_ENV": None, "CONDA_PREFIX": None, "UV_PYTHON": None}


def _environ(env: dict[str, str | None]) -> dict[str, str]:
    """This process's environment with ``env`` on top (None: unset)."""
    return {name: value for name, value in {**os.environ, **env}.items() if value is not None}


@pytest.mark.network
def test_without_a_compiler_the_default_warns_once_and_an_explicit_bytecode_is_an_error(tmp_path, cache):
    absent = "3.12" if RUNNING == "3.13" else "3.13"  # never the version of the build's own interpreter
    project = tmp_path / "bcapp"
    make_wheel(project / "wheels", "bcdep", "1.0", DEPENDENCY)
    local_project(project, "bcapp", {"bcdep": "wheels/bcdep-1.0-py3-none-any.whl"}, python=absent)
    env = _bare_environment(tmp_path)
    build = hatchling_build(project, LAYER, cache=cache, env=env)
    warning = f"warning: no CPython {absent} found to compile bytecode"
    assert build.output.count(warning) == 1, build.output
    assert f"`uv python install {absent}`" in build.output
    names = zipfile.ZipFile(build.out("layer.zip")).namelist()
    assert not [n for n in names if n.endswith(".pyc")]
    assert manifest(project / OUT)["targets"][LAYER]["bytecode"] == {"mode": "off", "compiler": None}
    before = digests(project / OUT)

    configure(project, bytecode="only")
    failed = hatchling_build(project, LAYER, cache=cache, env=env, check=False)
    assert_failed_cleanly(
        failed, f'bytecode = "only" in [tool.hatch.build.targets.lambda-layer] of pyproject.toml needs a CPython '
                f"{absent} to compile the .pyc files, but none was found",
        f"`uv python install {absent}`", 'set bytecode = "off"')
    assert digests(project / OUT) == before  # the earlier artifacts are untouched


def _find(version: str, env: dict[str, str | None], python: str = sys.executable, cwd: Path | None = None
          ) -> dict | None:
    """find_python(version) run by ``python`` in a subprocess with ``env`` in ``cwd`` (`uv python find` looks
    for a ``.venv`` there and above), as (executable, release) or None."""
    script = ("import dataclasses, json, sys; from hatch_lambda.runtime.interpreters import find_python; "
              "found = find_python(sys.argv[1]); print(json.dumps(found and dataclasses.asdict(found)))")
    result = subprocess.run([python, "-c", script, version], capture_output=True, text=True,
                            env=_environ(env), cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_compiler_is_found_on_path_under_pyenv_and_as_the_running_interpreter(tmp_path):
    other = "3.12" if RUNNING != "3.12" else "3.13"
    real = _python(other)
    env = _bare_environment(tmp_path)
    assert _find(other, env) is None
    # pythonX.Y on PATH
    (tmp_path / "bin" / f"python{other}").symlink_to(real)
    found = _find(other, env)
    assert found is not None and found["python"] == other and found["release"].startswith(other + ".")
    (tmp_path / "bin" / f"python{other}").unlink()
    # $(pyenv root)/versions/X.Y*/bin/pythonX.Y
    versions = tmp_path / "pyenv" / "versions" / f"{other}.99" / "bin"
    versions.mkdir(parents=True)
    (versions / f"python{other}").symlink_to(real)
    found = _find(other, {**env, "PYENV_ROOT": str(tmp_path / "pyenv")})
    assert found is not None and found["python"] == other
    # the interpreter running the build, before anything on PATH
    assert _find(RUNNING, env)["executable"] == _find(RUNNING, {})["executable"] == sys.executable


# --------------------------------------------------------------------------
# No CPython of the target's version on this machine: the Lambda image's compiles (through Docker)

IMAGE_PYTHON = "3.11"  # the stand-in image's (tests/helpers/engine.py)
IMAGE_PROBE = "import importlib.util, platform; print(platform.python_version(), importlib.util.MAGIC_NUMBER.hex())"
#: Imports every module named in argv[1] from the read-only /var/task and /opt, then calls native-app's handler.
IMAGE_IMPORT = r"""
import importlib, json, sys
sys.path[:0] = ["/var/task", "/opt/python"]
loaded = {}
for name in json.loads(sys.argv[1]):
    module = importlib.import_module(name)
    loaded[name] = [type(module.__spec__.loader).__name__, module.__file__]
from native_app.handler import handler
print(json.dumps({"loaded": loaded, "result": handler({}, None)}))
"""
#: What each source of a "compile" build is replaced by before the import: reading one fails it.
POISON = b"raise RuntimeError('the source was read, not its .pyc')\n"


@pytest.fixture(scope="session")
def other_python(tmp_path_factory) -> str:
    """The python of a virtual environment made from a CPython that is not 3.11 (3.13, else 3.12), with this
    checkout installed (``pip install -e``): a build it runs cannot compile 3.11 bytecode with itself."""
    found = next(filter(None, (find_python(version) for version in ("3.13", "3.12"))), None)
    if found is None:
        message = "no CPython 3.13 or 3.12 on this machine to run a build that finds no CPython 3.11"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    venv = tmp_path_factory.mktemp(f"venv-{found.python}") / "venv"
    subprocess.run([found.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "-e", str(ROOT)], capture_output=True,
                               text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def _module(name: str, prefix: str = "") -> str:
    """The module a .pyc holds: ``python/yaml/__pycache__/nodes.cpython-311.pyc`` or ``python/yaml/nodes.pyc``
    (``prefix`` "python/") -> ``yaml.nodes``."""
    head, cached, tail = name[len(prefix):].rpartition("__pycache__/")
    path = head + tail.split(".")[0] if cached else tail[:-len(".pyc")]
    parts = path.split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _image_pycs(path: Path, magic: bytes, mode: str) -> list[str]:
    """The .pyc files of a zip, each checked: the image's magic number, unchecked-hash, where ``mode`` puts it,
    and beside its source (``compile``) or in its place (``only``)."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        headers = {name: archive.read(name)[:8] for name in names if name.endswith(".pyc")}
    assert headers, names
    assert {name: (header[:4], _pyc_flags(header)) for name, header in headers.items()} == {
        name: (magic, FLAGS_UNCHECKED_HASH) for name in headers}
    for name in headers:
        if mode == "compile":
            head, _, tail = name.rpartition("__pycache__/")
            assert tail.endswith(f".cpython-{IMAGE_PYTHON.replace('.', '')}.pyc"), name
            assert head + tail.split(".")[0] + ".py" in names, name
        else:
            assert "__pycache__" not in name and name[:-1] not in names, name
    if mode == "only":
        assert not [name for name in names if name.endswith(".py")], names
    return sorted(headers)


def _import_in_image(engine, opt: Path, task: Path, modules: list[str]) -> dict:
    """IMAGE_IMPORT run by the image's ``python3.11 -B -I -S``: the unzipped layer at /opt and the function at
    /var/task, both read-only (as on Lambda: no bytecode can be written), no network."""
    output = engine.client.containers.run(
        engine.image, command=["-B", "-I", "-S", "-c", IMAGE_IMPORT, json.dumps(modules)],
        entrypoint=[f"/var/lang/bin/python{IMAGE_PYTHON}"], network_disabled=True, remove=True,
        volumes={str(opt): {"bind": "/opt", "mode": "ro"}, str(task): {"bind": "/var/task", "mode": "ro"}},
        stdout=True, stderr=False)
    return json.loads(output)


@pytest.mark.docker
@pytest.mark.network
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the stand-in image is linux/amd64")
def test_without_a_cpython_of_the_target_version_the_lambda_image_compiles(tmp_path, docker_engine, cache,
                                                                             other_python):
    env = _bare_environment(tmp_path)
    # Nowhere the search looks is there a CPython 3.11: not the build's interpreter, PATH, uv's or pyenv's
    # Pythons, nor what `uv python find` finds.
    assert _find(IMAGE_PYTHON, env, other_python, cwd=tmp_path) is None  # where the builds run (below)
    uv_find = subprocess.run([find_uv_bin(), "python", "find", "--no-project", IMAGE_PYTHON], cwd=tmp_path,
                             env=_environ(env), capture_output=True, text=True, timeout=120)
    assert uv_find.returncode != 0, uv_find.stdout
    probe = docker_engine.client.containers.run(
        docker_engine.image, command=["-I", "-c", IMAGE_PROBE], entrypoint=[f"/var/lang/bin/python{IMAGE_PYTHON}"],
        network_disabled=True, remove=True).decode()
    release, magic = probe.split()[0], bytes.fromhex(probe.split()[1])
    image = image_template(docker_engine.image)
    functions = {"native-app": {"handler": "native_app.handler.handler"}}

    # installer = "docker", bytecode = "compile" (the default): two clean builds, in two copies
    builds = []
    for number in range(2):
        project = copy_fixture("native-app", tmp_path / f"run{number}")
        use_docker(project, "docker", image, functions=functions)
        builds.append(docker_build(project, docker_engine, cache, env=env, args=("-c",), python=other_python))
    build = builds[0]
    assert f"bytecode (compile): compiled by CPython {release} (in {docker_engine.image})" in build.output
    assert f"installing 3 distributions in {docker_engine.image}" in build.output
    assert f"handler native_app.handler.handler of native-app: imported in {docker_engine.image}" in build.output
    section = manifest(build.out())["targets"][LAYER]
    assert section["bytecode"] == {"mode": "compile", "compiler": release}
    assert digests(builds[0].out()) == digests(builds[1].out())
    layer = _image_pycs(build.out("layer.zip"), magic, "compile")
    own = _image_pycs(build.out("native-app.zip"), magic, "compile")
    assert len(layer) > 20 and "native_app/__pycache__/handler.cpython-311.pyc" in own
    # every source is still there but poisoned: only the .pyc files can make the imports work
    opt = extract(build.out("layer.zip"), tmp_path / "compile" / "opt")
    task = extract(build.out("native-app.zip"), tmp_path / "compile" / "task")
    for root, names in ((opt, layer), (task, own)):
        for name in names:
            head, _, tail = name.rpartition("__pycache__/")
            (root / (head + tail.split(".")[0] + ".py")).write_bytes(POISON)
    modules = [_module(name, "python/") for name in layer] + [_module(name) for name in own]
    ran = _import_in_image(docker_engine, opt, task, modules)
    assert ran["result"] == NATIVE_EXPECTED
    assert {name: loader for name, (loader, _) in ran["loaded"].items()} == dict.fromkeys(modules, "SourceFileLoader")

    # installer = "auto" (the wheels unpacked here), bytecode = "only": no sources at all
    project = copy_fixture("native-app", tmp_path / "only")
    use_docker(project, "auto", image, bytecode="only", smoke_import=True, functions=functions)
    only = docker_build(project, docker_engine, cache, env=env, python=other_python)
    assert f"bytecode (only): compiled by CPython {release} (in {docker_engine.image})" in only.output
    assert f"installing 3 distributions in {docker_engine.image}" not in only.output
    assert f"imported with python{IMAGE_PYTHON} in {docker_engine.image}" in only.output  # the smoke import
    assert manifest(only.out())["targets"][LAYER]["bytecode"] == {"mode": "only", "compiler": release}
    layer = _image_pycs(only.out("layer.zip"), magic, "only")
    own = _image_pycs(only.out("native-app.zip"), magic, "only")
    assert len(layer) > 20 and "native_app/handler.pyc" in own
    opt = extract(only.out("layer.zip"), tmp_path / "only-run" / "opt")
    task = extract(only.out("native-app.zip"), tmp_path / "only-run" / "task")
    modules = [_module(name, "python/") for name in layer] + [_module(name) for name in own]
    ran = _import_in_image(docker_engine, opt, task, modules)
    assert ran["result"] == NATIVE_EXPECTED
    assert {name: loader for name, (loader, _) in ran["loaded"].items()} == dict.fromkeys(
        modules, "SourcelessFileLoader")


def test_the_pack_key_changes_with_the_compiler_release():
    spec = PackSpec("3.12", "x86_64", True, (), (), 6)
    older = PackSpec("3.12", "x86_64", True, (), (), 6, True, "compile", Compiler("3.12.1", executable="/x/python3.12"))
    newer = PackSpec("3.12", "x86_64", True, (), (), 6, True, "compile", Compiler("3.12.8", executable="/x/python3.12"))
    moved = PackSpec("3.12", "x86_64", True, (), (), 6, True, "compile", Compiler("3.12.8", executable="/y/python3.12"))
    only = PackSpec("3.12", "x86_64", True, (), (), 6, True, "only", Compiler("3.12.8", executable="/y/python3.12"))
    keys = {name: pack_key(s, "0" * 64, "bcdep-1.0-py3-none-any.whl") for name, s in
            (("off", spec), ("older", older), ("newer", newer), ("moved", moved), ("only", only))}
    assert len({keys["off"], keys["older"], keys["newer"], keys["only"]}) == 4
    assert keys["newer"] == keys["moved"]  # where the compiler is does not change the bytes


#: A PEP 517 backend that writes a pure wheel tagged, and holding a module naming, the Python that built it.
VERSIONED_BACKEND = b'''
import base64, hashlib, os, sys, zipfile

def _python():
    return "%d.%d" % sys.version_info[:2]

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    tag = "py" + _python().replace(".", "") + "-none-any"
    files = {
        "verdep/__init__.py": ("BUILT_BY = %r\\n" % _python()).encode(),
        "verdep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: verdep\\nVersion: 1.0\\n",
        "verdep-1.0.dist-info/WHEEL": ("Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: %s\\n"
                                       % tag).encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append("verdep-1.0.dist-info/RECORD,,")
    files["verdep-1.0.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = "verdep-1.0-%s.whl" % tag
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return name
'''


def _versioned_sdist(directory: Path) -> Path:
    files = {
        "pyproject.toml": b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
                          b'[project]\nname = "verdep"\nversion = "1.0"\n',
        "backend.py": VERSIONED_BACKEND,
        "PKG-INFO": b"Metadata-Version: 2.1\nName: verdep\nVersion: 1.0\n",
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "verdep-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"verdep-1.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.network
def test_an_sdist_is_built_by_a_cpython_of_the_target_version(tmp_path, cache):
    other = "3.12" if RUNNING != "3.12" else "3.13"  # not the version of the build's own interpreter
    _python(other)
    project = tmp_path / "verapp"
    _versioned_sdist(project / "vendor")
    local_project(project, "verapp", {"verdep": "vendor/verdep-1.0.tar.gz"}, python=other,
                  layer={"installer": "wheels"})
    build = hatchling_build(project, LAYER, cache=cache)
    assert f"building verdep==1.0 (sdist) into a wheel with python{other}" in build.output
    with zipfile.ZipFile(build.out("layer.zip")) as layer:
        assert layer.read("python/verdep/__init__.py") == f"BUILT_BY = {other!r}\n".encode()
    # cached under the sdist's digest and a digest naming the Python that built it
    variant = hashlib.sha256(f"\0python{other}".encode()).hexdigest()[:16]
    assert list(cache.glob(f"built/*/*-{variant}/verdep-1.0-py{other.replace('.', '')}-none-any.whl"))


#: A module that takes the image's python seconds to compile: the window to interrupt the build in.
SLOW_MODULE = "".join(f"v{i} = {{'k{i}': [{i}, {i} + 1, 's{i}']}}\n" for i in range(150_000)).encode()


def _compiling(client, name: str) -> bool:
    """A container runs the bytecode compiler on the tree that holds the package ``name``."""
    for container in client.containers.list(sparse=True):  # sparse: no inspection of one that has just gone
        for mount in container.attrs.get("Mounts") or []:
            if mount.get("Destination") == "/hatch-lambda/tree" and (Path(mount["Source"]) / name).is_dir():
                return True
    return False


@pytest.mark.docker
@pytest.mark.network
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the stand-in image is linux/amd64")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="packs are built in worker processes from two cores on")
def test_a_build_interrupted_while_the_image_compiles_leaves_no_container(tmp_path, docker_engine, cache,
                                                                           other_python):
    """Ctrl-C kills the pack workers: the containers they had compiling go with them."""
    project = tmp_path / "slowapp"
    make_wheel(project / "wheels", "slowdep", "1.0", {"slowdep/__init__.py": SLOW_MODULE})
    make_wheel(project / "wheels", "bcdep", "1.0", DEPENDENCY)
    local_project(project, "slowapp", {"slowdep": "wheels/slowdep-1.0-py3-none-any.whl",
                                       "bcdep": "wheels/bcdep-1.0-py3-none-any.whl"}, python=IMAGE_PYTHON,
                  layer={"installer": "auto", "image": image_template(docker_engine.image), "docker-network": "host"})
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = build_env(cache, {**_bare_environment(tmp_path), "DOCKER_HOST": docker_engine.base_url,
                            "TMPDIR": str(temporary)})
    process = subprocess.Popen([other_python, "-m", "hatchling", "build", "-t", LAYER], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    client = docker_engine.client
    try:
        deadline = time.monotonic() + 300
        while not _compiling(client, "slowdep"):
            assert process.poll() is None, f"the build ended before compiling slowdep:\n{process.stdout.read()}"
            assert time.monotonic() < deadline, "the build never compiled slowdep in the image"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 130, output
        assert "compiled by CPython 3.11" in output and "interrupted; the previous artifacts are untouched" in output
        assert "Traceback" not in output, output
        left = client.containers.list(all=True)
        assert left == [], [(c.short_id, c.status, c.attrs.get("Mounts")) for c in left]
        # nor a directory the killed workers were compiling in
        assert list(temporary.iterdir()) == []
        assert not (project / OUT).exists() or list((project / OUT).iterdir()) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for container in client.containers.list(all=True):  # none of this session's other tests leaves one
            container.remove(force=True)
