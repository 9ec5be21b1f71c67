"""Refused builds: a clear message, no traceback, and the previous artifacts left alone.

Every end-to-end case starts from a project that was built successfully; the
config (or the lock, or a dependency) is then broken and the build run again.
It must exit non-zero with a message naming the key and table (or the file or
package) and the fix, print no Python traceback, and leave every byte of the
output directory as it was.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import platform
import re
import shutil
import stat
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.files import fetch_all, fetch_one
from hatch_lambda.lockfile.resolve import Distribution, resolve
from hatch_lambda.lockfile.wheels import LockedFile
from hatch_lambda.packs.unpack import check_wheel_entries
from hatch_lambda.runtime.interpreters import find_python
from hatch_lambda.runtime.target import Target

from helpers.builds import digests, hatchling_build, manifest, rebuild_fails
from helpers.projects import (
    FAT,
    LAYER,
    OUT,
    ROOT,
    configure,
    copy_fixture,
    edit_pyproject,
    local_project,
    make_wheel,
    target_table,
)

T_LAYER = "[tool.hatch.build.targets.lambda-layer]"
T_FAT = "[tool.hatch.build.targets.lambda-fat]"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, cache) -> Path:
    """native-app built once, layer and fat."""
    project = copy_fixture("native-app", tmp_path_factory.mktemp("baseline"))
    hatchling_build(project, LAYER, FAT, cache=cache)
    return project


@pytest.fixture
def built(baseline, tmp_path) -> Path:
    """A private copy of the built baseline (project and its artifacts)."""
    project = tmp_path / "native-app"
    shutil.copytree(baseline, project, symlinks=True)
    return project


def sizes(project: Path) -> dict[str, str]:
    """Sizes of the built artifacts in MB, as the size check prints them."""
    data = manifest(project / OUT)["targets"]
    layer = data[LAYER]["artifacts"][0]
    fat = data[FAT]["artifacts"][0]
    assert (layer["file"], fat["file"]) == ("layer.zip", "native-app-fat.zip")
    return {
        "layer_unzipped": f"{layer['unzipped_bytes'] / 2**20:.1f}",
        "layer_zipped": f"{layer['zipped_bytes'] / 2**20:.1f}",
        "fat_unzipped": f"{fat['unzipped_bytes'] / 2**20:.1f}",
    }


def _layer(**keys):
    def change(data):
        table = target_table(data, LAYER)
        for key, value in keys.items():
            table[key.replace("_", "-")] = value

    return change


def _fat(**keys):
    def change(data):
        table = target_table(data, FAT)
        for key, value in keys.items():
            table[key.replace("_", "-")] = value

    return change


def _without_python(requires):
    def change(data):
        target_table(data, LAYER).pop("python")
        data["project"]["requires-python"] = requires

    return change


def _add_dependency(data):
    data["project"]["dependencies"].append("requests>=2.31")


CONFIG_ERRORS = {
    "unknown-key": (
        (LAYER,), _layer(pyton="3.11"),
        ["unknown key 'pyton'", T_LAYER, "fix: valid keys: arch,", "python"],
    ),
    "unknown-key-in-fat-table": (
        (FAT,), _fat(exclude_package=["boto3"]),
        ["unknown key 'exclude-package'", T_FAT, "exclude-packages"],
    ),
    "unknown-key-in-layer-table-breaks-fat-too": (
        (FAT,), _layer(strip_pattern=["*.pyi"]),
        ["unknown key 'strip-pattern'", T_LAYER, "strip-patterns"],
    ),
    "unknown-function-key": (
        (LAYER,), _layer(functions={"native-app": {"modules": ["native_app"]}}),
        ["unknown key 'modules' in functions.native-app", T_LAYER, "valid keys: packages, include, exclude"],
    ),
    "strip-not-a-boolean": (
        (LAYER,), _layer(strip="no"),
        [f"strip in {T_LAYER} of pyproject.toml must be true or false, not 'no'"],
    ),
    "extras-not-a-list": (
        (LAYER,), _layer(extras="http"),
        [f"extras in {T_LAYER} of pyproject.toml must be a list of strings, not 'http'"],
    ),
    "size-not-a-number": (
        (LAYER,), _layer(max_zipped_mb="10"),
        [f"max-zipped-mb in {T_LAYER} of pyproject.toml must be a positive number"],
    ),
    "size-zero": (
        (LAYER,), _layer(max_unzipped_mb=0),
        [f"max-unzipped-mb in {T_LAYER} of pyproject.toml must be a positive number, not 0"],
    ),
    "layout-choice": (
        (LAYER,), _layer(layout="flat"),
        [f"layout in {T_LAYER} of pyproject.toml must be 'python' or 'site-packages', not 'flat'"],
    ),
    "installer-choice": (
        (LAYER,), _layer(installer="pip"),
        ["installer in", "must be 'auto' or 'wheels' or 'docker', not 'pip'"],
    ),
    "fat-exclude-packages-type": (
        (FAT,), _fat(exclude_packages="boto3"),
        [f"exclude-packages in {T_FAT} of pyproject.toml must be a list of strings"],
    ),
    "functions-not-a-table": (
        (LAYER,), _layer(functions=["api"]),
        [f"functions in {T_LAYER} of pyproject.toml must be a table"],
    ),
    "function-named-layer": (
        (LAYER,), _layer(functions={"layer": {"packages": ["src/native_app"]}}),
        ["function name 'layer'", "is not usable: 'layer' names the layer's zip"],
    ),
    "function-selects-nothing": (
        (LAYER,), _layer(functions={"ghost": {"only-include": ["src/ghost"]}}),
        ["function 'ghost' selects no files", "[tool.hatch.build.targets.lambda-layer.functions]"],
    ),
    "python-retired": (
        (LAYER,), _layer(python="3.9"),
        ["python 3.9 is a retired Lambda runtime", f"(from {T_LAYER} of pyproject.toml)", "fix: use one of 3.10"],
    ),
    "python-unknown": (
        (LAYER,), _layer(python="4.0"),
        ["unknown Lambda python version '4.0'", T_LAYER, "fix: use one of"],
    ),
    "python-not-a-string": (
        (LAYER,), _layer(python=3.12),
        [f"python in {T_LAYER} of pyproject.toml must be a string", "not 3.12"],
    ),
    "python-bad-in-fat-table": (
        (FAT,), _fat(python="3.8"),
        ["python 3.8 is a retired Lambda runtime", f"(from {T_FAT} of pyproject.toml)"],
    ),
    "python-outside-requires-python": (
        (LAYER,), _layer(python="3.10"),
        ["python 3.10 (Lambda runs 3.10.14) is outside the project's requires-python '>=3.11'", "uv.lock", "fix: target one of: 3.11"],
    ),
    "requires-python-allows-no-runtime": (
        (LAYER,), _without_python(">=3.15"),
        ["requires-python '>=3.15' allows no Lambda runtime", "fix:", "widen requires-python"],
    ),
    "arch-unknown": (
        (LAYER,), _layer(arch="sparc"),
        ["unknown Lambda arch 'sparc'", f"(from {T_LAYER} of pyproject.toml)", "fix: use 'x86_64' or 'arm64'"],
    ),
    "extra-unknown": (
        (LAYER,), _layer(extras=["nope"]),
        ["native-app has no extra 'nope'", "fix: choose from: none defined", "[project.optional-dependencies]"],
    ),
    "stale-lock": (
        (LAYER, FAT), _add_dependency,
        ["uv.lock is out of date with", "pyproject.toml", "requests", "fix: run `uv lock`"],
    ),
    "layer-over-unzipped-limit": (
        (LAYER,), _layer(max_unzipped_mb=0.5),
        [
            "layer.zip unpacks to {layer_unzipped} MB (limit 0.5 MB)",
            "native-app.zip with layer.zip unpacks to",
            "largest distributions (unzipped):",
            "pyyaml 6.0.4",
            "orjson 3.13.0",
            "markupsafe 3.0.4",
            "fix: leave big packages out with exclude-packages",
            'or set size-check = "warn" to build anyway',
        ],
    ),
    "layer-over-zipped-limit": (
        (LAYER,), _layer(max_zipped_mb=0.1),
        ["layer.zip is {layer_zipped} MB zipped (limit 0.1 MB)", "largest distributions (unzipped):", "pyyaml 6.0.4",
         "raise max-zipped-mb"],
    ),
    "fat-over-limit": (
        (FAT,), _fat(max_unzipped_mb=1),
        ["native-app-fat.zip unpacks to {fat_unzipped} MB (limit 1 MB)", "largest distributions (unzipped):"],
    ),
}


@pytest.mark.network
@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_error_leaves_previous_artifacts(built, cache, case):
    targets, change, needles = CONFIG_ERRORS[case]
    needles = [needle.format(**sizes(built)) for needle in needles]
    edit_pyproject(built, change)
    build = rebuild_fails(built, cache, *targets, needles=needles)
    # one message, said once
    assert build.output.count("hatch-lambda: ") == 1, build.output


@pytest.mark.network
def test_size_table_lists_largest_first(built, cache):
    configure(built, max_unzipped_mb=0.5)
    build = rebuild_fails(built, cache, LAYER)
    table = [line.split() for line in build.output.splitlines() if line.strip().endswith(("6.0.4", "3.13.0", "3.0.4"))]
    assert [row[2] for row in table] == ["pyyaml", "orjson", "markupsafe"], build.output
    sizes = [float(row[0]) for row in table]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.network
def test_missing_and_broken_lock(built, cache):
    lock = built / "uv.lock"
    text = lock.read_text()
    lock.unlink()
    rebuild_fails(built, cache, LAYER, needles=["no uv.lock in", "fix: run `uv lock` in"])
    lock.write_text(text.replace("[[package]]", "[[package]", 1))
    rebuild_fails(built, cache, LAYER, needles=["uv.lock: TOML syntax error", "regenerate it with `uv lock`"])


@pytest.mark.network
def test_size_check_warn_and_off_build_anyway(built, cache):
    configure(built, max_unzipped_mb=0.5, size_check="warn")
    warned = hatchling_build(built, LAYER, cache=cache)
    assert f"warning: layer.zip unpacks to {sizes(built)['layer_unzipped']} MB (limit 0.5 MB)" in warned.output
    assert "largest distributions (unzipped):" in warned.output
    assert "size-check" not in warned.output
    configure(built, size_check="off")
    quiet = hatchling_build(built, LAYER, cache=cache)
    assert "limit 0.5 MB" not in quiet.output
    assert digests(built / OUT)["layer.zip"] == manifest(built / OUT)["targets"][LAYER]["artifacts"][0]["sha256"]


# --------------------------------------------------------------------------
# bad distributions, end to end through local path sources


@pytest.fixture(scope="module")
def aarch64_object(tmp_path_factory, cache) -> bytes:
    """A real aarch64 shared object: orjson's, from its manylinux aarch64 wheel in native-app's lock."""
    resolution = resolve(ROOT / "fixtures" / "native-app", Target("3.11", "arm64"))
    [orjson] = [d for d in resolution.distributions if d.name == "orjson"]
    wheel = fetch_one(orjson, cache, resolution.lock_path.parent)
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".so")]
        return archive.read(name)


@pytest.mark.network
def test_elf_for_the_wrong_cpu_is_refused(tmp_path, cache, aarch64_object):
    project = tmp_path / "elfapp"
    make_wheel(project / "wheels", "fakenative", "1.0", {
        "fakenative/__init__.py": b"from ._native import *\n",
        "fakenative/_native.cpython-311-aarch64-linux-gnu.so": aarch64_object,
    })
    local_project(project, "elfapp", {"fakenative": "wheels/fakenative-1.0-py3-none-any.whl"},
                  layer={"exclude-packages": ["fakenative"]})
    hatchling_build(project, LAYER, cache=cache)
    configure(project, exclude_packages=None)
    rebuild_fails(project, cache, LAYER, needles=[
        "the staged tree does not fit python 3.11 x86_64",
        "    fakenative: fakenative/_native.cpython-311-aarch64-linux-gnu.so: found machine EM_AARCH64, "
        "the runtime allows EM_X86_64 (x86_64); fix: use fakenative's x86_64 wheel",
        'installer = "docker"',
        "fix: follow the fix on each line, or leave the package out (exclude-packages)",
    ])
    # audit = "warn" builds it anyway and says why; the manifest keeps the finding
    configure(project, audit="warn")
    build = hatchling_build(project, LAYER, cache=cache)
    assert "warning: the staged tree does not fit python 3.11 x86_64" in build.output
    audit = manifest(project / OUT)["targets"][LAYER]["audit"]
    assert audit["mode"] == "warn"
    assert [(f["package"], f["found"]) for f in audit["findings"]] == [("fakenative", "machine EM_AARCH64")]
    configure(project, audit=None)
    # for arm64 the same object is right
    configure(project, arch="arm64")
    build = hatchling_build(project, LAYER, cache=cache)
    assert "python/fakenative/_native.cpython-311-aarch64-linux-gnu.so" in zipfile.ZipFile(
        build.out("layer.zip")).namelist()


@pytest.mark.network
def test_wheel_escaping_its_directory_is_refused(tmp_path, cache):
    project = tmp_path / "escapeapp"
    make_wheel(project / "wheels", "escaper", "1.0", {"escaper/__init__.py": b""},
               raw_entries=[(zipfile.ZipInfo("../escaped.py"), b"print('out')\n")])
    local_project(project, "escapeapp", {"escaper": "wheels/escaper-1.0-py3-none-any.whl"},
                  layer={"exclude-packages": ["escaper"]})
    hatchling_build(project, LAYER, cache=cache)
    configure(project, exclude_packages=None)
    rebuild_fails(project, cache, LAYER, needles=[
        "escaper==1.0: escaper-1.0-py3-none-any.whl holds a path outside its install directory: '../escaped.py'",
        "refusing to install it",
        "fix: report it to the escaper maintainers, or leave the package out with exclude-packages",
    ])
    assert not list(tmp_path.rglob("escaped.py"))


C_SOURCE = b"""#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
"""


def c_extension_sdist(directory: Path) -> Path:
    """cfast-1.0.tar.gz: a setuptools project with one C extension module."""
    files = {
        "PKG-INFO": b"Metadata-Version: 2.1\nName: cfast\nVersion: 1.0\n",
        "pyproject.toml": (
            b'[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
            b'[project]\nname = "cfast"\nversion = "1.0"\n'
        ),
        "setup.py": (
            b"from setuptools import Extension, setup\n"
            b"setup(packages=['cfast'], package_dir={'': 'src'},\n"
            b"      ext_modules=[Extension('cfast._speed', ['src/cfast/_speed.c'])])\n"
        ),
        "src/cfast/__init__.py": b"from ._speed import answer\n",
        "src/cfast/_speed.c": C_SOURCE,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cfast-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cfast-1.0/{name}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def built_tag(python: str) -> str:
    """The tag of a wheel built here for a target of ``python``: by a CPython of that version when this machine has
    one, else by whichever Python runs the tests."""
    return f"cp{python.replace('.', '')}" if find_python(python) else f"cp{sys.version_info.major}{sys.version_info.minor}"


@pytest.mark.network
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="needs a C compiler")
def test_sdist_that_builds_a_non_pure_wheel(tmp_path, cache):
    project = tmp_path / "capp"
    c_extension_sdist(project / "vendor")
    local_project(project, "capp", {"cfast": "vendor/cfast-1.0.tar.gz"},
                  layer={"installer": "wheels", "exclude-packages": ["cfast"]})
    hatchling_build(project, LAYER, cache=cache)
    configure(project, exclude_packages=None)
    tag = built_tag("3.11")
    rebuild_fails(project, cache, LAYER, needles=[
        f"cfast==1.0 has only an sdist, and building it here gave cfast-1.0-{tag}-{tag}-linux_"
        f"{platform.machine()}.whl, which is not pure Python",
        'fix: set installer = "docker"',
    ])
    # "auto" would build it in the Lambda image, but there is no Docker engine to do it
    configure(project, installer="auto")
    rebuild_fails(project, cache, LAYER, needles=[
        "cfast==1.0 has only an sdist",
        "must be built in the Lambda image, but Docker is not reachable at unix://",
        "fix: start Docker",
    ])
    # nothing was cached as built for it
    assert not list(cache.glob("built/*/*/cfast-*.whl"))


# --------------------------------------------------------------------------
# wheel entries (unit)


def _dist(name="demo", version="1.0", **file) -> Distribution:
    defaults = {"kind": "wheel", "filename": f"{name}-{version}-py3-none-any.whl"}
    return Distribution(name, version, "registry", "https://pypi.org/simple", LockedFile(**{**defaults, **file}))


def _zip(path: Path, entries) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                archive.writestr(entry, b"target")
            else:
                archive.writestr(entry, b"data")
    return path


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_check_wheel_entries_accepts_a_regular_wheel(tmp_path):
    wheel = _zip(tmp_path / "demo-1.0-py3-none-any.whl", [
        "demo/__init__.py", "demo/sub/..data", "demo/a..b.py", "demo-1.0.dist-info/METADATA",
        "demo-1.0.data/scripts/tool",
    ])
    check_wheel_entries(wheel, _dist())


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ("../evil.py", "a path outside its install directory: '../evil.py'"),
        ("demo/../../evil.py", "a path outside its install directory: 'demo/../../evil.py'"),
        ("/etc/cron.d/evil", "a path outside its install directory: '/etc/cron.d/evil'"),
        ("\\windows\\evil.py", "a path outside its install directory"),
        ("C:/evil.py", "a path outside its install directory: 'C:/evil.py'"),
        (_symlink("demo/link"), "a symbolic link: 'demo/link'"),
    ],
)
def test_check_wheel_entries_refuses(tmp_path, entry, what):
    wheel = _zip(tmp_path / "demo-1.0-py3-none-any.whl", ["demo/__init__.py", entry])
    with pytest.raises(LambdaBuildError) as raised:
        check_wheel_entries(wheel, _dist())
    message = str(raised.value)
    assert f"demo==1.0: demo-1.0-py3-none-any.whl holds {what}" in message
    assert "refusing to install it" in message
    assert "exclude-packages" in raised.value.fix


# --------------------------------------------------------------------------
# downloads (unit, against a server on 127.0.0.1)


class _Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")


WHEEL_BYTES = b"PK\x05\x06" + b"\0" * 18  # the content does not matter to the download


def _files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()]


def test_download_with_wrong_sha256_is_refused_and_not_cached(tmp_path, no_proxy):
    cache = tmp_path / "cache"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with _Server({"demo-1.0-py3-none-any.whl": WHEEL_BYTES}) as server:
        dist = _dist(url=server.url("demo-1.0-py3-none-any.whl"), sha256=wrong)
        with pytest.raises(LambdaBuildError) as raised:
            fetch_one(dist, cache, tmp_path)
        assert server.requests == ["/demo-1.0-py3-none-any.whl"]
    actual = hashlib.sha256(WHEEL_BYTES).hexdigest()
    assert str(raised.value).startswith(
        f"demo==1.0: demo-1.0-py3-none-any.whl has sha256 {actual}, but uv.lock says {wrong}"
    )
    assert "uv lock --refresh-package demo" in raised.value.fix
    assert _files(cache) == []  # no file, no partial download


def test_download_with_right_sha256_is_cached_and_reused(tmp_path, no_proxy):
    cache = tmp_path / "cache"
    digest = hashlib.sha256(WHEEL_BYTES).hexdigest()
    with _Server({"demo-1.0-py3-none-any.whl": WHEEL_BYTES}) as server:
        dist = _dist(url=server.url("demo-1.0-py3-none-any.whl"), sha256=digest)
        first = fetch_one(dist, cache, tmp_path)
        second = fetch_one(dist, cache, tmp_path)
        assert len(server.requests) == 1
    assert first == second == cache / "files" / digest[:2] / digest / "demo-1.0-py3-none-any.whl"
    assert first.read_bytes() == WHEEL_BYTES
    assert _files(cache) == [first]


def test_damaged_cache_file_is_fetched_again(tmp_path, no_proxy):
    cache = tmp_path / "cache"
    digest = hashlib.sha256(WHEEL_BYTES).hexdigest()
    with _Server({"demo-1.0-py3-none-any.whl": WHEEL_BYTES}) as server:
        dist = _dist(url=server.url("demo-1.0-py3-none-any.whl"), sha256=digest)
        cached = fetch_one(dist, cache, tmp_path)
        cached.write_bytes(b"truncated")
        again = fetch_one(dist, cache, tmp_path)
        assert len(server.requests) == 2
    assert again == cached and again.read_bytes() == WHEEL_BYTES


def test_download_failures_are_collected(tmp_path, no_proxy):
    cache = tmp_path / "cache"
    with _Server({"b-1.0-py3-none-any.whl": WHEEL_BYTES}) as server:
        missing = _dist("a", url=server.url("a-1.0-py3-none-any.whl"), sha256="0" * 64)
        mismatch = _dist("b", url=server.url("b-1.0-py3-none-any.whl"), sha256="1" * 64)
        with pytest.raises(LambdaBuildError) as raised:
            fetch_all([missing, mismatch], cache, tmp_path, jobs=2)
    message = str(raised.value)
    assert "a==1.0: downloading http://127.0.0.1:" in message and "failed" in message
    assert "b==1.0: b-1.0-py3-none-any.whl has sha256" in message
    assert _files(cache) == []


def test_lock_without_hash_is_refused(tmp_path):
    dist = _dist(url="http://127.0.0.1:9/demo-1.0-py3-none-any.whl", sha256=None)
    with pytest.raises(LambdaBuildError, match=re.escape("uv.lock has no sha256 for demo-1.0-py3-none-any.whl")):
        fetch_one(dist, tmp_path / "cache", tmp_path)


def test_local_file_with_wrong_sha256_is_refused(tmp_path):
    local = tmp_path / "vendor" / "demo-1.0-py3-none-any.whl"
    local.parent.mkdir()
    local.write_bytes(WHEEL_BYTES)
    dist = Distribution("demo", "1.0", "path", "vendor/demo-1.0-py3-none-any.whl", LockedFile(
        kind="wheel", filename=local.name, path="vendor/demo-1.0-py3-none-any.whl", sha256="2" * 64))
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(dist, tmp_path / "cache", tmp_path)
    assert f"{local} has sha256 {hashlib.sha256(WHEEL_BYTES).hexdigest()}, but uv.lock says {'2' * 64}" in str(
        raised.value)
    assert raised.value.fix == "run `uv lock` after changing a local file"
    good = Distribution("demo", "1.0", "path", "vendor/demo-1.0-py3-none-any.whl", LockedFile(
        kind="wheel", filename=local.name, path="vendor/demo-1.0-py3-none-any.whl",
        sha256=hashlib.sha256(WHEEL_BYTES).hexdigest()))
    assert fetch_one(good, tmp_path / "cache", tmp_path) == local


def test_exclude_packages_typo_is_an_error(tmp_path):
    """A name in exclude-packages that the lock does not have is refused, not ignored."""
    from hatch_lambda.config.options import FAT, LAYER, load_config

    project = copy_fixture("native-app", tmp_path)
    config = load_config(LAYER, {"exclude-packages": ["pyyml"]}, {}, project_name="native-app", requires_python=">=3.11")
    with pytest.raises(LambdaBuildError) as error:
        resolve(project, config.target, exclude=config.exclude_packages, strict_exclude=not config.exclude_is_default)
    assert "pyyml" in str(error.value) and "pyyaml" in str(error.value)
    # lambda-fat's default (boto3, botocore) is fine where the lock has neither.
    fat = load_config(FAT, {}, {}, project_name="native-app", requires_python=">=3.11")
    names = resolve(project, fat.target, exclude=fat.exclude_packages, strict_exclude=not fat.exclude_is_default).names()
    assert names == ["markupsafe", "orjson", "pyyaml"]


@pytest.mark.network
def test_smoke_import_failure_is_refused_and_can_be_skipped(tmp_path, cache):
    """smoke-import = true: a module that raises on import stops the build, naming it and its error."""
    project = tmp_path / "boomapp"
    make_wheel(project / "wheels", "boom", "1.0", {
        "boom/__init__.py": b"import os\nif 'BOOM_TABLE' not in os.environ:\n    raise RuntimeError('set BOOM_TABLE')\n",
    })
    make_wheel(project / "wheels", "calm", "1.0", {"calm.py": b"VALUE = 1\n"})
    local_project(project, "boomapp", {"boom": "wheels/boom-1.0-py3-none-any.whl",
                                       "calm": "wheels/calm-1.0-py3-none-any.whl"},
                  layer={"exclude-packages": ["boom"], "smoke-import": True})
    configure(project, FAT, exclude_packages=["boom"])
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    assert "smoke import: 1 top-level modules imported with python3.11" in build.output  # calm
    assert "smoke import: 2 top-level modules imported with python3.11" in build.output  # calm, boomapp
    configure(project, exclude_packages=None)
    configure(project, FAT, exclude_packages=None)
    rebuild_fails(project, cache, LAYER, needles=[
        "smoke import with python3.11 (",
        "    layer.zip: import boom: RuntimeError: set BOOM_TABLE",
        "smoke-import-skip",
    ])
    rebuild_fails(project, cache, FAT, needles=["    boomapp-fat.zip: import boom: RuntimeError: set BOOM_TABLE"])
    configure(project, smoke_import_skip=["boom"])
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    assert "smoke import: 1 top-level modules imported" in build.output
    assert "smoke import: 2 top-level modules imported" in build.output
