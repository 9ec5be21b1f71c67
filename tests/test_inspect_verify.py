"""``hatch-lambda inspect`` and ``hatch-lambda verify`` on real built artifacts.

native-app (pyyaml, markupsafe, orjson: real manylinux wheels) is built once,
layer and fat; each test works on copies of its zips, some of them altered the
way a broken packaging step would alter them.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from hatch_lambda.checks.importtime import parse_importtime
from hatch_lambda.fetch.files import fetch_one
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.packs.contents import top_level_modules
from hatch_lambda.runtime.interpreters import host_python
from hatch_lambda.runtime.target import Target

from helpers.builds import hatchling_build, manifest
from helpers.projects import FAT, LAYER, OUT, ROOT, copy_fixture, run_cli

NATIVE_DISTS = {"pyyaml", "markupsafe", "orjson"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache) -> Path:
    """native-app's output directory: layer.zip, native-app.zip, native-app-fat.zip, manifest.json."""
    project = copy_fixture("native-app", tmp_path_factory.mktemp("inspect"))
    hatchling_build(project, LAYER, FAT, cache=cache)
    return project / OUT


def rewrite_zip(source: Path, destination: Path, *, drop=lambda name: False, add: dict[str, bytes] | None = None):
    """A copy of ``source`` without the entries ``drop`` selects, plus ``add``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if not drop(info.filename):
                new.writestr(info, old.read(info))
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return destination


def inspect_json(*args) -> tuple[int, dict]:
    result = run_cli("inspect", "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


# --------------------------------------------------------------------------
# inspect


@pytest.mark.network
def test_inspect_json_adds_up_to_the_zips_real_sizes(built):
    code, data = inspect_json(built)
    assert code == 0 and data["ok"] is True
    sections = manifest(built)["targets"]
    recorded = {a["file"]: a for section in sections.values() for a in section["artifacts"]}
    assert {a["artifact"] for a in data["artifacts"]} == set(recorded) == {
        "layer.zip", "native-app.zip", "native-app-fat.zip"}
    for report in data["artifacts"]:
        path = built / report["artifact"]
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
        rows = report["distributions"]
        # every file counted once, in exactly one row
        assert sum(row["files"] for row in rows) == report["files"] == len(infos)
        assert sum(row["unzipped"] for row in rows) == report["unzipped_bytes"] == sum(i.file_size for i in infos)
        assert report["unzipped_bytes"] == recorded[report["artifact"]]["unzipped_bytes"]
        assert sum(row["zipped"] for row in rows) == report["zipped_bytes"] == sum(i.compress_size for i in infos)
        # and with the zip's own headers, the file's size on disk
        assert report["zipped_bytes"] + report["zip_overhead_bytes"] == report["file_bytes"] == path.stat().st_size
        assert report["audit"] == {"ok": True, "elf_objects": report["audit"]["elf_objects"], "findings": []}
    layer = next(r for r in data["artifacts"] if r["artifact"] == "layer.zip")
    by_name = {row["name"]: row for row in layer["distributions"]}
    assert set(by_name) == NATIVE_DISTS  # the layer holds nothing else
    assert layer["audit"]["elf_objects"] >= 3  # _yaml, markupsafe._speedups, orjson
    stripped = manifest(built)["targets"][LAYER]["contents"]
    for name in NATIVE_DISTS:
        assert by_name[name]["version"] == stripped[name]["version"]
        assert by_name[name]["stripped_files"] == stripped[name]["stripped_files"] > 0
    assert sum(by_name[n]["stripped_bytes"] for n in NATIVE_DISTS) == manifest(built)["targets"][LAYER]["stripped"]["bytes"]
    fat = next(r for r in data["artifacts"] if r["artifact"] == "native-app-fat.zip")
    assert {row["name"] for row in fat["distributions"]} == NATIVE_DISTS | {"(function code)"}


@pytest.mark.network
def test_inspect_table(built):
    result = run_cli("inspect", built / "layer.zip")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("layer.zip (layer) for python 3.11 x86_64 (Amazon Linux 2, glibc 2.26): ")
    assert lines[1].split() == ["distribution", "version", "files", "unzipped", "zipped", "stripped"]
    assert lines[2].split()[0] == "pyyaml"  # the largest first
    assert lines[-1].startswith("  audit: ") and lines[-1].endswith("ELF objects, all fit the runtime")


@pytest.mark.network
def test_inspect_without_a_manifest_reads_the_dist_info(built, tmp_path):
    alone = shutil.copy(built / "layer.zip", tmp_path / "layer.zip")
    result = run_cli("inspect", alone)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no manifest.json beside layer.zip says which Lambda runtime it is for" in result.stderr
    assert "fix: give --python" in result.stderr
    code, data = inspect_json(alone, "--python", "3.11")
    assert code == 0  # the audit finds nothing wrong
    [report] = data["artifacts"]
    rows = {row["name"]: row for row in report["distributions"]}
    # orjson and markupsafe are named like their packages; pyyaml's "yaml" and "_yaml" are not
    assert {"orjson", "markupsafe"} <= set(rows)
    assert sum(row["unzipped"] for row in rows.values()) == report["unzipped_bytes"]
    assert report["zipped_bytes"] + report["zip_overhead_bytes"] == alone.stat().st_size


@pytest.mark.network
def test_inspect_reports_an_aarch64_extension_in_an_x86_64_layer(built, tmp_path, cache):
    """A real aarch64 extension module (orjson's, from its manylinux aarch64 wheel) put into the x86_64 layer."""
    resolution = resolve(ROOT / "fixtures" / "native-app", Target("3.11", "arm64"))
    [orjson] = [d for d in resolution.distributions if d.name == "orjson"]
    with zipfile.ZipFile(fetch_one(orjson, cache, resolution.lock_path.parent)) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".so")]
        data = wheel.read(name)
    shutil.copy(built / "manifest.json", tmp_path / "manifest.json")
    layer = rewrite_zip(built / "layer.zip", tmp_path / "layer.zip",
                        drop=lambda n: n.startswith("python/orjson/orjson.") and n.endswith(".so"),
                        add={f"python/{name}": data})
    code, report = inspect_json(layer)
    assert code == 1 and report["ok"] is False
    [finding] = report["artifacts"][0]["audit"]["findings"]
    assert finding == {
        "package": "orjson",
        "file": f"python/{name}",
        "found": "machine EM_AARCH64",
        "allowed": "EM_X86_64 (x86_64)",
        "fix": "use orjson's x86_64 wheel (is arch set to the CPU you deploy to?), "
               'or build it in the Lambda image with installer = "docker"',
    }
    table = run_cli("inspect", layer)
    assert table.returncode == 1
    assert f"    orjson: python/{name}: found machine EM_AARCH64, the runtime allows EM_X86_64 (x86_64)" in table.stdout


# --------------------------------------------------------------------------
# verify


@pytest.mark.network
def test_verify_imports_every_top_level_module(built):
    if host_python("3.11", "x86_64") is None:
        pytest.skip("no python3.11 for x86_64 on this machine")
    result = run_cli("verify", built, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    modules = {r["artifact"]: r["modules"] for r in data["results"]}
    # the slim function zip is left out: it needs its layer
    assert modules == {"layer.zip": ["_yaml", "markupsafe", "orjson", "yaml"],
                       "native-app-fat.zip": ["_yaml", "markupsafe", "native_app", "orjson", "yaml"]}
    assert all(r["failures"] == {} and r["interpreter"].startswith("python3.11 (") for r in data["results"])


@pytest.mark.network
def test_verify_importtime_profiles_a_cold_start_of_the_real_layer(built):
    if host_python("3.11", "x86_64") is None:
        pytest.skip("no python3.11 for x86_64 on this machine")
    result = run_cli("verify", built / "layer.zip", "--importtime", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    (layer,) = json.loads(result.stdout)["results"]
    profile = layer["importtime"]
    slowest = profile["slowest"]
    assert 0 < len(slowest) <= 15 and profile["imports"] >= len(slowest)
    names = [item["module"] for item in slowest]
    assert "yaml" in names and any(name.startswith("orjson") for name in names)  # the layer's own packages
    cumulative = [item["cumulative_us"] for item in slowest]
    assert cumulative == sorted(cumulative, reverse=True)
    assert all(item["cumulative_us"] >= item["self_us"] >= 0 for item in slowest)
    assert profile["total_us"] >= max(cumulative) > 0  # the outermost imports hold every other one
    assert "encodings" not in names  # the interpreter's own start-up is not counted

    table = run_cli("verify", built / "layer.zip", "--importtime")
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "importing every top-level module took" in line)
    assert "the 15 slowest, cumulative" in lines[head]
    rows = lines[head + 1:head + 16]
    assert rows and all(row.startswith("  ") and row.rstrip().endswith("ms") for row in rows)


def test_importtime_lines_are_parsed_with_their_nesting():
    lines = ["import time: self [us] | cumulative | imported package",
             "import time:       120 |        120 |     _yaml",
             "import time:       300 |        420 |   yaml",
             "import time:        50 |         50 | orjson",
             "not a line of -X importtime"]
    imports = parse_importtime(lines)
    assert [(i.module, i.self_us, i.cumulative_us, i.depth) for i in imports] == [
        ("_yaml", 120, 120, 2), ("yaml", 300, 420, 1), ("orjson", 50, 50, 0)]


@pytest.mark.network
def test_verify_catches_a_layer_with_a_module_removed(built, tmp_path):
    if host_python("3.11", "x86_64") is None:
        pytest.skip("no python3.11 for x86_64 on this machine")
    shutil.copy(built / "manifest.json", tmp_path / "manifest.json")
    # orjson's compiled module gone: the package is there, its import fails
    layer = rewrite_zip(built / "layer.zip", tmp_path / "layer.zip",
                        drop=lambda n: n.startswith("python/orjson/orjson.") and n.endswith(".so"))
    result = run_cli("verify", layer)
    assert result.returncode == 1
    assert "layer.zip: 3 of 4 top-level modules imported with python3.11" in result.stdout
    assert "    layer.zip: import orjson: ModuleNotFoundError: No module named 'orjson.orjson'" in result.stderr
    assert "smoke-import-skip" in result.stderr and "Traceback" not in result.stderr
    # markupsafe gone entirely: the manifest beside the zip still says the build put it in
    layer = rewrite_zip(built / "layer.zip", tmp_path / "layer.zip", drop=lambda n: n.startswith("python/markupsafe/"))
    result = run_cli("verify", layer)
    assert result.returncode == 1
    assert "    layer.zip: import markupsafe: ModuleNotFoundError: No module named 'markupsafe'" in result.stderr
    # --skip leaves a module out
    assert run_cli("verify", layer, "--skip", "markupsafe").returncode == 0


def test_top_level_modules(tmp_path):
    for name in ("pkg/__init__.py", "ns/sub/mod.py", "single.py", "_ext.cpython-311-x86_64-linux-gnu.so",
                 "flat.abi3.so", "pkg-1.0.dist-info/METADATA", "pkg.libs/libz-1a2b.so.1", "bin/tool",
                 "__editable___pkg_finder.py", "not-a-module.py", "data/readme.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert top_level_modules(tmp_path) == ["_ext", "flat", "ns", "pkg", "single"]


@pytest.mark.network
def test_verify_in_the_lambda_image(built, docker_engine, monkeypatch):
    """--runner docker: the runtime's python in the image, the layer mounted at /opt, no network."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.base_url)
    result = run_cli("verify", built / "layer.zip", "--runner", "docker", "--image", docker_engine.image, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    [data] = json.loads(result.stdout)["results"]
    assert data["interpreter"] == f"python3.11 in {docker_engine.image}"
    assert data["modules"] == ["_yaml", "markupsafe", "orjson", "yaml"] and data["failures"] == {}


@pytest.mark.network
def test_verify_says_when_docker_is_needed_but_not_there(built, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker-here.sock")
    result = run_cli("verify", built / "layer.zip", "--runner", "docker")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("hatch-lambda: error: the smoke import runs in the Lambda image (runner docker), but Docker is not "
            f"reachable at unix://{tmp_path}/no-docker-here.sock") in result.stderr
    assert "fix: start Docker (or set DOCKER_HOST), or install python3.11" in result.stderr


@pytest.mark.network
def test_inspect_an_unpacked_layer(built, tmp_path):
    with zipfile.ZipFile(built / "layer.zip") as archive:
        archive.extractall(tmp_path / "layer")
        expected = sum(info.file_size for info in archive.infolist() if not info.is_dir())
    code, data = inspect_json(tmp_path / "layer", "--python", "3.11")
    [report] = data["artifacts"]
    assert code == 0 and report["kind"] == "tree" and report["file_bytes"] is None
    assert report["unzipped_bytes"] == expected and report["zipped_bytes"] == 0
    assert {"orjson", "markupsafe"} <= {row["name"] for row in report["distributions"]}
    assert report["audit"]["elf_objects"] >= 3 and report["audit"]["findings"] == []
