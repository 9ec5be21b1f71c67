"""A build killed while it puts its artifacts in place: manifest.json never records a sha256 that is not the file's.

A small project (one local wheel, three functions) is built for lambda-layer and
lambda-fat into one directory; then its code, its dependency and its functions
change, and lambda-layer is built again through a wrapper that replaces
``os.replace`` and ends the process (``os._exit(137)``, as abrupt as SIGKILL)
right before its k-th call from :mod:`hatch_lambda.assemble.publish`, for every
k until a build gets through. Each time, from the previous artifacts: every file
the manifest lists has the sha256 it records, lambda-fat's section and zips are
as they were, ``inspect`` and ``verify`` say when lambda-layer's build did not
finish, and the next plain build succeeds and verifies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.builds import build_env, digests, hatchling_build, manifest, sha256_file
from helpers.projects import FAT, LAYER, OUT, configure, edit_pyproject, local_project, make_wheel, run_cli, uv_lock

#: Runs hatchling with os.replace counting (and logging) its calls from the publishing module.
WRAPPER = r"""
import os, runpy, sys

crash_at, log = int(sys.argv[1]), sys.argv[2]
real, calls = os.replace, []

def replace(source, destination, *args, **kwargs):
    if sys._getframe(1).f_globals.get("__name__") == "hatch_lambda.assemble.publish":
        calls.append(destination)
        with open(log, "a") as handle:
            handle.write(os.path.basename(destination) + "\n")
        if len(calls) == crash_at:
            os._exit(137)
    return real(source, destination, *args, **kwargs)

os.replace = replace
sys.argv = ["hatchling", *sys.argv[3:]]
runpy.run_module("hatchling", run_name="__main__", alter_sys=True)
"""

HANDLER = "crashapp.handler.handler"
OLD_FUNCTIONS = {name: {"packages": ["src/crashapp"], "handler": HANDLER} for name in ("app", "extra", "gone")}
NEW_ZIPS = {"layer.zip", "app.zip", "extra.zip"}


def _dependency(project: Path, version: str) -> None:
    make_wheel(project / "wheels", "tinydep", version, {"tinydep/__init__.py": f"VERSION = {version!r}\n".encode()})


@pytest.fixture(scope="module")
def before(tmp_path_factory, cache) -> tuple[Path, Path]:
    """The project, built for both targets; a copy of its output directory (the previous artifacts)."""
    base = tmp_path_factory.mktemp("publish-crash")
    project = base / "crashapp"
    _dependency(project, "1.0")
    local_project(project, "crashapp", {"tinydep": "wheels/tinydep-1.0-py3-none-any.whl"},
                  layer={"installer": "wheels", "functions": OLD_FUNCTIONS})
    configure(project, FAT, functions={"solo": {"packages": ["src/crashapp"], "handler": HANDLER}})
    hatchling_build(project, LAYER, FAT, cache=cache)
    assert {"layer.zip", "app.zip", "extra.zip", "gone.zip", "solo-fat.zip"} <= set(digests(project / OUT))
    saved = base / "previous"
    shutil.copytree(project / OUT, saved)
    # What the next build changes: the code, the dependency (so the layer changes too), and one function less.
    handler = project / "src" / "crashapp" / "handler.py"
    handler.write_text(handler.read_text() + "# changed\n")
    _dependency(project, "1.1")

    def change(data: dict) -> None:
        data["project"]["dependencies"] = ["tinydep"]
        data["tool"]["uv"]["sources"]["tinydep"]["path"] = "wheels/tinydep-1.1-py3-none-any.whl"
        layer = data["tool"]["hatch"]["build"]["targets"][LAYER]
        layer["functions"] = {name: table for name, table in OLD_FUNCTIONS.items() if name != "gone"}

    edit_pyproject(project, change)
    uv_lock(project)
    return project, saved


def restore(project: Path, saved: Path) -> None:
    shutil.rmtree(project / OUT)
    shutil.copytree(saved, project / OUT)


def crashing_build(project: Path, cache: Path, crash_at: int, log: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, str(crash_at), str(log), "build", "-t", LAYER, *args],
                          cwd=project, env=build_env(cache), capture_output=True, text=True, timeout=600)


def assert_listed_files_match(out: Path) -> dict:
    document = manifest(out)
    for kind, section in document["targets"].items():
        for artifact in section["artifacts"]:
            path = out / artifact["file"]
            assert path.is_file(), f"{kind}: {artifact['file']} is listed but missing"
            assert sha256_file(path) == artifact["sha256"], f"{kind}: {artifact['file']} is not the file listed"
    return document


def assert_fat_untouched(out: Path, saved: Path) -> None:
    assert manifest(out)["targets"][FAT] == manifest(saved)["targets"][FAT]
    assert sha256_file(out / "solo-fat.zip") == sha256_file(saved / "solo-fat.zip")


def scratch_dirs(out: Path) -> list[Path]:
    return sorted(out.glob(".hatch-lambda-*"))


def test_a_build_killed_at_each_rename_never_leaves_a_wrong_manifest(before, cache, tmp_path):
    project, saved = before
    out = project / OUT
    previous = {name: digest for name, digest in digests(saved).items()}
    crashes = 0
    for crash_at in range(1, 20):
        restore(project, saved)
        log = tmp_path / f"renames-{crash_at}.log"
        run = crashing_build(project, cache, crash_at, log)
        if run.returncode == 0:
            break
        crashes += 1
        assert run.returncode == 137, run.stdout + run.stderr
        assert scratch_dirs(out), "the killed build could not clean up: its scratch directory should be there"
        document = assert_listed_files_match(out)
        assert_fat_untouched(out, saved)
        if crash_at == 1:  # before the first rename: the previous artifacts, as they were
            assert {name: digest for name, digest in digests(out).items()
                    if not name.startswith(".hatch-lambda-")} == previous
            assert run_cli("verify", out).returncode == 0
        else:
            assert LAYER not in document["targets"]
            assert document["incomplete"] == {LAYER: sorted(NEW_ZIPS | {"gone.zip"})}
            for command in ("verify", "inspect"):
                refused = run_cli(command, out)
                assert refused.returncode == 2, refused.stdout + refused.stderr
                assert f"{out / 'manifest.json'} lists no artifacts of lambda-layer: its last build into {out} " \
                       "stopped while putting its zips in place (app.zip, extra.zip, gone.zip, layer.zip)" \
                       in refused.stderr, refused.stderr
                assert "fix: build lambda-layer again" in refused.stderr
                assert "Traceback" not in refused.stderr
            assert run_cli("verify", out / "solo-fat.zip").returncode == 0  # the other target's zip is fine
        # The next plain build puts everything in place and removes what the killed one left.
        hatchling_build(project, LAYER, cache=cache)
        document = assert_listed_files_match(out)
        assert "incomplete" not in document
        assert {a["file"] for a in document["targets"][LAYER]["artifacts"]} == NEW_ZIPS
        assert_fat_untouched(out, saved)
        assert scratch_dirs(out) == []
        assert (out / "gone.zip").is_file()  # a removed function's zip stays, unlisted, as without a crash
        with zipfile.ZipFile(out / "app.zip") as archive:
            assert archive.read("crashapp/handler.py").decode().endswith("# changed\n")
        verified = run_cli("verify", out, "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)["ok"]
    renames = log.read_text().split()
    # The interim manifest, each new zip, the new manifest: one crash before each.
    assert renames[0] == renames[-1] == "manifest.json" and set(renames[1:-1]) == NEW_ZIPS, renames
    assert crashes == len(renames) == len(NEW_ZIPS) + 2
    assert digests(out)["layer.zip"] != previous["layer.zip"] and digests(out)["app.zip"] != previous["app.zip"]


def test_clean_after_a_killed_build_removes_what_it_was_putting_in_place(before, cache, tmp_path):
    project, saved = before
    out = project / OUT
    restore(project, saved)
    run = crashing_build(project, cache, 3, tmp_path / "renames.log")  # the interim manifest and one zip in place
    assert run.returncode == 137, run.stdout + run.stderr
    hatchling_build(project, LAYER, cache=cache, args=["-c"])
    assert sorted(p.name for p in out.iterdir()) == sorted(NEW_ZIPS | {"solo-fat.zip", "manifest.json"})
    document = assert_listed_files_match(out)
    assert "incomplete" not in document and set(document["targets"]) == {LAYER, FAT}
    assert_fat_untouched(out, saved)
