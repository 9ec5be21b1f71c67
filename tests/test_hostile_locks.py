"""Hostile lock files, through real builds: each string from uv.lock is checked before it becomes a path.

Every case starts from a lock ``uv lock`` wrote for a small project whose one
dependency, ``good 1.0``, is a wheel on a package server on 127.0.0.1; the
project builds. The lock is then edited to carry one hostile value (a hash
that is a path, a file name that climbs out of the cache, a file that is
another distribution) and built again: the build must fail with one message
naming uv.lock, the package and the value, leave the output of the earlier
build as it was, and write or remove nothing else: a canary file planted where
the hostile value points is still there with its bytes, and every file under
the test's directory (temporary directories included) is compared before and
after. The server is asked for nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_lambda.cache.store import entry_dir
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.files import cached_path, fetch_one
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.lockfile.wheels import LockedFile

from helpers.builds import digests, hatchling_build, manifest, rebuild_fails
from helpers.projects import LAYER, OUT, edit_pyproject, git, local_project, make_wheel, uv_command
from helpers.wheelserver import WheelServer, loopback_env

REWRITE = "fix: this lock was not written by uv: run `uv lock` again and review the change"
CANARY = b"precious: must survive the build\n"


def _sdist(name: str, version: str) -> bytes:
    """A real sdist archive of a hatchling project ``name`` ``version`` in a .tar.gz."""
    files = {
        "pyproject.toml": f'[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                          f'[project]\nname = "{name}"\nversion = "{version}"\n',
        f"{name}/__init__.py": "import os\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


@dataclass(frozen=True)
class Locked:
    """The built project, its lock as uv wrote it, and the server its files come from."""

    project: Path
    server: WheelServer
    wheel_url: str
    digest: str  # the good wheel's sha256

    @property
    def wheel_line(self) -> str:
        return f'{{ url = "{self.wheel_url}", hash = "sha256:{self.digest}" }}'

    def serve(self, name: str, body: bytes) -> str:
        """Serve ``body`` as ``name``: the hex sha256 the lock must name for it."""
        self.server.files[name] = body
        return hashlib.sha256(body).hexdigest()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Locked]:
    base = tmp_path_factory.mktemp("hostile-locks")
    wheel = make_wheel(base / "wheels", "good", "1.0", {"good/__init__.py": b"X = 1\n"})
    with WheelServer() as server:
        server.files[wheel.name] = wheel.read_bytes()
        project = base / "hostileapp"
        (project / "wheels").mkdir(parents=True)
        shutil.copy(wheel, project / "wheels" / wheel.name)
        local_project(project, "hostileapp", {"good": f"wheels/{wheel.name}"}, layer={"installer": "wheels"})
        edit_pyproject(project, lambda data: data["tool"]["uv"].update(sources={"good": {"url": server.url(wheel.name)}}))
        made = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=600,
                              env={**os.environ, **loopback_env()})
        assert made.returncode == 0, made.stderr
        result = Locked(project, server, server.url(wheel.name), hashlib.sha256(wheel.read_bytes()).hexdigest())
        assert result.wheel_line in (project / "uv.lock").read_text(), "uv wrote the wheel differently"
        hatchling_build(project, LAYER, cache=base / "cache", env=loopback_env())
        yield result


@dataclass(frozen=True)
class Case:
    root: Path  # everything under it but the output directory is compared before and after
    project: Path
    cache: Path  # empty, outside root
    victim: Path

    def entry(self, digest: str) -> Path:
        """The cache directory of a file with ``digest``."""
        return self.cache / "files" / digest[:2] / digest


@pytest.fixture
def case(locked: Locked, tmp_path: Path) -> Case:
    root = tmp_path / "root"
    project = root / "hostileapp"
    shutil.copytree(locked.project, project, symlinks=True)
    (root / "tmp").mkdir()
    victim = root / "victim"
    victim.write_bytes(CANARY)
    return Case(root, project, tmp_path / "cache", victim)


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string (\\, \", \u0000)


def edit_lock(project: Path, change: Callable[[str], str]) -> None:
    lock = project / "uv.lock"
    text = lock.read_text(encoding="utf-8")
    edited = change(text)
    assert edited != text, "the edit changed nothing"
    lock.write_text(edited, encoding="utf-8")


def with_wheel(locked: Locked, case: Case, **fields: str) -> None:
    """The good wheel's line in the lock replaced by one with ``fields`` (url, filename, hash)."""
    line = "{ " + ", ".join(f"{key} = {toml_string(value)}" for key, value in fields.items()) + " }"
    edit_lock(case.project, lambda text: text.replace(locked.wheel_line, line))


def refused(locked: Locked, case: Case, *needles: str) -> None:
    """The build fails with one message holding ``needles`` and the fix; nothing outside the output changed."""
    before = {name: digest for name, digest in digests(case.root).items()
              if not (case.root / name).is_relative_to(case.project / OUT)}
    requests = len(locked.server.requests)
    lock = (case.project / "uv.lock").resolve()
    rebuild_fails(case.project, case.cache, LAYER, env={**loopback_env(), "TMPDIR": str(case.root / "tmp")},
                  needles=[f"{lock}: package[0] (good 1.0): ", *needles, REWRITE])
    after = {name: digest for name, digest in digests(case.root).items()
             if not (case.root / name).is_relative_to(case.project / OUT)}
    assert after == before, "the refused build wrote or removed files outside its output directory"
    assert case.victim.read_bytes() == CANARY
    assert len(locked.server.requests) == requests, "the build downloaded a file of a lock it refused"
    assert not [p for p in case.cache.rglob("*") if p.is_file() and p.suffix in (".whl", ".part")]


def test_hash_that_is_a_path_is_refused(locked, case):
    # cached_path would be <the path>/<filename>: a file there with other bytes was unlinked as "damaged"
    planted = case.victim.parent / "hashdir" / "good-1.0-py3-none-any.whl"
    planted.parent.mkdir()
    planted.write_bytes(CANARY)
    with_wheel(locked, case, url=locked.wheel_url, hash=f"sha256:{planted.parent}")
    refused(locked, case, f"wheels[0].hash 'sha256:{planted.parent}' is not sha256: and 64 hex digits")
    assert planted.read_bytes() == CANARY


def test_hash_too_short_is_refused(locked, case):
    with_wheel(locked, case, url=locked.wheel_url, hash=f"sha256:{locked.digest[:63]}")
    refused(locked, case, f"wheels[0].hash 'sha256:{locked.digest[:63]}' is not sha256: and 64 hex digits")


def climb(case: Case, digest: str) -> str:
    """The relative path from the cache entry of ``digest`` to the victim."""
    return os.path.relpath(case.victim, case.entry(digest))


@pytest.mark.parametrize(("spell", "problem"), [
    (lambda path: path, "holds /"),
    (lambda path: path.replace("/", "%2F"), "holds a percent-encoded separator or .."),
    (lambda path: path.replace("..", "%2e%2e").replace("/", "%2f"), "holds a percent-encoded separator or .."),
    (lambda path: path.replace("/", "%252f"), "holds a percent-encoded separator or .."),  # encoded twice
    (lambda path: path.replace("/", "\\"), "holds \\"),
    (lambda path: "good-1.0-py3-none-any.whl\0" + path, "holds NUL"),
], ids=["dot-dot", "percent-2F", "percent-2e2e", "percent-encoded-twice", "backslash", "nul"])
def test_filename_that_leaves_the_cache_is_refused(locked, case, spell, problem):
    filename = spell(climb(case, locked.digest))
    with_wheel(locked, case, url=locked.wheel_url, filename=filename, hash=f"sha256:{locked.digest}")
    refused(locked, case, f"wheels[0].filename {filename!r} {problem}")


def test_url_whose_last_segment_climbs_is_refused(locked, case):
    # served, so without the check the file is downloaded and replaces the victim
    segment = climb(case, locked.digest).replace("/", "%2F")
    url = locked.server.url(segment)
    locked.serve(segment, locked.server.files["good-1.0-py3-none-any.whl"])
    with_wheel(locked, case, url=url, hash=f"sha256:{locked.digest}")
    refused(locked, case, f"wheels[0].url {url!r} does not end in a file name: its last segment "
                          f"{climb(case, locked.digest)!r} holds /")


@pytest.mark.parametrize("url", ["http://[127.0.0.1/good-1.0-py3-none-any.whl",
                                 "http://127.0.0.1\u2100/good-1.0-py3-none-any.whl"], ids=["ipv6", "nfkc"])
def test_url_that_does_not_parse_is_refused(locked, case, url):
    with_wheel(locked, case, url=url, hash=f"sha256:{locked.digest}")
    refused(locked, case, f"wheels[0].url {url!r} is not a valid URL")


def test_filename_that_is_not_the_file_the_url_names_is_refused(locked, case):
    digest = locked.serve("evil-6.6-py3-none-any.whl", make_wheel(case.root / "made", "evil", "6.6", {}).read_bytes())
    url = locked.server.url("evil-6.6-py3-none-any.whl")
    with_wheel(locked, case, url=url, filename="good-1.0-py3-none-any.whl", hash=f"sha256:{digest}")
    refused(locked, case, "wheels[0].filename 'good-1.0-py3-none-any.whl' is not the file the url names "
                          "('evil-6.6-py3-none-any.whl')")


@pytest.mark.parametrize(("name", "version"), [("evil", "6.6"), ("good", "6.6"), ("evil", "1.0")])
def test_wheel_of_another_distribution_is_refused(locked, case, name, version):
    # the file is on the index and its sha256 is the lock's: only its name tells
    wheel = make_wheel(case.root / "made", name, version, {f"{name}/__init__.py": b"import os\n"})
    digest = locked.serve(wheel.name, wheel.read_bytes())
    wheel.unlink()
    with_wheel(locked, case, url=locked.server.url(wheel.name), hash=f"sha256:{digest}")
    refused(locked, case, f"wheels[0] '{wheel.name}' is {name} {version}, not good 1.0")


def test_registry_sdist_of_another_distribution_is_refused(locked, case):
    digest = locked.serve("evil-6.6.tar.gz", _sdist("evil", "6.6"))
    url = locked.server.url("evil-6.6.tar.gz")

    def change(text: str) -> str:
        text = text.replace(f'source = {{ url = "{locked.wheel_url}" }}',
                            f'source = {{ registry = "{locked.server.url("simple")}" }}')
        return text.replace(f"wheels = [\n    {locked.wheel_line},\n]",
                            f'sdist = {{ url = "{url}", hash = "sha256:{digest}" }}')

    edit_lock(case.project, change)
    assert "evil-6.6.tar.gz" in (case.project / "uv.lock").read_text() and "wheels" not in (
        case.project / "uv.lock").read_text().split("[[package]]")[1]
    refused(locked, case, "sdist 'evil-6.6.tar.gz' is not an sdist of good 1.0")


@pytest.mark.network  # the sdist's build backend comes from the index
def test_url_sdist_that_builds_another_distribution_is_refused(locked, case):
    # a URL source's archive may have any name (a GitHub archive is main.tar.gz): what it builds must be good 1.0
    digest = locked.serve("main.tar.gz", _sdist("evil", "6.6"))

    def change(text: str) -> str:
        text = text.replace(f'source = {{ url = "{locked.wheel_url}" }}',
                            f'source = {{ url = "{locked.server.url("main.tar.gz")}" }}')
        return text.replace(f"wheels = [\n    {locked.wheel_line},\n]", f'sdist = {{ hash = "sha256:{digest}" }}')

    edit_lock(case.project, change)
    rebuild_fails(case.project, case.cache, LAYER, env={**loopback_env(), "TMPDIR": str(case.root / "tmp")},
                  needles=["good==1.0: building main.tar.gz gave evil-6.6-", ".whl, which is evil 6.6, not good 1.0",
                           "fix: the file is not the release uv.lock names: run `uv lock` again and review the change"])
    assert case.victim.read_bytes() == CANARY
    assert not list(case.cache.glob("built/*/*/*.whl")), "the wrong wheel was cached"


IMAGE = "public.ecr.aws/lambda/python:3.12"


@pytest.mark.parametrize(("built", "problem"), [
    (["good-1.0"], None),
    (["good-6.6"], "good==1.0: building main.tar.gz gave good-6.6-py3-none-any.whl, which is good 6.6, not good 1.0"),
    (["evil-6.6"], "good==1.0: building main.tar.gz gave evil-6.6-py3-none-any.whl, which is evil 6.6, not good 1.0"),
    (["evil-2.0", "good-1.0"], None),  # two wheels: the one of the lock's name is taken
])
def test_a_wheel_built_in_the_image_must_be_the_release_the_lock_names(tmp_path, built, problem):
    """The wheel pip builds from an sdist in the Lambda image gets the check a wheel built on this machine gets
    (the URL source above): the lock's distribution and version, whatever the archive is called."""
    from hatch_lambda.fetch.sdists import wheels_built

    sdist = tmp_path / "sdists" / "main.tar.gz"
    sdist.parent.mkdir()
    sdist.write_bytes(_sdist("good", "1.0"))
    dist = Distribution("good", "1.0", "url", "https://example.com/main.tar.gz",
                        LockedFile(kind="sdist", filename="main.tar.gz", sha256="0" * 64))
    out = tmp_path / "built"  # what /built in the container holds after `pip wheel`
    for wheel in built:
        name, version = wheel.split("-")
        make_wheel(out, name, version, {f"{name}/__init__.py": b""})
    if problem is None:
        [wheel] = wheels_built([dist], {"good": sdist}, out, IMAGE)
        assert (wheel.dist, wheel.path.name, wheel.how) == (dist, "good-1.0-py3-none-any.whl",
                                                            f"sdist built in {IMAGE}")
        return
    with pytest.raises(LambdaBuildError) as raised:
        wheels_built([dist], {"good": sdist}, out, IMAGE)
    assert raised.value.problem == problem
    assert raised.value.fix == "the file is not the release uv.lock names: run `uv lock` again and review the change"


def test_an_sdist_the_image_built_no_wheel_of_is_named(tmp_path):
    from hatch_lambda.fetch.sdists import wheels_built

    dists = [Distribution(name, version, "registry", "https://example.com/simple",
                          LockedFile(kind="sdist", filename=f"{name}-{version}.tar.gz", sha256="0" * 64))
             for name, version in (("good", "1.0"), ("other", "2.0"))]
    make_wheel(tmp_path, "good", "1.0", {"good/__init__.py": b""})
    make_wheel(tmp_path, "evil", "2.0", {"evil/__init__.py": b""})
    with pytest.raises(LambdaBuildError) as raised:
        wheels_built(dists, {"good": tmp_path / "good-1.0.tar.gz", "other": tmp_path / "other-2.0.tar.gz"},
                     tmp_path, IMAGE)
    assert raised.value.problem == f"building other==2.0 in {IMAGE} produced no wheel of other"


def test_package_name_that_is_a_path_is_refused(locked, case):
    # the package and the edge to it; its requirement in [package.metadata] stays, as pyproject.toml says
    edit_lock(case.project, lambda text: text.replace('name = "good"\n', 'name = "../../good"\n')
              .replace('{ name = "good" }', '{ name = "../../good" }'))
    lock = (case.project / "uv.lock").resolve()
    build = hatchling_build(case.project, LAYER, cache=case.cache, check=False, env=loopback_env())
    assert not build.ok and "Traceback" not in build.output
    assert f"{lock}: package[0]: name '../../good' is not a valid package name" in build.output
    assert REWRITE in build.output


def test_uppercase_hex_digest_is_accepted_and_cached_by_its_lowercase(locked, case):
    with_wheel(locked, case, url=locked.wheel_url, hash=f"sha256:{locked.digest.upper()}")
    hatchling_build(case.project, LAYER, cache=case.cache, env=loopback_env())
    assert (case.entry(locked.digest) / "good-1.0-py3-none-any.whl").is_file()
    chosen = manifest(case.project / OUT)["targets"][LAYER]["distributions"]
    assert [(d["name"], d["version"], d["file"]) for d in chosen] == [("good", "1.0", "good-1.0-py3-none-any.whl")]


# --------------------------------------------------------------------------
# the last word: cached_path itself, for files that did not come through the lock's checks


def _dist(locked: Locked, filename: str) -> Distribution:
    return Distribution("good", "1.0", "url", locked.wheel_url,
                        LockedFile(kind="wheel", filename=filename, url=locked.wheel_url, sha256=locked.digest))


def test_cache_entry_that_is_a_link_outside_is_refused(locked, case, monkeypatch):
    for name, value in loopback_env().items():
        monkeypatch.setenv(name, value)
    elsewhere = case.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "good-1.0-py3-none-any.whl").write_bytes(CANARY)  # other bytes: it was unlinked as damaged
    entry = case.entry(locked.digest)
    entry.parent.mkdir(parents=True)
    entry.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(_dist(locked, "good-1.0-py3-none-any.whl"), case.cache, case.project)
    assert f"would be cached at {elsewhere / 'good-1.0-py3-none-any.whl'}, outside its place in the cache " \
           f"{entry}" in raised.value.problem
    assert f"remove {entry}" in raised.value.fix
    assert (elsewhere / "good-1.0-py3-none-any.whl").read_bytes() == CANARY
    assert sorted(p.name for p in elsewhere.iterdir()) == ["good-1.0-py3-none-any.whl"]


@pytest.mark.parametrize("filename", ["../../../victim", "/absolute/victim", "..", "sub/../../victim"])
def test_cached_path_never_leaves_the_cache(locked, case, filename):
    with pytest.raises(LambdaBuildError) as raised:
        cached_path(LockedFile(kind="wheel", filename=filename, url=locked.wheel_url, sha256=locked.digest),
                    case.cache)
    assert f"uv.lock: the file {filename!r} (sha256 {locked.digest}) would be cached at" in raised.value.problem
    assert not case.cache.exists()


@pytest.mark.parametrize("digest", ["../../../victim", "/tmp/x", "ab"])
def test_cache_entry_key_that_is_not_hex_is_refused(case, digest):
    with pytest.raises(LambdaBuildError) as raised:
        entry_dir(case.cache, "built", digest)
    assert f"cache entry built/{digest!r} is not a hex digest" in raised.value.problem


@pytest.mark.parametrize(("written", "shown"), [('"../../victim"', "'../../victim'"), ('"/etc"', "'/etc'"),
                                              ('"a\\\\..\\\\b"', "'a\\\\..\\\\b'"), ("3", "3")])
def test_subdirectory_outside_the_archive_is_refused(locked, case, written, shown):
    source = f'source = {{ url = "{locked.wheel_url}" }}'
    edit_lock(case.project, lambda text: text.replace(
        source, f'source = {{ url = "{locked.wheel_url}", subdirectory = {written} }}'))
    refused(locked, case, f"source.subdirectory {shown} is not a directory inside the archive")


# --------------------------------------------------------------------------
# subdirectories that resolve outside what was unpacked or checked out (links), refused where they are used


def test_sdist_subdirectory_outside_its_archive_is_refused(case):
    from hatch_lambda.fetch.builds import host_build

    sdist = case.root / "good-1.0.tar.gz"
    sdist.write_bytes(_sdist("good", "1.0"))
    outside = case.root / "outside"
    outside.mkdir()
    (outside / "pyproject.toml").write_text('[project]\nname = "good"\nversion = "1.0"\n')
    dist = Distribution("good", "1.0", "url", "https://example.invalid/good-1.0.tar.gz",
                        LockedFile(kind="sdist", filename=sdist.name, url="https://example.invalid/good-1.0.tar.gz",
                                   sha256=hashlib.sha256(sdist.read_bytes()).hexdigest()),
                        subdirectory=str(outside))
    with pytest.raises(LambdaBuildError) as raised:
        host_build(dist, sdist, case.root / "work", case.cache, lambda line: None)
    assert f"good==1.0: good-1.0.tar.gz has no directory {str(outside)!r} (the lock's subdirectory)" in \
        raised.value.problem
    assert sorted(p.name for p in outside.iterdir()) == ["pyproject.toml"], "something was built in it"


def test_git_subdirectory_that_is_a_link_out_of_the_checkout_is_refused(case):
    from hatch_lambda.fetch.git import GitSource, checkout

    outside = case.root / "outside"
    outside.mkdir()
    (outside / "pyproject.toml").write_text('[project]\nname = "good"\nversion = "1.0"\n')
    repo = case.root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "pkg").symlink_to(outside, target_is_directory=True)
    git(repo, "add", "pkg")
    git(repo, "commit", "-q", "-m", "a link out")
    commit = git(repo, "rev-parse", "HEAD")
    source = GitSource(url=repo.as_uri(), commit=commit, subdirectory="pkg")
    with pytest.raises(LambdaBuildError) as raised:
        checkout(source, case.root / "checkout", "good")
    assert f"good: {source.label}: the subdirectory 'pkg' leads outside the checkout" in raised.value.problem
    assert sorted(p.name for p in outside.iterdir()) == ["pyproject.toml"]
