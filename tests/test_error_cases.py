"""Input that used to end a build in a Python traceback: each is now one clear error.

Every case starts from a project that was built, then breaks one thing (an
environment variable, the output or cache directory, a TOML file, a wheel or
an sdist, the home directory) and builds again in a subprocess, as a user
would. The build must exit with status 2, print no traceback, name the thing
that is wrong and the fix, and leave the earlier artifacts as they were, byte
for byte.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from helpers.builds import Build, assert_failed_cleanly, build_env, digests, hatchling_build
from helpers.projects import LAYER, OUT, configure, edit_pyproject, local_project, make_wheel, run_cli, uv_command
from helpers.wheelserver import WheelServer, loopback_env

#: A user id no password database names: inside a user namespace it is who the build runs as.
NOBODY_KNOWN = 54321


def leaf_wheel(directory: Path) -> Path:
    return make_wheel(directory, "leaf", "1.0", {"leaf/__init__.py": b"X = 1\n"})


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, cache) -> Path:
    """A project with one local wheel, built once."""
    project = tmp_path_factory.mktemp("baseline") / "app"
    leaf_wheel(project / "wheels")
    local_project(project, "app", {"leaf": "wheels/leaf-1.0-py3-none-any.whl"}, layer={"installer": "wheels"})
    hatchling_build(project, LAYER, cache=cache)
    return project


@pytest.fixture
def built(baseline, tmp_path) -> Path:
    """A private copy of the built baseline, its artifacts included."""
    project = tmp_path / "app"
    shutil.copytree(baseline, project, symlinks=True)
    return project


def unprivileged() -> list[str]:
    """A command prefix under which permission bits apply: none for a user, a user namespace for root."""
    if os.geteuid() != 0:
        return []
    command = ["unshare", "--user", f"--map-user={NOBODY_KNOWN}", f"--map-group={NOBODY_KNOWN}"]
    if not shutil.which("unshare") or subprocess.run([*command, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root, where permission bits do not apply, and no user namespace "
                    "(unshare --user) to run the build as another user")
    return command


def without_home() -> list[str]:
    """A command prefix under which ``Path.home()`` fails once HOME is unset: a user the password database lacks."""
    command = ["unshare", "--user", f"--map-user={NOBODY_KNOWN}", f"--map-group={NOBODY_KNOWN}"]
    if not shutil.which("unshare") or subprocess.run([*command, "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespace (unshare --user) to run the build as a user without a home directory")
    probe = subprocess.run([*command, sys.executable, "-c", "import pathlib; pathlib.Path.home()"],
                           capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "HOME"})
    if probe.returncode == 0:
        pytest.skip(f"user {NOBODY_KNOWN} has a home directory here, so Path.home() does not fail")
    return command


def build(project: Path, cache: Path, *, env: dict[str, str] | None = None, drop: Iterable[str] = (),
          args: Iterable[str] = (), prefix: Iterable[str] = (), command: list[str] | None = None) -> Build:
    """``python -m hatchling build -t lambda-layer`` (or ``command``) in ``project``, under ``prefix``,
    with ``env`` set and the variables in ``drop`` unset."""
    environ = build_env(cache, env)
    for name in drop:
        environ.pop(name, None)
    command = command or [sys.executable, "-m", "hatchling", "build", "-t", LAYER, *args]
    result = subprocess.run([*prefix, *command], cwd=project, capture_output=True, text=True, env=environ,
                            timeout=600)
    return Build(project, result)


def refused(project: Path, cache: Path, needles: Iterable[str], **options) -> Build:
    """The build fails with exit status 2, one message holding every needle, and the artifacts untouched."""
    out = project / OUT
    before, entries = digests(out), sorted(p.name for p in out.iterdir())
    assert {"layer.zip", "manifest.json"} <= set(before)
    result = build(project, cache, **options)
    assert_failed_cleanly(result, *needles)
    assert result.result.returncode == 2, result.output
    assert result.output.count("fix: ") == 1, f"not one error:\n{result.output}"
    assert digests(out) == before, "the refused build changed the earlier artifacts"
    assert sorted(p.name for p in out.iterdir()) == entries, "the refused build left something in the output"
    return result


# --------------------------------------------------------------------------
# SOURCE_DATE_EPOCH


@pytest.mark.parametrize("value", ["abc", "-5", "1e9", "4354819200", "99999999999999999999"])
def test_bad_source_date_epoch_is_one_error(built, cache, value):
    refused(built, cache, [
        f"the environment variable SOURCE_DATE_EPOCH is {value!r}: it must be a whole number of seconds since "
        "1970-01-01 UTC, from 0 to 4354819199 (zip timestamps end in 2107",
        "fix: set SOURCE_DATE_EPOCH to such a number",
    ], env={"SOURCE_DATE_EPOCH": value})


def test_last_source_date_epoch_a_zip_holds_builds(built, cache):
    result = build(built, cache, env={"SOURCE_DATE_EPOCH": "4354819199"}, args=["-d", "late"])
    assert result.ok, result.output
    with zipfile.ZipFile(built / "late" / "layer.zip") as archive:
        # zip keeps seconds in steps of two
        assert {info.date_time for info in archive.infolist()} == {(2107, 12, 31, 23, 59, 58)}


# --------------------------------------------------------------------------
# the output directory

DIRECTORY_FIX = "fix: point `directory` in the target's table of pyproject.toml (or the -d option) at a directory"


def test_output_directory_that_is_a_file_or_a_device_is_one_error(built, cache):
    (built / "notes.txt").write_text("keep me\n")
    refused(built, cache, [f"the output directory {built / 'notes.txt'} cannot hold the artifacts: it is a file, "
                           "not a directory", DIRECTORY_FIX], args=["-d", str(built / "notes.txt")])
    configure(built, directory="/dev/null")
    refused(built, cache, ["the output directory /dev/null cannot hold the artifacts: it is a device, not a directory",
                           DIRECTORY_FIX], args=["-d", "/dev/null"])
    configure(built, directory="notes.txt/lambda")  # below a file: the table's key, hatchling's default -d
    refused(built, cache, [f"the output directory {built / 'notes.txt' / 'lambda'} cannot hold the artifacts: it "
                           "cannot be written (Not a directory)", DIRECTORY_FIX])
    assert (built / "notes.txt").read_text() == "keep me\n"
    # the same through `hatch-lambda build -d`, which runs hatchling for each runtime
    configure(built, directory=None)
    refused(built, cache, ["the output directory /dev/null cannot hold the artifacts", DIRECTORY_FIX],
            command=[sys.executable, "-m", "hatch_lambda", "build", "-d", "/dev/null"])


def test_read_only_output_directory_is_one_error(built, cache):
    prefix = unprivileged()
    out = built / OUT
    out.chmod(0o500)
    try:
        refused(built, cache, [f"the output directory {out} cannot hold the artifacts: it cannot be written "
                               "(Permission denied)", DIRECTORY_FIX], prefix=prefix)
    finally:
        out.chmod(0o755)


# --------------------------------------------------------------------------
# the cache directory

CACHE_FIX = "fix: set HATCH_LAMBDA_CACHE_DIR to a directory you can write"


def test_cache_directory_that_is_a_file_or_a_device_is_one_error(built, cache):
    (built / "cache-file").write_text("not a cache\n")
    refused(built, cache, [f"the cache directory {built / 'cache-file'} (from HATCH_LAMBDA_CACHE_DIR) is a file, not "
                           "a directory", CACHE_FIX], env={"HATCH_LAMBDA_CACHE_DIR": str(built / "cache-file")})
    refused(built, cache, ["the cache directory /dev/null (from HATCH_LAMBDA_CACHE_DIR) is a device, not a directory",
                           CACHE_FIX], env={"HATCH_LAMBDA_CACHE_DIR": "/dev/null"})
    refused(built, cache, ["the cache directory /dev/null/cache (from HATCH_LAMBDA_CACHE_DIR) cannot be written "
                           "(Not a directory)", CACHE_FIX], env={"HATCH_LAMBDA_CACHE_DIR": "/dev/null/cache"})
    assert (built / "cache-file").read_text() == "not a cache\n"


def test_unwritable_cache_directory_is_one_error(built, cache, tmp_path):
    prefix = unprivileged()
    locked = tmp_path / "locked-cache"
    locked.mkdir(mode=0o500)
    try:
        refused(built, cache, [f"the cache directory {locked} (from HATCH_LAMBDA_CACHE_DIR) cannot be written "
                               "(Permission denied)", CACHE_FIX], env={"HATCH_LAMBDA_CACHE_DIR": str(locked)},
                prefix=prefix)
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


# --------------------------------------------------------------------------
# no home directory

NO_CACHE_VARIABLES = ("HATCH_LAMBDA_CACHE_DIR", "XDG_CACHE_HOME")


def test_home_that_does_not_exist_is_one_error(built, cache, tmp_path):
    missing = tmp_path / "no-such-home"
    refused(built, cache, [f"no cache directory: the home directory {missing} (from HOME) does not exist",
                           "fix: set HATCH_LAMBDA_CACHE_DIR to a directory you can write, or set HOME or "
                           "XDG_CACHE_HOME"], env={"HOME": str(missing)}, drop=NO_CACHE_VARIABLES)
    assert not missing.exists()
    # XDG_CACHE_HOME is enough for the cache; the cache secret needs XDG_CONFIG_HOME (or HATCH_LAMBDA_CACHE_SECRET)
    xdg = {"HOME": str(missing), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    refused(built, cache, [f"no place for the cache secret: the home directory {missing} (from HOME) does not exist",
                           "fix: set HATCH_LAMBDA_CACHE_SECRET to a long random string, or set XDG_CONFIG_HOME"],
            env=xdg, drop=["HATCH_LAMBDA_CACHE_DIR", "XDG_CONFIG_HOME", "HATCH_LAMBDA_CACHE_SECRET"])
    result = build(built, cache, env={**xdg, "XDG_CONFIG_HOME": str(tmp_path / "config")},
                   drop=["HATCH_LAMBDA_CACHE_DIR"], args=["-d", "xdg-out"])
    assert result.ok, result.output
    assert (tmp_path / "xdg" / "hatch-lambda" / "packs").is_dir() and not missing.exists()
    assert (tmp_path / "config" / "hatch-lambda" / "cache-secret").is_file()


def test_no_home_directory_at_all_is_one_error(built, cache, tmp_path):
    prefix = without_home()
    refused(built, cache, ["no cache directory: HOME is not set and the password database has no home directory "
                           "for this user", "fix: set HATCH_LAMBDA_CACHE_DIR to a directory you can write"],
            drop=["HOME", *NO_CACHE_VARIABLES], prefix=prefix)
    cli = build(built, cache, drop=["HOME", *NO_CACHE_VARIABLES], prefix=prefix,
                command=[sys.executable, "-m", "hatch_lambda", "cache", "dir"])
    assert cli.result.returncode == 2 and "Traceback" not in cli.output
    assert "hatch-lambda: error: no cache directory: HOME is not set" in cli.output
    result = build(built, cache, env={"XDG_CACHE_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "c")},
                   drop=["HOME", "HATCH_LAMBDA_CACHE_DIR"], prefix=prefix, args=["-d", "xdg-out"])
    assert result.ok, result.output
    assert (tmp_path / "xdg" / "hatch-lambda" / "packs").is_dir()


# --------------------------------------------------------------------------
# TOML nested too deeply

DEEP = "deep = " + "[" * 100_000 + "]" * 100_000 + "\n"


def test_deeply_nested_lock_is_one_error(built, cache):
    lock = built / "uv.lock"
    lock.write_text(DEEP + lock.read_text())
    refused(built, cache, [f"{lock}: TOML nested too deeply to read", "fix: regenerate it with `uv lock`"])


def test_deeply_nested_pyproject_is_one_error(built, cache):
    pyproject = built / "pyproject.toml"
    pyproject.write_text(DEEP + pyproject.read_text())
    needles = [f"{pyproject}: TOML nested too deeply to read",
               "fix: write the nested arrays or inline tables of pyproject.toml flatter"]
    refused(built, cache, needles)  # hatchling reads it first, with tomllib
    refused(built, cache, needles, command=[sys.executable, "-m", "hatch_lambda", "build"])
    cli = run_cli("requirements", cwd=built)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr
    assert "TOML nested too deeply to read" in cli.stderr and "fix: write the nested arrays" in cli.stderr


# --------------------------------------------------------------------------
# wheels and sdists that are not what their names say


def swap_locked_file(project: Path, path: Path, data: bytes) -> None:
    """Replace a locked local file's bytes and give the lock their sha256, as if it had been locked so."""
    lock = project / "uv.lock"
    old, new = hashlib.sha256(path.read_bytes()).hexdigest(), hashlib.sha256(data).hexdigest()
    assert f"sha256:{old}" in lock.read_text()
    path.write_bytes(data)
    lock.write_text(lock.read_text().replace(old, new))


def with_excluded(tmp_path: Path, cache: Path, name: str, relative: str) -> Path:
    """A project depending on ``leaf`` and on ``name`` (a local file), built once with ``name`` left out."""
    project = tmp_path / "app"
    leaf_wheel(project / "wheels")
    local_project(project, "app", {"leaf": "wheels/leaf-1.0-py3-none-any.whl", name: relative},
                  layer={"installer": "wheels", "exclude-packages": [name]})
    hatchling_build(project, LAYER, cache=cache)
    configure(project, exclude_packages=None)
    return project


def truncated(wheel: bytes) -> bytes:
    return wheel[: len(wheel) // 2]


def damaged_member(wheel: bytes) -> bytes:
    """The wheel with one byte of its first member's data flipped: a bad CRC."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        info = archive.infolist()[0]
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 2
    return wheel[:at] + bytes([wheel[at] ^ 0xFF]) + wheel[at + 1:]


NOT_A_WHEEL = {
    "garbage": (lambda wheel: os.urandom(4000), "File is not a zip file"),
    "cut in half": (truncated, "File is not a zip file"),
    "a damaged member": (damaged_member, "Bad CRC-32 for file 'junk/__init__.py'"),
}


@pytest.mark.parametrize("case", sorted(NOT_A_WHEEL))
def test_local_wheel_that_is_not_a_zip_is_one_error(tmp_path, cache, case):
    wheel = make_wheel(tmp_path / "app" / "wheels", "junk", "1.0", {"junk/__init__.py": b"X = 1\n" * 200})
    project = with_excluded(tmp_path, cache, "junk", "wheels/junk-1.0-py3-none-any.whl")
    change, reason = NOT_A_WHEEL[case]
    swap_locked_file(project, wheel, change(wheel.read_bytes()))
    refused(project, cache, [
        f"junk==1.0: junk-1.0-py3-none-any.whl is not a wheel: it is not a readable zip archive ({reason}); "
        "refusing to install it",
        "fix: replace the file wheels/junk-1.0-py3-none-any.whl with a real wheel and run `uv lock`, or leave the "
        "package out with exclude-packages",
    ])


def test_wheel_from_an_index_that_is_not_a_zip_is_one_error(tmp_path, cache):
    project = tmp_path / "app"
    wheel = make_wheel(tmp_path / "served", "junk", "1.0", {"junk/__init__.py": b""})
    leaf_wheel(project / "wheels")
    with WheelServer({wheel.name: wheel.read_bytes()}) as server:
        local_project(project, "app", {"leaf": "wheels/leaf-1.0-py3-none-any.whl"},
                      layer={"installer": "wheels", "exclude-packages": ["junk"]})

        def depend_on_junk(data: dict) -> None:
            data["project"]["dependencies"].append("junk")
            data["tool"]["uv"]["sources"]["junk"] = {"url": server.url(wheel.name)}

        edit_pyproject(project, depend_on_junk)
        locked = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=600,
                                env={**os.environ, **loopback_env()})
        assert locked.returncode == 0, locked.stderr
        hatchling_build(project, LAYER, cache=cache, env=loopback_env())
        configure(project, exclude_packages=None)
        garbage = os.urandom(4000)
        server.files[wheel.name] = garbage  # what the index now serves, and the lock's sha256 of it
        lock = project / "uv.lock"
        lock.write_text(lock.read_text().replace(hashlib.sha256(wheel.read_bytes()).hexdigest(),
                                                 hashlib.sha256(garbage).hexdigest()))
        refused(project, cache, [
            "junk==1.0: junk-1.0-py3-none-any.whl is not a wheel: it is not a readable zip archive (File is not a "
            "zip file); refusing to install it",
            "fix: replace junk's file with a real wheel and run `uv lock`, or leave the package out with "
            "exclude-packages",
        ], env=loopback_env())
        assert server.served(wheel.name), "the build never downloaded the file"


def sdist(directory: Path, name: str, version: str) -> Path:
    """A minimal sdist whose PKG-INFO (metadata 2.2, nothing dynamic) uv reads without building it."""
    files = {
        "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n".encode(),
        "pyproject.toml": (f'[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                           f'[project]\nname = "{name}"\nversion = "{version}"\n').encode(),
        f"{name}/__init__.py": b"",
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("case", ["garbage", "cut in half"])
def test_sdist_that_is_not_an_archive_is_one_error(tmp_path, cache, case):
    path = sdist(tmp_path / "app" / "vendor", "plain", "1.0")
    project = with_excluded(tmp_path, cache, "plain", "vendor/plain-1.0.tar.gz")
    data = path.read_bytes()
    swap_locked_file(project, path, os.urandom(4000) if case == "garbage" else data[: len(data) // 2])
    refused(project, cache, [
        "plain==1.0: plain-1.0.tar.gz is not an sdist: it is not a readable .tar.gz or .zip archive (",
        "fix: replace the file vendor/plain-1.0.tar.gz with a real sdist and run `uv lock`, or leave the package "
        "out with exclude-packages",
    ])
    assert not list(cache.glob("built/*/*/plain-*.whl"))


def test_wheel_with_an_unknown_data_scheme_is_one_error(tmp_path, cache):
    make_wheel(tmp_path / "app" / "wheels", "weird", "1.0",
               {"weird/__init__.py": b"", "weird-1.0.data/weird/x": b"x\n"})
    project = with_excluded(tmp_path, cache, "weird", "wheels/weird-1.0-py3-none-any.whl")
    refused(project, cache, [
        "weird==1.0: weird-1.0-py3-none-any.whl puts 'weird-1.0.data/weird/x' in the scheme 'weird' of its .data "
        "directory, which no installer knows (only purelib, platlib, scripts, headers, data); refusing to install it",
        "fix: report it to the weird maintainers, or leave the package out with exclude-packages",
    ])
