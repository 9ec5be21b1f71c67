"""The build cache: packs of deflated files per distribution, cached layer zips, pruning.

Real builds of the native-app fixture (pyyaml, markupsafe, orjson: compiled
wheels) in subprocesses, each with its own cache directory that starts with the
session's downloads only.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hatch_lambda
from hatch_lambda.assemble.layer_cache import layer_key
from hatch_lambda.cache import store as cache_module
from hatch_lambda.cache.store import cache_dir, entries, prune_cache
from hatch_lambda.config.options import load_config
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.packs.pack import PackSpec, pack_key

from helpers.builds import build_env, digests, fresh_cache, hatchling_build, manifest
from helpers.lambda_run import invoke, lambda_root
from helpers.projects import FAT, LAYER, NATIVE_EXPECTED, configure, copy_fixture, uv_command

pytestmark = pytest.mark.network

REUSED_LAYER = "layer.zip: dependencies unchanged, reused from the cache"


@pytest.fixture(scope="module")
def session(cache):
    """The session's download cache, which these tests copy into caches of their own."""
    return cache


def project_and_cache(session: Path, directory: Path, name: str = "native-app") -> tuple[Path, Path]:
    return copy_fixture(name, directory / "project"), fresh_cache(session, directory / "cache")


def packs_in(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "packs").glob("*/*") if p.is_dir() and not p.name.startswith("."))


def layers_in(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "layers").glob("*/*") if p.is_dir() and not p.name.startswith("."))


def leftovers(cache: Path) -> list[Path]:
    """Temporary or discarded entries an interrupted or failed write would leave."""
    return sorted(p for p in cache.glob("*/*/.*") if not p.name.endswith(".lock"))


# --------------------------------------------------------------------------
# hits and misses


def test_code_only_change_reuses_the_layer_and_rebuilds_the_functions(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    first = hatchling_build(project, LAYER, cache=cache)
    assert "0 distributions reused from the cache, 3 unpacked and deflated" in first.output
    before = digests(first.out())
    assert len(packs_in(cache)) == 3 and len(layers_in(cache)) == 1

    handler = project / "src" / "native_app" / "handler.py"
    handler.write_text(handler.read_text().replace('"ok": True', '"ok": True, "edited": 1'))
    second = hatchling_build(project, LAYER, cache=cache)
    assert REUSED_LAYER in second.output
    after = digests(second.out())
    assert after["layer.zip"] == before["layer.zip"]
    assert after["native-app.zip"] != before["native-app.zip"]
    section = manifest(second.out())["targets"][LAYER]
    layer = next(a for a in section["artifacts"] if a["file"] == "layer.zip")
    assert layer["sha256"] == before["layer.zip"]
    assert section["stripped"] == manifest(first.out())["targets"][LAYER]["stripped"]

    # the reused layer and the new function run together
    root = lambda_root(tmp_path / "run", "3.11", layer=second.out("layer.zip"), function=second.out("native-app.zip"))
    assert invoke(root, "native_app.handler").result == {**NATIVE_EXPECTED, "edited": 1}


def test_a_reused_layer_is_each_projects_own_file(session, tmp_path):
    """A reused layer.zip is a copy, never a hard link: editing one project's in place changes nothing else."""
    cache = fresh_cache(session, tmp_path / "cache")
    projects = [copy_fixture("native-app", tmp_path / name) for name in ("a", "b")]
    first = hatchling_build(projects[0], LAYER, cache=cache)
    second = hatchling_build(projects[1], LAYER, cache=cache)
    assert REUSED_LAYER in second.output
    (entry,) = layers_in(cache)
    files = [first.out("layer.zip"), second.out("layer.zip"), entry / "layer.zip"]
    assert len({(path.stat().st_dev, path.stat().st_ino) for path in files}) == 3
    assert [path.stat().st_nlink for path in files] == [1, 1, 1]
    expected = digests(second.out())["layer.zip"]
    assert digests(first.out())["layer.zip"] == expected

    with second.out("layer.zip").open("r+b") as handle:  # the reused one changed in place, as `zip -u` would
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert digests(first.out())["layer.zip"] == expected
    again = hatchling_build(projects[0], LAYER, cache=cache)
    assert REUSED_LAYER in again.output
    assert digests(again.out())["layer.zip"] == expected
    restored = hatchling_build(projects[1], LAYER, cache=cache)
    assert REUSED_LAYER in restored.output and digests(restored.out())["layer.zip"] == expected


def test_a_changed_strip_rule_misses_and_a_changed_size_limit_hits(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    hatchling_build(project, LAYER, cache=cache)
    configure(project, **{"max-unzipped-mb": 200})  # checked after the zip: the layer is reused
    assert REUSED_LAYER in hatchling_build(project, LAYER, cache=cache).output
    configure(project, **{"strip-patterns": ["yaml/composer.py"]})
    build = hatchling_build(project, LAYER, cache=cache)
    assert REUSED_LAYER not in build.output
    assert "0 distributions reused from the cache, 3 unpacked and deflated" in build.output
    assert len(packs_in(cache)) == 6 and len(layers_in(cache)) == 2


def _config(project: Path, **keys):
    table = {"python": "3.11", **keys}
    return load_config(LAYER, table, {}, project_name="native-app", requires_python=">=3.11")


def test_every_key_input_changes_the_keys(session, tmp_path, monkeypatch):
    project, _ = project_and_cache(session, tmp_path)
    base = _config(project)
    resolution = resolve(project, base.target)
    dist = next(d for d in resolution.distributions if d.name == "orjson")

    def keys(config, dist=dist) -> tuple[str, str]:
        pack = pack_key(PackSpec.of(config), dist.file.sha256, dist.file.filename)
        return pack, layer_key([pack], config.layer_prefix)

    reference = keys(base)
    assert keys(_config(project)) == reference  # stable
    other_hash = dataclasses.replace(dist, file=dataclasses.replace(dist.file, sha256="0" * 64))
    changed = {
        "python": keys(_config(project, python="3.12")),
        "arch": keys(_config(project, arch="arm64")),
        "strip": keys(_config(project, strip=False)),
        "strip-patterns": keys(_config(project, **{"strip-patterns": ["*.txt"]})),
        "keep-patterns": keys(_config(project, **{"keep-patterns": ["*.txt"]})),
        "compression-level": keys(_config(project, **{"compression-level": 9})),
        "wheel hash": keys(base, other_hash),
    }
    monkeypatch.setattr(hatch_lambda, "__version__", "999.0")
    changed["hatch-lambda version"] = keys(base)
    monkeypatch.undo()
    monkeypatch.setattr(cache_module, "code_digest", lambda: "f" * 64)
    changed["hatch-lambda code"] = keys(base)
    monkeypatch.undo()
    for what, (pack, layer) in changed.items():
        assert pack != reference[0], what
        assert layer != reference[1], what
    assert len({pack for pack, _ in changed.values()}) == len(changed)
    # the layer also names its prefix and the entries' timestamp
    assert layer_key([reference[0]], "python/lib/python3.11/site-packages/") != reference[1]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert layer_key([reference[0]], "python/") != reference[1]


# --------------------------------------------------------------------------
# byte identity


def test_cached_builds_are_byte_identical_to_full_builds(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    full = hatchling_build(project, LAYER, FAT, cache=cache, args=["-c"])
    assert "reused from the cache" not in full.output
    assert packs_in(cache) == []  # -c reads and writes no pack
    expected = digests(full.out())

    cold = hatchling_build(project, LAYER, FAT, cache=cache)  # packs built now
    assert digests(cold.out()) == expected
    warm = hatchling_build(project, LAYER, FAT, cache=cache)  # layer reused, fat zips from packs
    assert REUSED_LAYER in warm.output and "3 distributions reused from the cache, 0 unpacked" in warm.output
    assert digests(warm.out()) == expected
    for layer in layers_in(cache):
        cache_module.discard(layer)
    from_packs = hatchling_build(project, LAYER, cache=cache)  # layer assembled from packs
    assert "3 distributions reused from the cache, 0 unpacked" in from_packs.output
    assert digests(from_packs.out()) == expected
    assert no_cache_build_digests(project, cache) == expected


def no_cache_build_digests(project: Path, cache: Path) -> dict:
    build = hatchling_build(project, LAYER, FAT, cache=cache, env={"HATCH_LAMBDA_NO_CACHE": "1"})
    assert "reused from the cache" not in build.output
    return digests(build.out())


def test_one_bumped_package_is_the_only_one_unpacked_again(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    hatchling_build(project, LAYER, cache=cache)
    old = manifest(project / "dist" / "lambda")["targets"][LAYER]
    before = {d["name"]: d["version"] for d in old["distributions"]}
    relock = subprocess.run([*uv_command(), "lock", "-P", "markupsafe==3.0.2"], cwd=project,
                            capture_output=True, text=True, timeout=600)
    assert relock.returncode == 0, relock.stderr
    bumped = hatchling_build(project, LAYER, cache=cache)
    assert "2 distributions reused from the cache, 1 unpacked and deflated (markupsafe)" in bumped.output
    after = {d["name"]: d["version"] for d in manifest(bumped.out())["targets"][LAYER]["distributions"]}
    assert after == {**before, "markupsafe": "3.0.2"} and before["markupsafe"] != "3.0.2"
    incremental = digests(bumped.out())
    full = hatchling_build(project, LAYER, cache=cache, args=["-c"])
    assert digests(full.out()) == incremental
    root = lambda_root(tmp_path / "run", "3.11", layer=bumped.out("layer.zip"), function=bumped.out("native-app.zip"))
    assert invoke(root, "native_app.handler").result == NATIVE_EXPECTED


# --------------------------------------------------------------------------
# damage and sharing


def test_a_corrupt_pack_is_discarded_and_built_again(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    expected = digests(hatchling_build(project, LAYER, FAT, cache=cache).out())
    for layer in layers_in(cache):
        cache_module.discard(layer)
    damaged = packs_in(cache)[0]
    data = bytearray((damaged / "data").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / "data").write_bytes(bytes(data))
    (packs_in(cache)[1] / "index.json").write_text("{not json")
    build = hatchling_build(project, LAYER, FAT, cache=cache)
    assert "1 distributions reused from the cache, 2 unpacked and deflated" in build.output
    assert "failed its check; building it again" in build.output
    assert digests(build.out()) == expected
    assert len(packs_in(cache)) == 3 and leftovers(cache) == []
    again = hatchling_build(project, LAYER, FAT, cache=cache)
    assert "3 distributions reused from the cache" in again.output


def test_a_corrupt_cached_layer_is_discarded_and_assembled_again(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    expected = digests(hatchling_build(project, LAYER, cache=cache).out())
    (layer,) = layers_in(cache)
    data = bytearray((layer / "layer.zip").read_bytes())
    data[100] ^= 0xFF
    (layer / "layer.zip").write_bytes(bytes(data))
    build = hatchling_build(project, LAYER, cache=cache)
    assert REUSED_LAYER not in build.output
    assert "3 distributions reused from the cache, 0 unpacked" in build.output
    assert digests(build.out()) == expected
    assert REUSED_LAYER in hatchling_build(project, LAYER, cache=cache).output  # stored again, whole


def test_two_concurrent_builds_share_one_cache(session, tmp_path):
    cache = fresh_cache(session, tmp_path / "cache")
    projects = [copy_fixture("native-app", tmp_path / name) for name in ("a", "b")]
    command = [sys.executable, "-m", "hatchling", "build", "-t", LAYER, "-t", FAT]
    processes = [
        subprocess.Popen(command, cwd=p, env=build_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        for p in projects
    ]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    first, second = (digests(p / "dist" / "lambda") for p in projects)
    assert first == second
    # every distribution packed once (by whichever build took its lock first), no temporary leftovers
    assert len(packs_in(cache)) == 3 and len(layers_in(cache)) == 1 and leftovers(cache) == []
    solo = hatchling_build(copy_fixture("native-app", tmp_path / "c"), LAYER, FAT, cache=cache, args=["-c"])
    assert digests(solo.out()) == first


# --------------------------------------------------------------------------
# location and pruning


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HATCH_LAMBDA_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("HATCH_LAMBDA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_dir() == tmp_path / "xdg" / "hatch-lambda"


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hatch_lambda", *args], capture_output=True, text=True,
                          env={**os.environ, "HATCH_LAMBDA_CACHE_DIR": str(cache)}, timeout=300)


def test_prune_bounds_the_size_least_recently_used_first(session, tmp_path):
    project, cache = project_and_cache(session, tmp_path)
    hatchling_build(project, LAYER, cache=cache)
    found = entries(cache)
    assert {e.kind for e in found} == {"files", "packs", "layers"}
    # Age every entry, then use the build again: its layer becomes the most recently used.
    old = time.time() - 10 * 86400
    for entry in found:
        os.utime(entry.path, (old, old))
    assert REUSED_LAYER in hatchling_build(project, LAYER, cache=cache).output
    layer = next(e for e in entries(cache) if e.kind == "layers")
    total = sum(e.size for e in entries(cache))

    result = run_cli("cache", "prune", "--max-size", str(layer.size), cache=cache)
    assert result.returncode == 0, result.stderr
    left = entries(cache)
    assert [e.path for e in left] == [layer.path]
    assert sum(e.size for e in left) <= layer.size
    assert f"{(total - layer.size) / 2**20:.1f} MiB" in result.stdout

    assert REUSED_LAYER in hatchling_build(project, LAYER, cache=cache).output
    run_cli("cache", "prune", "--max-size", "0", cache=cache)
    assert entries(cache) == []
    # an emptied cache just means a cold build
    assert "0 distributions reused from the cache, 3 unpacked" in hatchling_build(project, LAYER, cache=cache).output


def test_prune_by_age_keeps_recent_entries(tmp_path):
    for name, age_days in (("aa" * 32, 40), ("bb" * 32, 1)):
        entry = tmp_path / "packs" / name[:2] / name
        entry.mkdir(parents=True)
        (entry / "data").write_bytes(b"x" * 1000)
        stamp = time.time() - age_days * 86400
        os.utime(entry, (stamp, stamp))
    result = prune_cache(tmp_path, max_bytes=10**9, older_than_days=30)
    assert (result.removed, result.freed, result.kept) == (1, 1000, 1)
    assert [e.path.name for e in entries(tmp_path)] == ["bb" * 32]


def test_cache_prune_refuses_a_size_it_cannot_read(tmp_path):
    result = run_cli("cache", "prune", "--max-size", "lots", cache=tmp_path)
    assert result.returncode == 2
    assert "--max-size 'lots' is not a size" in result.stderr and "write it like 2G" in result.stderr
    assert "Traceback" not in result.stderr


def test_cache_info_and_dir(session, tmp_path):
    result = run_cli("cache", "dir", cache=tmp_path / "c")
    assert result.stdout.strip() == str(tmp_path / "c")
    info = run_cli("cache", "info", cache=session)
    assert info.returncode == 0 and "files" in info.stdout and "total" in info.stdout
