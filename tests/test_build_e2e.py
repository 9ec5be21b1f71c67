"""End-to-end builds of the fixture projects with ``python -m hatchling build -t lambda-layer/-fat``.

Each build runs in a subprocess inside a private copy of a fixture, downloads
real wheels from the index (once per session, into a shared cache) and writes
real zips. The zips are then used the way Lambda uses them: the layer unzipped
to ``/opt``, the function to ``/var/task``, and the handler imported and called
by an interpreter of the runtime's Python that sees nothing of the host's
site-packages.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.builds import (
    Build,
    assert_zip_is_normalised,
    b64_of_hex,
    build_env,
    digests,
    elf_machines,
    extract,
    fresh_cache,
    hatchling_build,
    manifest,
    sha256_file,
    top_level,
    zip_files,
    zip_names,
)
from helpers.lambda_run import invoke, invoke_fat, lambda_root, run_python
from helpers.projects import (
    FAT,
    LAYER,
    NATIVE_EXPECTED,
    ROOT,
    configure,
    copy_fixture,
    plugin_wheelhouse,
    read_pyproject,
)

pytestmark = pytest.mark.network

on_x86_64 = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="runs x86_64 Linux wheels on this machine's interpreter"
)


# --------------------------------------------------------------------------
# the fixtures' handlers, run from the artifacts


def _native_expected(section: dict) -> dict:
    return NATIVE_EXPECTED


def _version(section: dict, name: str) -> str:
    return next(d["version"] for d in section["distributions"] if d["name"] == name)


@dataclass
class Function:
    module: str
    event: dict
    expected: object  # a dict, or a callable(manifest section) -> dict
    from_layer: tuple[str, ...] = ()  # top-level modules that must be loaded from the layer


@dataclass
class Case:
    fixture: str
    functions: dict[str, Function]
    distributions: set[str]  # what the layer holds (canonical names)
    config: dict = field(default_factory=dict)  # keys set in the lambda-layer table of the copy

    def expected(self, function: Function, section: dict) -> dict:
        return function.expected(section) if callable(function.expected) else function.expected


CASES = {
    "native-app": Case(
        "native-app",
        {"native-app": Function("native_app.handler", {}, _native_expected, ("yaml", "markupsafe", "orjson"))},
        {"markupsafe", "orjson", "pyyaml"},
    ),
    "workspace-app": Case(
        "workspace-app",
        {
            "api": Function(
                "wsapp.api",
                {},
                {"ok": True, "function": "api", "host": "xn--bcher-kva.example", "days": 60, "member": "0.2.0"},
                ("idna", "wsmember", "dateutil"),
            ),
            "worker": Function(
                "wsapp.worker",
                {"date": "2024-01-31", "months": 1},
                {"ok": True, "function": "worker", "next_run": "2024-02-29"},
                ("wsmember", "dateutil"),
            ),
        },
        {"idna", "python-dateutil", "tzdata", "wsmember"},
    ),
    "sdist-app": Case(
        "sdist-app",
        {
            "sdist-app": Function(
                "sdist_app.handler",
                {"command": "photo.png --width=320"},
                {"ok": True, "image": "photo.png", "width": 320, "height": 600},
                ("docopt", "six"),
            )
        },
        {"docopt", "six"},
    ),
    "extras-app": Case(
        "extras-app",
        {
            "extras-app": Function(
                "extras_app.handler",
                {"q": "lambda"},
                lambda section: {
                    "ok": True,
                    "features": {"http": True, "socks": True, "yaml": False, "urllib3": _version(section, "urllib3")},
                    "url": "https://example.com/items?q=lambda",
                    "socks_proxy_types": ["HTTP", "SOCKS4", "SOCKS5"],
                },
                ("attrs", "requests", "socks", "urllib3"),
            )
        },
        {"attrs", "certifi", "charset-normalizer", "idna", "pysocks", "requests", "urllib3"},
        config={"extras": ["http"]},
    ),
    "markers-app": Case(
        "markers-app",
        {
            "markers-app": Function(
                "markers_app.handler",
                {},
                {
                    "ok": True,
                    "machine": "x86_64",
                    "python": "3.11",
                    "chosen": {"six": "linux", "certifi": True, "tomli": 42},
                },
                ("attrs", "six", "certifi", "tomli"),
            )
        },
        {"attrs", "certifi", "six", "tomli"},
    ),
}


class Builds:
    """Each fixture built once (layer and fat), on first use."""

    def __init__(self, base: Path, cache: Path) -> None:
        self.base = base
        self.cache = cache
        self.done: dict[str, Build] = {}

    def get(self, name: str) -> Build:
        if name not in self.done:
            project = copy_fixture(name, self.base)
            if CASES[name].config:
                configure(project, **CASES[name].config)
            self.done[name] = hatchling_build(project, LAYER, FAT, cache=self.cache)
        return self.done[name]


@pytest.fixture(scope="module")
def builds(tmp_path_factory, cache) -> Builds:
    return Builds(tmp_path_factory.mktemp("fixtures"), cache)


@on_x86_64
@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_and_function_run_like_lambda(builds, name, tmp_path):
    case = CASES[name]
    build = builds.get(name)
    section = manifest(build.out())["targets"][LAYER]
    assert {d["name"] for d in section["distributions"]} == case.distributions
    layer = build.out("layer.zip")
    # The layer holds dependencies only, under python/, and never the project's own code.
    assert top_level(layer) == {"python"}
    assert not any(f.module.split(".")[0] in top_level(layer, "python/") for f in case.functions.values())
    assert {a["file"] for a in section["artifacts"]} == {"layer.zip", *(f"{n}.zip" for n in case.functions)}
    for function_name, function in case.functions.items():
        code = build.out(f"{function_name}.zip")
        package = function.module.split(".")[0]
        # The function zip is the project's code only: no dependency, no dist-info.
        assert {name.split("/")[0] for name in zip_files(code)} == {package}
        root = lambda_root(tmp_path / function_name, "3.11", layer=layer, function=code)
        run = invoke(root, function.module, function.event)
        assert run.result == case.expected(function, section)
        assert run.loaded[function.module].startswith(str(root.task))
        for module in function.from_layer:
            assert run.loaded[module].startswith(str(root.opt / "python")), (module, run.loaded.get(module))


@on_x86_64
@pytest.mark.parametrize("name", sorted(CASES))
def test_fat_zip_runs_alone(builds, name, tmp_path):
    case = CASES[name]
    build = builds.get(name)
    fat_section = manifest(build.out())["targets"][FAT]
    layer_section = manifest(build.out())["targets"][LAYER]
    # lambda-fat inherits python, extras and functions from lambda-layer's table.
    assert fat_section["python"] == "3.11"
    assert fat_section["extras"] == layer_section["extras"]
    assert {a["file"] for a in fat_section["artifacts"]} == {f"{n}-fat.zip" for n in case.functions}
    assert fat_section["distributions"] == layer_section["distributions"]  # no boto3 in these
    for function_name, function in case.functions.items():
        fat = build.out(f"{function_name}-fat.zip")
        run = invoke_fat(fat, tmp_path / function_name, "3.11", function.module, function.event)
        assert run.result == case.expected(function, fat_section)
        for module in (function.module, *function.from_layer):
            assert run.loaded[module].startswith(str(tmp_path / function_name / "var" / "task")), module


@on_x86_64
def test_host_site_packages_do_not_leak_in(builds, tmp_path):
    """The host has MarkupSafe installed; a function zip without its layer must not find it."""
    build = builds.get("native-app")
    root = lambda_root(tmp_path, "3.11", function=build.out("native-app.zip"))
    run = run_python("3.11", root.sys_path, module="native_app.handler", roots=[str(root.root)], check=False)
    assert run.process.returncode != 0
    assert "ModuleNotFoundError: No module named 'markupsafe'" in run.process.stderr, run.process.stderr


@on_x86_64
def test_stripped_layer_keeps_metadata_for_importlib(builds, tmp_path):
    build = builds.get("native-app")
    root = lambda_root(tmp_path, "3.11", layer=build.out("layer.zip"))
    code = (
        "import importlib.metadata as m\n"
        "result = {d.metadata['Name'].lower(): d.version for d in m.distributions()}\n"
        "result['pyyaml-by-name'] = m.version('pyyaml')\n"
    )
    run = run_python("3.11", root.sys_path, code=code, roots=[str(root.root)])
    section = manifest(build.out())["targets"][LAYER]
    locked = {d["name"]: d["version"] for d in section["distributions"]}
    assert run.result == {**locked, "pyyaml-by-name": locked["pyyaml"]}
    # ...while RECORD, WHEEL and INSTALLER are stripped by default.
    names = zip_files(build.out("layer.zip"))
    dist_info = {name.split("/", 2)[2] for name in names if name.split("/")[1].endswith(".dist-info")}
    assert "METADATA" in dist_info
    assert not dist_info & {"RECORD", "WHEEL", "INSTALLER", "top_level.txt"}
    assert section["stripped"]["by_rule"]["dist-info"] > 0


def test_workspace_member_is_built_into_the_layer(builds):
    build = builds.get("workspace-app")
    names = zip_files(build.out("layer.zip"))
    assert "python/wsmember/__init__.py" in names
    assert any(n.startswith("python/wsmember-0.2.0.dist-info/") for n in names)
    section = manifest(build.out())["targets"][LAYER]
    wsmember = next(d for d in section["distributions"] if d["name"] == "wsmember")
    assert wsmember == {"name": "wsmember", "version": "0.2.0", "source": "editable", "file": None}
    assert "wsmember 0.2.0: built from packages/wsmember" in build.output


def test_sdist_only_dependency_is_built_on_the_host(builds):
    build = builds.get("sdist-app")
    assert "docopt 0.6.2: sdist built on host" in build.output
    names = zip_files(build.out("layer.zip"))
    assert "python/docopt.py" in names
    docopt = next(d for d in manifest(build.out())["targets"][LAYER]["distributions"] if d["name"] == "docopt")
    assert docopt["file"] == "docopt-0.6.2.tar.gz"


def test_markers_pick_only_what_linux_x86_64_python_311_needs(builds):
    names = top_level(builds.get("markers-app").out("layer.zip"), "python/")
    dist_infos = {n.split("-")[0].lower() for n in names if n.endswith(".dist-info")}
    assert dist_infos == {"attrs", "certifi", "six", "tomli"}
    assert {"attr", "attrs", "certifi", "six.py", "tomli"} <= names
    # not for aarch64, Windows, macOS, PyPy or python >= 3.13
    assert not names & {"idna", "colorama", "appnope", "pyparsing", "typing_extensions.py"}


# --------------------------------------------------------------------------
# spectra-demo: python 3.12, pyarrow, three functions


SPECTRA_FUNCTIONS = {"api-handler": "spectra.api", "worker": "spectra.worker", "authorizer": "spectra.authorizer"}
READING = {"sensor": " S1 ", "band_nm": 532.0, "intensity": 7.5}
BATCH = {
    "readings": [
        {"sensor": "a", "band_nm": 400, "intensity": 1.5},
        {"sensor": "b", "band_nm": 700, "intensity": 2},
        {"sensor": "a", "band_nm": 550, "intensity": 3},
    ]
}


def _check_spectra_result(function: str, result: dict) -> None:
    if function == "api-handler":
        assert result["statusCode"] == 200, result
        body = json.loads(result["body"])
        assert body == {
            "table": "spectra-readings",
            "service": "dynamodb",
            "item": {"sensor": {"S": "s1"}, "band_nm": {"S": "532.0"}, "intensity": {"S": "7.5"}},
        }
    elif function == "worker":
        parquet = result.pop("parquet_bytes")
        assert isinstance(parquet, int) and parquet > 100
        assert result == {"ok": True, "rows": 3, "max_band_nm": 700.0, "by_sensor": {"a": 4.5, "b": 2.0}}
    else:
        assert result["principalId"] == "alice"
        assert result["policyDocument"]["Statement"] == [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:demo"}
        ]


SPECTRA_EVENTS = {
    "api-handler": {"body": json.dumps(READING)},
    "worker": BATCH,
    "authorizer": {"authorizationToken": "Bearer let-me-in:alice", "methodArn": "arn:aws:execute-api:demo"},
}


@pytest.fixture(scope="module")
def spectra(tmp_path_factory, cache) -> Build:
    project = copy_fixture("spectra-demo", tmp_path_factory.mktemp("spectra"))
    return hatchling_build(project, LAYER, FAT, cache=cache)


@pytest.fixture(scope="module")
def spectra_with_boto3(tmp_path_factory, cache, spectra) -> Build:
    """lambda-fat with ``exclude-packages = []``: boto3 and botocore go into the fat zips."""
    project = copy_fixture("spectra-demo", tmp_path_factory.mktemp("spectra-boto3"))
    configure(project, FAT, exclude_packages=[])
    return hatchling_build(project, FAT, cache=cache)


@pytest.fixture(scope="module")
def spectra_opt(tmp_path_factory, spectra) -> Path:
    """The spectra layer unzipped once, as /opt."""
    root = tmp_path_factory.mktemp("spectra-lambda")
    extract(spectra.out("layer.zip"), root / "opt")
    return root


@on_x86_64
@pytest.mark.parametrize("function", sorted(SPECTRA_FUNCTIONS))
def test_spectra_function_runs_with_the_layer(spectra, spectra_opt, function):
    task = spectra_opt / "var" / "task"
    shutil.rmtree(task, ignore_errors=True)
    root = lambda_root(spectra_opt, "3.12", function=spectra.out(f"{function}.zip"))
    run = invoke(root, SPECTRA_FUNCTIONS[function], SPECTRA_EVENTS[function])
    _check_spectra_result(function, run.result)
    assert run.loaded["pydantic_core"].startswith(str(root.opt / "python"))
    if function == "worker":
        assert run.loaded["pyarrow"].startswith(str(root.opt / "python"))
    if function == "api-handler":
        assert run.loaded["boto3"].startswith(str(root.opt / "python"))


@on_x86_64
@pytest.mark.parametrize("function", sorted(SPECTRA_FUNCTIONS))
def test_spectra_fat_zip_runs_alone(spectra, spectra_with_boto3, function, tmp_path):
    module, event = SPECTRA_FUNCTIONS[function], SPECTRA_EVENTS[function]
    fat = spectra.out(f"{function}-fat.zip")
    if function == "api-handler":
        # The API function needs boto3, which the runtime provides and the fat zip leaves out...
        run = invoke_fat(fat, tmp_path / "default", "3.12", module, event, check=False)
        assert "ModuleNotFoundError: No module named 'boto3'" in run.process.stderr, run.process.stderr
        shutil.rmtree(tmp_path / "default")
        # ...unless exclude-packages = [] puts it in.
        fat = spectra_with_boto3.out(f"{function}-fat.zip")
    run = invoke_fat(fat, tmp_path / "fat", "3.12", module, event)
    _check_spectra_result(function, run.result)
    assert run.loaded["pyarrow" if function == "worker" else "pydantic"].startswith(str(tmp_path / "fat"))
    shutil.rmtree(tmp_path / "fat")


def _check_artifacts(directory: Path, section: dict) -> None:
    for artifact in section["artifacts"]:
        path = directory / artifact["file"]
        digest = sha256_file(path)
        assert artifact["sha256"] == digest
        assert artifact["sha256_base64"] == b64_of_hex(digest)
        assert artifact["zipped_bytes"] == path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        assert artifact["unzipped_bytes"] == sum(i.file_size for i in infos)
        assert artifact["entries"] == len(infos)


def test_spectra_manifest(spectra):
    import tomllib

    data = manifest(spectra.out())
    assert data["format"] == 1
    assert set(data["targets"]) == {LAYER, FAT}
    lock_bytes = (spectra.project / "uv.lock").read_bytes()
    locked = {}
    for package in tomllib.loads(lock_bytes.decode())["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    import hashlib

    for section in data["targets"].values():
        assert section["python"] == "3.12"
        assert section["runtime"] == "python3.12"
        assert section["arch"] == "x86_64"
        assert section["lock"] == {"file": "uv.lock", "sha256": hashlib.sha256(lock_bytes).hexdigest()}
        _check_artifacts(spectra.out(), section)
        for dist in section["distributions"]:
            assert dist["version"] in locked[dist["name"]], dist
            assert dist["source"] == "registry"
            assert dist["file"].startswith(dist["name"].replace("-", "_")) and dist["file"].endswith(".whl"), dist
        assert section["stripped"]["by_rule"]["strip-patterns"] > 0  # pyarrow's headers
    layer, fat = data["targets"][LAYER], data["targets"][FAT]
    assert layer["layout"] == "python" and fat["layout"] == "root"
    layer_names = {d["name"] for d in layer["distributions"]}
    fat_names = {d["name"] for d in fat["distributions"]}
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "pydantic-settings", "pyarrow", "boto3",
            "botocore", "s3transfer", "jmespath"} <= layer_names
    # Fat leaves out boto3, botocore and what only they pulled in; jmespath stays (powertools needs it).
    assert fat["excluded"] == ["boto3", "botocore"]
    assert layer_names - fat_names == {"boto3", "botocore", "s3transfer", "python-dateutil", "six", "urllib3"}
    assert "jmespath" in fat_names
    assert [a["file"] for a in layer["artifacts"]] == ["layer.zip", "api-handler.zip", "authorizer.zip", "worker.zip"]
    assert [a["kind"] for a in layer["artifacts"]] == ["layer", "function", "function", "function"]
    assert {a["kind"] for a in fat["artifacts"]} == {"function-fat"}
    # the stated limit is honoured: the layer is over 50 MB zipped but within 250 MB unzipped
    layer_zip = layer["artifacts"][0]
    assert layer_zip["unzipped_bytes"] < 250 * 2**20
    for function in SPECTRA_FUNCTIONS:
        assert f"dist/lambda/{function}.zip" in spectra.output
        assert f"dist/lambda/{function}-fat.zip" in spectra.output


def test_spectra_fat_zips_leave_out_boto3_by_default(spectra, spectra_with_boto3):
    for function in SPECTRA_FUNCTIONS:
        default = top_level(spectra.out(f"{function}-fat.zip"))
        assert {"spectra", "pyarrow", "pydantic", "aws_lambda_powertools", "jmespath"} <= default
        assert not default & {"boto3", "botocore", "s3transfer"}
        included = top_level(spectra_with_boto3.out(f"{function}-fat.zip"))
        assert {"boto3", "botocore", "s3transfer", "spectra", "pyarrow"} <= included
    section = manifest(spectra_with_boto3.out())["targets"][FAT]
    assert section["excluded"] == []
    assert {"boto3", "botocore"} <= {d["name"] for d in section["distributions"]}


def test_spectra_zips_are_normalised(spectra):
    for path in sorted(spectra.out().glob("*.zip")):
        if path.name.endswith("-fat.zip") and path.name != "worker-fat.zip":
            continue  # the three fat zips differ only in name
        assert_zip_is_normalised(path)


# --------------------------------------------------------------------------
# CPU


@pytest.mark.parametrize(("arch", "machine", "wheel_tag"), [("arm64", "EM_AARCH64", "aarch64"),
                                                            ("x86_64", "EM_X86_64", "x86_64")])
def test_arch_selects_wheels_for_that_cpu(cache, tmp_path, arch, machine, wheel_tag):
    project = copy_fixture("native-app", tmp_path)
    configure(project, arch=arch)
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    data = manifest(build.out())
    for kind in (LAYER, FAT):
        section = data["targets"][kind]
        assert section["arch"] == arch
        assert all(wheel_tag in d["file"] for d in section["distributions"]), section["distributions"]
    for name in ("layer.zip", "native-app-fat.zip"):
        machines = elf_machines(build.out(name), tmp_path / f"unzipped-{name}")
        # pyyaml's _yaml, markupsafe's _speedups and orjson are compiled
        assert len(machines) >= 3, machines
        assert set(machines.values()) == {machine}, machines


# --------------------------------------------------------------------------
# reproducibility


def _clean_build(name: str, directory: Path, session: Path, *targets: str, env=None, prepare=None) -> Build:
    project = copy_fixture(name, directory)
    if prepare:
        prepare(project)
    cache = fresh_cache(session, directory / "cache")  # downloads shared, nothing built reused
    return hatchling_build(project, *(targets or (LAYER, FAT)), cache=cache, env=env)


def _disturb(project: Path) -> None:
    """Things that must not reach the zips: bytecode, mtimes, permission bits of the sources."""
    for source in sorted(project.joinpath("src").rglob("*.py")):
        pycache = source.parent / "__pycache__"
        pycache.mkdir(exist_ok=True)
        (pycache / f"{source.stem}.cpython-311.pyc").write_bytes(b"\xa7\r\r\n" + os.urandom(32))
        os.utime(source, (1_000_000_000, 1_000_000_000))
        source.chmod(0o600)


@pytest.mark.parametrize("name", ["native-app", "workspace-app", "sdist-app"])
def test_clean_builds_in_different_directories_are_identical(cache, tmp_path, name):
    first = _clean_build(name, tmp_path / "a", cache)
    second = _clean_build(name, tmp_path / "b" / "c", cache, prepare=_disturb)
    one, two = digests(first.out()), digests(second.out())
    assert one == two
    assert "manifest.json" in one and "layer.zip" in one
    for artifact in sorted(first.out().glob("*.zip")):
        assert_zip_is_normalised(artifact, date_time=(2020, 2, 2, 0, 0, 0))


def test_unstripped_layer_is_reproducible_too(cache, tmp_path):
    """With strip = false RECORD ships; it must not name the build's scratch directories."""

    def unstripped(project: Path) -> None:
        configure(project, strip=False)

    first = _clean_build("workspace-app", tmp_path / "a", cache, LAYER, prepare=unstripped)
    second = _clean_build("workspace-app", tmp_path / "b" / "c", cache, LAYER, prepare=unstripped)
    assert digests(first.out()) == digests(second.out())
    with zipfile.ZipFile(first.out("layer.zip")) as archive:
        records = {n: archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/RECORD")}
        names = set(archive.namelist())
    assert len(records) == 4
    for record, text in records.items():
        listed = [line.rsplit(",", 2)[0] for line in text.splitlines()]
        # idna ships a console script, which is not staged; nothing outside the layer is listed
        assert all(not path.startswith(("../", "/")) for path in listed), (record, text)
        assert all(f"python/{path}" in names for path in listed), record


def test_source_date_epoch_sets_every_timestamp(cache, tmp_path):
    epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    first = _clean_build("workspace-app", tmp_path / "one", cache, env=epoch)
    second = _clean_build("workspace-app", tmp_path / "two" / "deeper", cache, env=epoch, prepare=_disturb)
    default = _clean_build("workspace-app", tmp_path / "default", cache)
    assert digests(first.out()) == digests(second.out())
    stamp = time.gmtime(1700000000)[:6]
    for artifact in sorted(first.out().glob("*.zip")):
        assert_zip_is_normalised(artifact, date_time=stamp)
        # a different date gives different bytes: the variable is really used
        assert sha256_file(artifact) != sha256_file(default.out(artifact.name))


def test_executable_bits_survive_as_0755(cache, tmp_path):
    project = copy_fixture("native-app", tmp_path)
    tool = project / "src" / "native_app" / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o700)
    build = hatchling_build(project, LAYER, cache=cache)
    with zipfile.ZipFile(build.out("native-app.zip")) as archive:
        modes = {info.filename: (info.external_attr >> 16) & 0o7777 for info in archive.infolist()}
    assert modes["native_app/tool.sh"] == 0o755
    assert modes["native_app/handler.py"] == 0o644
    assert modes["native_app/"] == 0o755


# --------------------------------------------------------------------------
# options


@on_x86_64
def test_layout_site_packages(cache, tmp_path):
    project = copy_fixture("native-app", tmp_path)
    configure(project, layout="site-packages")
    build = hatchling_build(project, LAYER, cache=cache)
    prefix = "python/lib/python3.11/site-packages/"
    names = zip_names(build.out("layer.zip"))
    assert {"python/", "python/lib/", "python/lib/python3.11/", prefix} <= set(names)
    assert all(n.startswith(prefix) for n in names if n not in ("python/", "python/lib/", "python/lib/python3.11/"))
    assert {"yaml", "markupsafe", "orjson"} <= top_level(build.out("layer.zip"), prefix)
    assert manifest(build.out())["targets"][LAYER]["layout"] == "site-packages"
    root = lambda_root(tmp_path / "lambda", "3.11", layer=build.out("layer.zip"), function=build.out("native-app.zip"))
    run = invoke(root, "native_app.handler", {})
    assert run.result == _native_expected({})
    assert run.loaded["yaml"].startswith(str(root.opt / "python" / "lib" / "python3.11" / "site-packages"))


def test_strip_false_keeps_every_installed_file(cache, tmp_path):
    project = copy_fixture("native-app", tmp_path)
    configure(project, strip=False)
    build = hatchling_build(project, LAYER, cache=cache)
    names = zip_files(build.out("layer.zip"))
    for dist_info in ("pyyaml-6.0.4.dist-info", "markupsafe-3.0.4.dist-info", "orjson-3.13.0.dist-info"):
        assert {f"python/{dist_info}/{n}" for n in ("METADATA", "RECORD", "WHEEL", "INSTALLER")} <= names
    with zipfile.ZipFile(build.out("layer.zip")) as archive:
        assert archive.read("python/pyyaml-6.0.4.dist-info/INSTALLER") == b"hatch-lambda\n"
    # no bytecode but the build's own: python 3.11's, in __pycache__ beside each module
    pycs = [n for n in names if n.endswith((".pyc", ".pyo")) or "/__pycache__/" in n]
    assert pycs and all("/__pycache__/" in n and n.endswith(".cpython-311.pyc") for n in pycs), pycs
    assert manifest(build.out())["targets"][LAYER]["stripped"] == {"files": 0, "bytes": 0, "by_rule": {},
                                                               "symbols_files": 0, "left_alone": []}
    assert "stripped" not in build.output


@on_x86_64
def test_strip_and_keep_patterns(cache, tmp_path):
    project = copy_fixture("native-app", tmp_path)
    configure(
        project,
        strip_patterns=["*.pyi", "markupsafe/_speedups.c"],
        keep_patterns=["orjson/*.pyi", "*.dist-info/WHEEL"],
    )
    build = hatchling_build(project, LAYER, cache=cache)
    names = zip_files(build.out("layer.zip"))
    assert "python/markupsafe/_speedups.pyi" not in names
    assert "python/markupsafe/_speedups.c" not in names
    assert "python/markupsafe/__init__.py" in names
    assert "python/orjson/__init__.pyi" in names  # kept: keep-patterns beat strip-patterns
    assert "python/pyyaml-6.0.4.dist-info/WHEEL" in names  # kept: keep-patterns beat the default rules
    assert "python/pyyaml-6.0.4.dist-info/RECORD" not in names
    by_rule = manifest(build.out())["targets"][LAYER]["stripped"]["by_rule"]
    assert by_rule["strip-patterns"] > 0 and by_rule["dist-info"] > 0
    root = lambda_root(tmp_path / "lambda", "3.11", layer=build.out("layer.zip"), function=build.out("native-app.zip"))
    assert invoke(root, "native_app.handler", {}).result == _native_expected({})


@on_x86_64
def test_functions_get_one_zip_each_with_only_their_files(cache, tmp_path):
    project = copy_fixture("workspace-app", tmp_path)
    configure(
        project,
        functions={
            "api": {"packages": ["src/wsapp"], "exclude": ["src/wsapp/worker.py"]},
            "worker": {"packages": ["src/wsapp"], "exclude": ["src/wsapp/api.py"]},
            "everything": {"packages": ["src/wsapp"]},
        },
    )
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    layer_names = zip_files(build.out("layer.zip"))
    expected = {
        "api": {"wsapp/__init__.py", "wsapp/api.py"},
        "worker": {"wsapp/__init__.py", "wsapp/worker.py"},
        "everything": {"wsapp/__init__.py", "wsapp/api.py", "wsapp/worker.py"},
    }
    for function, sources in expected.items():
        # each module with its bytecode (bytecode = "compile", the default)
        files = sources | {"wsapp/__pycache__/" + name[len("wsapp/"):-3] + ".cpython-311.pyc" for name in sources}
        assert zip_files(build.out(f"{function}.zip")) == files
        assert not {f"python/{name}" for name in files} & layer_names
        fat = zip_files(build.out(f"{function}-fat.zip"))
        assert {name for name in fat if name.startswith("wsapp/")} == files
        assert {"wsmember/__init__.py", "idna/__init__.py"} <= fat
    assert sorted(p.name for p in build.out().glob("*.zip")) == sorted(
        [*(f"{f}.zip" for f in expected), *(f"{f}-fat.zip" for f in expected), "layer.zip"]
    )
    for function, module, event, key in (("api", "wsapp.api", {}, "days"), ("worker", "wsapp.worker", {}, "next_run")):
        root = lambda_root(tmp_path / function, "3.11", layer=build.out("layer.zip"),
                           function=build.out(f"{function}.zip"))
        assert key in invoke(root, module, event).result
    # the worker's zip really lacks the API's module
    root = lambda_root(tmp_path / "worker", "3.11")
    missing = run_python("3.11", root.sys_path, module="wsapp.api", roots=[str(root.root)], check=False)
    assert "No module named 'wsapp.api'" in missing.process.stderr


def test_directory_option(cache, tmp_path):
    project = copy_fixture("markers-app", tmp_path)
    configure(project, directory="build/zips")
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    out = project / "build" / "zips"
    # lambda-fat reads it from lambda-layer's table too: one directory, one manifest
    assert sorted(p.name for p in out.iterdir()) == [
        "layer.zip", "manifest.json", "markers-app-fat.zip", "markers-app.zip"
    ]
    assert set(manifest(out)["targets"]) == {LAYER, FAT}
    assert not (project / "dist").exists()
    assert "build/zips/layer.zip" in build.output and "build/zips/markers-app-fat.zip" in build.output
    # a directory of its own for lambda-fat
    configure(project, FAT, directory="fat")
    hatchling_build(project, FAT, cache=cache)
    assert sorted(p.name for p in (project / "fat").iterdir()) == ["manifest.json", "markers-app-fat.zip"]


def test_directory_flag(cache, tmp_path):
    project = copy_fixture("markers-app", tmp_path)
    relative = hatchling_build(project, LAYER, FAT, cache=cache, args=["-d", "elsewhere"])
    assert sorted(p.name for p in (project / "elsewhere").iterdir()) == [
        "layer.zip", "manifest.json", "markers-app-fat.zip", "markers-app.zip"
    ]
    assert not (project / "dist").exists()
    assert "elsewhere/layer.zip" in relative.output
    absolute = tmp_path / "absolute" / "out"
    hatchling_build(project, LAYER, cache=cache, args=["-d", str(absolute)])
    assert sorted(p.name for p in absolute.iterdir()) == ["layer.zip", "manifest.json", "markers-app.zip"]
    assert digests(absolute)["layer.zip"] == digests(project / "elsewhere")["layer.zip"]


def test_clean_flag_removes_the_previous_artifacts_of_its_target_only(cache, tmp_path):
    project = copy_fixture("workspace-app", tmp_path / "clean")
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    before = digests(build.out())
    assert {"api.zip", "worker.zip", "api-fat.zip", "worker-fat.zip"} <= set(before)

    def only_api(project: Path) -> None:
        configure(project, functions={"api": {"packages": ["src/wsapp"]}})

    # Without -c a function that was removed leaves its old zip behind...
    control = tmp_path / "control" / "workspace-app"
    shutil.copytree(project, control)
    only_api(control)
    hatchling_build(control, LAYER, cache=cache)
    assert (control / "dist" / "lambda" / "worker.zip").is_file()

    # ...with -c it goes, and lambda-fat's zips and manifest section stay.
    only_api(project)
    hatchling_build(project, LAYER, cache=cache, args=["-c"])
    after = digests(build.out())
    assert sorted(after) == ["api-fat.zip", "api.zip", "layer.zip", "manifest.json", "worker-fat.zip"]
    for name in ("api-fat.zip", "worker-fat.zip", "layer.zip", "api.zip"):
        assert after[name] == before[name], name
    data = manifest(build.out())
    assert set(data["targets"]) == {LAYER, FAT}
    assert [a["file"] for a in data["targets"][LAYER]["artifacts"]] == ["layer.zip", "api.zip"]
    assert [a["file"] for a in data["targets"][FAT]["artifacts"]] == ["api-fat.zip", "worker-fat.zip"]


def test_clean_only_of_every_target_leaves_nothing(cache, tmp_path):
    project = copy_fixture("markers-app", tmp_path)
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    hatchling_build(project, LAYER, FAT, cache=cache, args=["--clean-only"])
    assert list(build.out().iterdir()) == []


@on_x86_64
def test_extras_and_groups(cache, tmp_path):
    project = copy_fixture("extras-app", tmp_path)
    configure(project, extras=["http", "yaml"], groups=["dev"])
    build = hatchling_build(project, LAYER, cache=cache)
    section = manifest(build.out())["targets"][LAYER]
    assert section["extras"] == ["http", "yaml"] and section["groups"] == ["dev"]
    names = {d["name"] for d in section["distributions"]}
    # dev includes the lint group: pyflakes comes in through it
    assert names == CASES["extras-app"].distributions | {"pyyaml", "iniconfig", "pyflakes"}
    root = lambda_root(tmp_path / "lambda", "3.11", layer=build.out("layer.zip"),
                       function=build.out("extras-app.zip"))
    result = invoke(root, "extras_app.handler", {"q": "x"}).result
    assert result["features"] == {"http": True, "socks": True, "yaml": True, "urllib3": "2.8.0"}
    assert result["yaml"] == "event:\n  q: x\n"


@pytest.mark.parametrize(("extra", "urllib3"), [("legacy", "1.26.20"), ("modern", "2.8.0")])
def test_conflicting_extras_pick_their_own_urllib3(cache, tmp_path, extra, urllib3):
    project = copy_fixture("extras-app", tmp_path)
    configure(project, extras=[extra])
    build = hatchling_build(project, LAYER, cache=cache)
    versions = {d["name"]: d["version"] for d in manifest(build.out())["targets"][LAYER]["distributions"]}
    assert versions["urllib3"] == urllib3
    assert "pysocks" not in versions  # only the http extra asks for requests[socks]
    assert f"python/urllib3-{urllib3}.dist-info/METADATA" in zip_files(build.out("layer.zip"))


@pytest.mark.parametrize(
    ("fixture", "excluded", "gone", "kept"),
    [
        # packaging is needed by the project too, so it stays
        ("forked-app", ["pyproject-metadata"], {"pyproject-metadata"}, {"packaging", "six"}),
        # python-dateutil and tzdata came in only through wsmember
        ("workspace-app", ["wsmember"], {"wsmember", "python-dateutil", "tzdata"}, {"idna"}),
    ],
)
def test_exclude_packages(cache, tmp_path, fixture, excluded, gone, kept):
    project = copy_fixture(fixture, tmp_path)
    full = hatchling_build(copy_fixture(fixture, tmp_path / "full"), LAYER, cache=cache)
    configure(project, exclude_packages=excluded)
    build = hatchling_build(project, LAYER, cache=cache)
    section = manifest(build.out())["targets"][LAYER]
    names = {d["name"] for d in section["distributions"]}
    all_names = {d["name"] for d in manifest(full.out())["targets"][LAYER]["distributions"]}
    assert gone <= all_names and kept <= all_names
    assert names == all_names - gone
    assert section["excluded"] == sorted(excluded)
    in_zip = {n.split("/")[1] for n in zip_files(build.out("layer.zip"))}
    for name in gone:
        assert not any(entry.lower().replace("_", "-").startswith(name) for entry in in_zip), (name, in_zip)


def test_lambda_fat_reads_lambda_layer_table_but_may_override(cache, tmp_path):
    project = copy_fixture("workspace-app", tmp_path)
    configure(project, FAT, strip=False, functions={"solo": {"packages": ["src/wsapp"]}})
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    data = manifest(build.out())
    # the layer keeps its own two functions; fat's own table replaces them
    assert [a["file"] for a in data["targets"][LAYER]["artifacts"]] == ["layer.zip", "api.zip", "worker.zip"]
    assert [a["file"] for a in data["targets"][FAT]["artifacts"]] == ["solo-fat.zip"]
    assert data["targets"][FAT]["stripped"]["files"] == 0
    assert data["targets"][LAYER]["stripped"]["files"] > 0
    assert "idna-3.20.dist-info/RECORD" in zip_files(build.out("solo-fat.zip"))


# --------------------------------------------------------------------------
# the real `hatch build` command


def test_hatch_build_command(cache, tmp_path):
    hatch = shutil.which("hatch")
    command = [hatch] if hatch else [sys.executable, "-m", "hatch"]
    wheelhouse = plugin_wheelhouse(tmp_path / "wheelhouse")
    [wheel] = wheelhouse.glob("hatch_lambda-*.whl")

    project = copy_fixture("native-app", tmp_path)
    assert "hatch-lambda" in read_pyproject(project)["build-system"]["requires"]
    data_dir = tmp_path / "hatch-data"
    env = build_env(cache, {
        "PIP_FIND_LINKS": str(wheelhouse),
        "UV_FIND_LINKS": str(wheelhouse),
        "HATCH_DATA_DIR": str(data_dir),
        "HATCH_CACHE_DIR": str(tmp_path / "hatch-cache"),
    })
    result = subprocess.run([*command, "build", "-t", "lambda-layer"], cwd=project, capture_output=True,
                            text=True, env=env, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    out = project / "dist" / "lambda"
    assert sorted(p.name for p in out.iterdir()) == ["layer.zip", "manifest.json", "native-app.zip"]
    lines = [line.strip() for line in output.splitlines()]
    assert "dist/lambda/layer.zip" in lines and "dist/lambda/native-app.zip" in lines, output
    # hatch's build environment got the plugin from the wheel built above, not the editable checkout
    installed = list(data_dir.rglob("site-packages/hatch_lambda/plugin/builders.py"))
    assert len(installed) == 1, installed
    assert installed[0].read_bytes() == (ROOT / "src" / "hatch_lambda" / "plugin" / "builders.py").read_bytes()
    assert not list(data_dir.rglob("site-packages/*hatch_lambda*.pth"))
    assert wheel.is_file()
    # and it builds the very same bytes as `python -m hatchling build`
    direct = hatchling_build(copy_fixture("native-app", tmp_path / "direct"), LAYER, cache=cache)
    assert digests(direct.out()) == digests(out)


def test_package_builds_a_workspace_member(cache, tmp_path):
    project = copy_fixture("workspace-app", tmp_path)
    configure(project, package="wsmember")
    build = hatchling_build(project, LAYER, cache=cache)
    section = manifest(build.out())["targets"][LAYER]
    # the member's own dependencies only: not idna (the root's), not the member itself
    assert {d["name"] for d in section["distributions"]} == {"python-dateutil", "tzdata"}
    assert "python/idna/__init__.py" not in zip_files(build.out("layer.zip"))
