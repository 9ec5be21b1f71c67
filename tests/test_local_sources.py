"""Local sources (path dependencies, workspace members) are built from a copy: their trees are never written.

Each test snapshots every path of the trees a build reads (kind, mode, bytes or
link target, modification time, directories included), runs a real build
(``python -m hatchling build`` in a subprocess, projects locked by ``uv lock``),
and compares: a setuptools backend writes ``build/`` and ``*.egg-info`` into the
tree it builds, so building in place would show. The version a VCS plugin
reads from git is the one it reads in place, and git's files are left alone too.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path

import pytest
import tomli_w

from helpers.builds import assert_failed_cleanly, hatchling_build
from helpers.projects import LAYER, copy_fixture, git, uv_lock

pytestmark = pytest.mark.network  # build backends (setuptools, hatch-vcs) come from the package index


def snapshot(root: Path, leave_out: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every path below ``root`` (and ``root``): kind and mode, modification time, bytes or link target.
    ``leave_out`` (the output directory's parent, ``dist``) is made first, so that making the output
    directory in it does not count."""
    for directory in leave_out:
        directory.mkdir(exist_ok=True)
    found: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if Path(directory, name) not in leave_out]
        for path in [Path(directory), *(Path(directory, name) for name in dirs + files)]:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                content: bytes | str | None = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = path.read_bytes()
            else:
                content = None
            found[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, content)
    return found


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted({path for path in before.keys() | after.keys() if before.get(path) != after.get(path)})


def layer_names(project: Path) -> set[str]:
    with zipfile.ZipFile(project / "dist" / "lambda" / "layer.zip") as archive:
        return set(archive.namelist())


def app_project(directory: Path, dependency: str, source: dict, *, marker: bool = True) -> Path:
    """A project using ``dependency`` from ``source`` (a ``[tool.uv.sources]`` entry)."""
    (directory / "src" / "app").mkdir(parents=True)
    if marker:
        (directory / ".git").mkdir()  # the lock search stops here
    (directory / "src" / "app" / "__init__.py").write_text("")
    (directory / "pyproject.toml").write_text(tomli_w.dumps({
        "build-system": {"requires": ["hatchling", "hatch-lambda"], "build-backend": "hatchling.build"},
        "project": {"name": "app", "version": "0.1.0", "requires-python": ">=3.11", "dependencies": [dependency]},
        "tool": {"uv": {"sources": {dependency: source}},
                 "hatch": {"build": {"targets": {"wheel": {"packages": ["src/app"]}, LAYER: {"python": "3.11"}}}}},
    }))
    return directory


def setuptools_lib(directory: Path, pyproject: dict) -> Path:
    (directory / "src" / "sharedlib").mkdir(parents=True)
    (directory / "src" / "sharedlib" / "__init__.py").write_text("VALUE = 'from lib'\n")
    (directory / "pyproject.toml").write_text(tomli_w.dumps(pyproject))
    return directory


SETUPTOOLS = {"requires": ["setuptools>=68"], "build-backend": "setuptools.build_meta"}


def test_a_path_dependency_outside_the_project_built_by_setuptools_is_left_as_it_was(tmp_path, cache):
    lib = setuptools_lib(tmp_path / "lib", {
        "build-system": SETUPTOOLS,
        "project": {"name": "shared-lib", "version": "0.4.0", "readme": "README.md", "requires-python": ">=3.11"},
        "tool": {"setuptools": {"packages": {"find": {"where": ["src"]}}}},
    })
    (tmp_path / "README-lib.md").write_text("# shared-lib\n")
    (lib / "README.md").symlink_to("../README-lib.md")  # a link out of the tree, to a file: read through it
    (lib / "src" / "sharedlib" / "build").mkdir()  # "build" below the top is a package, copied
    (lib / "src" / "sharedlib" / "build" / "__init__.py").write_text("")
    (lib / "src" / "sharedlib" / "alias.py").symlink_to("__init__.py")  # a link inside the tree
    # What an earlier build in place left: setuptools would put it in the wheel again; the copy has no build/.
    (lib / "build" / "lib" / "sharedlib").mkdir(parents=True)
    (lib / "build" / "lib" / "sharedlib" / "stale.py").write_text("STALE = True\n")
    app = app_project(tmp_path / "app", "shared-lib", {"path": "../lib"})
    uv_lock(app)  # uv itself reads the metadata in place (src/shared_lib.egg-info): the snapshot comes after
    assert 'source = { directory = "../lib" }' in (app / "uv.lock").read_text()
    before = snapshot(tmp_path, leave_out=(app / "dist",))

    build = hatchling_build(app, LAYER, cache=cache)

    assert changes(before, snapshot(tmp_path, leave_out=(app / "dist",))) == []
    names = layer_names(app)
    assert {"python/sharedlib/__init__.py", "python/sharedlib/alias.py", "python/sharedlib/build/__init__.py",
            "python/shared_lib-0.4.0.dist-info/METADATA"} <= names
    assert "python/sharedlib/stale.py" not in names
    assert "shared-lib 0.4.0: built from ../lib" in build.output


def test_an_editable_workspace_member_and_path_dependency_are_left_as_they_were(tmp_path, cache):
    """dynamic-app: its member (setuptools) computes its dependencies, so its metadata is read through the
    backend too (on a copy in the cache); the path dependency is editable."""
    project = copy_fixture("dynamic-app", tmp_path)
    before = snapshot(project, leave_out=(project / "dist",))

    hatchling_build(project, LAYER, cache=cache)

    assert changes(before, snapshot(project, leave_out=(project / "dist",))) == []
    names = layer_names(project)
    assert any(name.startswith("python/dynmember/") for name in names), sorted(names)
    assert any(name.startswith("python/sdk/") for name in names), sorted(names)


def _commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def versioned_project(tmp_path: Path, layout: str) -> tuple[Path, Path, str]:
    """A library whose version comes from git (tag v1.2.3, then one more commit), and a project using it:
    the repository, the project, the commit."""
    if layout.endswith("setuptools-scm"):
        repo = lib = tmp_path / ("vlib" if layout.startswith("own") else "vlib-repository")
        setuptools_lib(lib, {
            "build-system": {"requires": ["setuptools>=68", "setuptools-scm>=8"],
                             "build-backend": "setuptools.build_meta"},
            "project": {"name": "versioned-lib", "dynamic": ["version"], "requires-python": ">=3.11"},
            "tool": {"setuptools_scm": {}, "setuptools": {"packages": {"find": {"where": ["src"]}}}},
        })
        app = app_project(tmp_path / "app", "versioned-lib", {"path": "../vlib"})
    else:
        repo = tmp_path / "mono"
        lib = repo / "libs" / "vlib"
        (lib / "src" / "sharedlib").mkdir(parents=True)
        (lib / "src" / "sharedlib" / "__init__.py").write_text("VALUE = 'from lib'\n")
        (lib / "pyproject.toml").write_text(tomli_w.dumps({
            "build-system": {"requires": ["hatchling", "hatch-vcs"], "build-backend": "hatchling.build"},
            "project": {"name": "versioned-lib", "dynamic": ["version"], "requires-python": ">=3.11"},
            "tool": {"hatch": {"version": {"source": "vcs", "raw-options": {"root": "../.."}},
                               "build": {"targets": {"wheel": {"packages": ["src/sharedlib"]}}}}},
        }))
        app = app_project(repo / "app", "versioned-lib", {"path": "../libs/vlib"}, marker=False)
    (repo / ".gitignore").write_text("dist/\n.venv/\n*.egg-info/\nuv.lock\n")
    git(repo, "init", "-q", "-b", "main")
    _commit(repo, "first")
    git(repo, "tag", "v1.2.3")
    (lib / "src" / "sharedlib" / "__init__.py").write_text("VALUE = 'later'\n")
    head = _commit(repo, "later")
    if layout.startswith("linked"):  # the library is a linked worktree: its .git is a file naming a gitdir
        git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "vlib"), "HEAD")
    uv_lock(app)
    assert "versioned-lib" in (app / "uv.lock").read_text()
    return repo, app, head


@pytest.mark.parametrize("layout", ["own-repository-setuptools-scm", "linked-worktree-setuptools-scm",
                                    "monorepo-hatch-vcs"])
def test_a_version_from_git_is_the_one_read_in_place_and_git_is_left_alone(tmp_path, cache, layout):
    """The copy gets a read-only view of the history: the tag, the distance, the commit, and a clean tree."""
    _repo, app, head = versioned_project(tmp_path, layout)
    before = snapshot(tmp_path, leave_out=(app / "dist",))

    hatchling_build(app, LAYER, cache=cache)

    assert changes(before, snapshot(tmp_path, leave_out=(app / "dist",))) == []
    versions = {m.group(1) for name in layer_names(app)
                if (m := re.match(r"python/versioned_lib-([^/]+)\.dist-info/METADATA$", name))}
    assert len(versions) == 1, versions
    version = versions.pop()
    match = re.fullmatch(r"1\.2\.4\.dev1\+g([0-9a-f]{7,40})", version)  # one commit after v1.2.3, not dirty
    assert match and head.startswith(match.group(1)), (version, head)


def test_a_version_from_git_other_than_the_one_the_lock_records_is_refused(tmp_path, cache):
    """uv records no version for a dynamic one; a lock that does (older uv did) must name what the tree builds."""
    _repo, app, _head = versioned_project(tmp_path, "own-repository-setuptools-scm")
    lock = app / "uv.lock"
    lock.write_text(lock.read_text().replace('name = "versioned-lib"\n', 'name = "versioned-lib"\nversion = "1.2.3"\n'))

    build = hatchling_build(app, LAYER, cache=cache, check=False)

    assert_failed_cleanly(build, "versioned-lib==1.2.3: building vlib gave versioned_lib-1.2.4.dev1+g",
                          "not versioned-lib 1.2.3", f"fix: {(tmp_path / 'vlib').resolve()} changed since uv.lock "
                          "was written: run `uv lock`")
    assert build.result.returncode == 2
    assert not (app / "dist" / "lambda" / "layer.zip").exists()


def test_a_link_out_of_the_tree_the_build_needs_is_named_in_the_error(tmp_path, cache):
    lib = setuptools_lib(tmp_path / "lib", {
        "build-system": SETUPTOOLS,
        "project": {"name": "shared-lib", "version": "0.4.0", "requires-python": ">=3.11"},
        "tool": {"setuptools": {"packages": ["sharedlib", "sharedlib.extra"], "package-dir": {"": "src"}}},
    })
    (tmp_path / "extra-code").mkdir()
    (tmp_path / "extra-code" / "__init__.py").write_text("")
    (lib / "src" / "sharedlib" / "extra").symlink_to("../../../extra-code", target_is_directory=True)
    app = app_project(tmp_path / "app", "shared-lib", {"path": "../lib"})
    uv_lock(app)
    before = snapshot(tmp_path / "lib")

    build = hatchling_build(app, LAYER, cache=cache, check=False)

    assert_failed_cleanly(build, "building a wheel of shared-lib==0.4.0 (directory ../lib) failed",
                          f"left out these links out of {lib.resolve()}",
                          "src/sharedlib/extra -> ../../../extra-code",
                          f"fix: make that link point inside {lib.resolve()}, or put what it points to there")
    assert build.result.returncode == 2
    assert changes(before, snapshot(tmp_path / "lib")) == []


def _unreadable(path: Path) -> None:
    """A file of the tree that cannot be read: no permission, or (for root, whom permissions do not stop) a
    link to a file every read of which fails."""
    if os.geteuid() != 0:
        path.write_text("SECRET = 1\n")
        path.chmod(0)
    else:
        path.symlink_to("/proc/self/mem")  # a regular file whose first page is never mapped: EIO


def test_a_file_that_cannot_be_read_is_one_error_naming_it(tmp_path, cache):
    lib = setuptools_lib(tmp_path / "lib", {
        "build-system": SETUPTOOLS,
        "project": {"name": "shared-lib", "version": "0.4.0", "requires-python": ">=3.11"},
        "tool": {"setuptools": {"packages": {"find": {"where": ["src"]}}}},
    })
    app = app_project(tmp_path / "app", "shared-lib", {"path": "../lib"})
    uv_lock(app)
    _unreadable(lib / "src" / "sharedlib" / "secret.py")

    build = hatchling_build(app, LAYER, cache=cache, check=False)

    assert_failed_cleanly(build, f"shared-lib==0.4.0 (directory ../lib): {lib.resolve()}/src/sharedlib/secret.py "
                                 f"cannot be read", f"so {lib.resolve()} cannot be copied to be built",
                          "fix: make it readable (chmod u+r), or move it out of")
    assert build.result.returncode == 2
    assert not (lib / "build").exists() and not list(lib.rglob("*.egg-info"))
