"""Several builds at once, sharing one cache: all succeed with the same artifacts as a build alone.

The files come from a server on 127.0.0.1 that sends them in small pieces, so
the builds download the same files into the one (initially empty) cache at the
same time. Two of the builds run in the same project, writing to the same
output directory: neither may remove the other's scratch directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from helpers.builds import build_env, digests, hatchling_build
from helpers.projects import FAT, LAYER, OUT, copy_fixture
from helpers.wheelserver import WheelServer, assert_cache_holds_only_verified_files, loopback_env, point_lock_at

pytestmark = pytest.mark.network

PROJECTS = ("native-app", "markers-app")


def test_concurrent_builds_share_one_cache(tmp_path, cache):
    with WheelServer() as server:
        references = {}
        for name in PROJECTS:
            reference = copy_fixture(name, tmp_path / "reference")
            hatchling_build(reference, LAYER, cache=cache)  # the session cache gets the files from the index
            server.add_dir(cache / "files")
            point_lock_at(reference, server)
            hatchling_build(reference, LAYER, cache=tmp_path / "reference-cache", env=loopback_env())
            references[name] = digests(reference / OUT)
        for body in server.files:
            server.fault(body, kind="trickle", piece=16384, seconds=0.01)

        shared = tmp_path / "shared-cache"
        runs = []  # (project name, project dir)
        for copy in range(2):
            for name in PROJECTS:
                project = tmp_path / f"copy{copy}" / name
                shutil.copytree(tmp_path / "reference" / name, project, ignore=shutil.ignore_patterns("dist"))
                runs.append((name, project))
        runs.append(runs[0])  # a second build in the same project, at the same time
        processes = [
            subprocess.Popen([sys.executable, "-m", "hatchling", "build", "-t", LAYER], cwd=project,
                             env=build_env(shared, loopback_env()), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for _, project in runs
        ]
        outputs = [process.communicate(timeout=900)[0] for process in processes]
    for (name, project), process, output in zip(runs, processes, outputs, strict=True):
        assert process.returncode == 0, f"{name} in {project} failed:\n{output}"
        assert digests(project / OUT) == references[name], f"{project}: artifacts differ from a build alone"
        assert not list((project / OUT).glob(".hatch-lambda-*"))
    assert_cache_holds_only_verified_files(shared)


def test_layer_and_fat_built_at_once_into_one_directory(tmp_path, cache):
    """Both targets write manifest.json: built at the same time, neither section is lost."""
    reference = copy_fixture("native-app", tmp_path / "reference")
    hatchling_build(reference, LAYER, FAT, cache=cache)
    expected = digests(reference / OUT)
    project = copy_fixture("native-app", tmp_path)
    for _ in range(3):
        processes = [
            subprocess.Popen([sys.executable, "-m", "hatchling", "build", "-t", target], cwd=project,
                             env=build_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for target in (LAYER, FAT)
        ]
        for process in processes:
            output = process.communicate(timeout=900)[0]
            assert process.returncode == 0, output
        assert digests(project / OUT) == expected
