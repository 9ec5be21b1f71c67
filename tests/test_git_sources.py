"""Git sources: a local repository, locked by ``uv lock`` through ``git+file://`` URLs, built into the layer.

The repository holds two packages: ``tagged`` in a subdirectory (locked by a
tag), and ``moving`` at its root (locked by a branch that moves on after the
lock was written). A third dependency pins a commit by ``rev``. The build must
use exactly the locked commits, cache the built wheels by URL, commit and
subdirectory, and refuse a commit the repository does not have.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tomli_w

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.git import parse_git_source
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.runtime.target import Target

from helpers.builds import assert_failed_cleanly, hatchling_build, manifest
from helpers.lambda_run import invoke, lambda_root
from helpers.projects import LAYER, git, uv_lock

COMMIT = "c25dbc07fdc03aed81aff5c705457c0b9c54a837"


# --- the lock's git source strings ------------------------------------------------


@pytest.mark.parametrize(
    "text, url, subdirectory, ref",
    [
        (f"https://github.com/org/repo?tag=v1.0#{COMMIT}", "https://github.com/org/repo", None, "tag v1.0"),
        (f"https://github.com/org/repo?branch=main#{COMMIT}", "https://github.com/org/repo", None, "branch main"),
        (f"https://github.com/org/repo?rev=c25dbc0#{COMMIT}", "https://github.com/org/repo", None, "rev c25dbc0"),
        (f"https://github.com/org/repo#{COMMIT}", "https://github.com/org/repo", None, None),
        (f"file:///srv/repo?subdirectory=libs%2Fcore&tag=v2#{COMMIT}", "file:///srv/repo", "libs/core", "tag v2"),
        (f"git+ssh://git@example.com/org/repo.git?branch=x#{COMMIT}", "ssh://git@example.com/org/repo.git", None,
         "branch x"),
    ],
)
def test_git_source_forms(text, url, subdirectory, ref):
    source = parse_git_source(text)
    assert (source.url, source.commit, source.subdirectory, source.ref) == (url, COMMIT, subdirectory, ref)


@pytest.mark.parametrize(
    "text, message",
    [
        ("https://github.com/org/repo?tag=v1.0", "pins no commit"),
        ("https://github.com/org/repo#main", "pins no commit"),
        (f"https://github.com/org/repo?subdirectory=..%2F..%2Fetc#{COMMIT}", "subdirectory outside the repository"),
    ],
)
def test_bad_git_sources_are_refused(text, message):
    with pytest.raises(LambdaBuildError, match=message):
        parse_git_source(text)


# --- a real repository -----------------------------------------------------------


def write_package(directory: Path, name: str, version: str, body: str, dependencies: list[str]) -> None:
    (directory / "src" / name).mkdir(parents=True, exist_ok=True)
    (directory / "src" / name / "__init__.py").write_text(body)
    (directory / "pyproject.toml").write_text(tomli_w.dumps({
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": name, "version": version, "requires-python": ">=3.11", "dependencies": dependencies},
        "tool": {"hatch": {"build": {"targets": {"wheel": {"packages": [f"src/{name}"]}}}}},
    }))


@pytest.fixture
def repository(tmp_path) -> tuple[Path, str]:
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_package(repo, "moving", "1.0.0", "WHICH = 'locked'\n", ["six>=1.16"])
    write_package(repo / "pkgs" / "tagged", "tagged", "0.5.0", "WHICH = 'tagged'\n", [])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    git(repo, "tag", "v0.5.0")
    return repo, git(repo, "rev-parse", "HEAD")


def git_project(directory: Path, repo: Path, first: str) -> Path:
    package = directory / "src" / "gitapp"
    package.mkdir(parents=True)
    (directory / ".git").mkdir()
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(
        "import moving, pinned_alias, six, tagged\n\n"
        "def handler(event, context):\n"
        "    return {'moving': moving.WHICH, 'tagged': tagged.WHICH, 'six': six.__version__}\n"
    )
    url = repo.as_uri()
    (directory / "pyproject.toml").write_text(tomli_w.dumps({
        "build-system": {"requires": ["hatchling", "hatch-lambda"], "build-backend": "hatchling.build"},
        "project": {"name": "gitapp", "version": "0.1.0", "requires-python": ">=3.11",
                    "dependencies": ["moving", "tagged", "pinned-alias"]},
        "tool": {
            "uv": {"sources": {
                "moving": {"git": url, "branch": "main"},
                "tagged": {"git": url, "subdirectory": "pkgs/tagged", "tag": "v0.5.0"},
                "pinned-alias": {"git": url, "subdirectory": "pkgs/pinned", "rev": first[:10]},
            }},
            "hatch": {"build": {"targets": {"wheel": {"packages": ["src/gitapp"]},
                                            LAYER: {"python": "3.11",
                                                    "functions": {"api": {"packages": ["src/gitapp"]}}}}}},
        },
    }))
    return directory


@pytest.fixture
def locked_project(tmp_path, repository) -> tuple[Path, Path, str]:
    repo, first = repository
    # A third package, pinned by rev, in a subdirectory of the same commit.
    write_package(repo / "pkgs" / "pinned", "pinned_alias", "0.1.0", "WHICH = 'pinned'\n", [])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pinned package")
    git(repo, "tag", "-f", "v0.5.0")
    first = git(repo, "rev-parse", "HEAD")
    project = git_project(tmp_path / "gitapp", repo, first)
    uv_lock(project)
    # The branch moves on after locking: the build must still use the locked commit.
    (repo / "src" / "moving" / "__init__.py").write_text("WHICH = 'moved on'\n")
    git(repo, "commit", "-qam", "later")
    return project, repo, first


def test_git_sources_resolve_to_the_locked_commits(locked_project):
    project, _repo, first = locked_project
    resolution = resolve(project, Target("3.11"))
    git_dists = {d.name: d for d in resolution.distributions if d.source_kind == "git"}
    assert sorted(git_dists) == ["moving", "pinned-alias", "tagged"]
    sources = {name: parse_git_source(d.source) for name, d in git_dists.items()}
    assert {s.commit for s in sources.values()} == {first}
    assert sources["tagged"].subdirectory == "pkgs/tagged" and sources["tagged"].ref == "tag v0.5.0"
    assert sources["moving"].ref == "branch main" and sources["pinned-alias"].ref == f"rev {first[:10]}"
    assert "six" in resolution.names()


@pytest.mark.network
def test_git_dependencies_in_a_layer(locked_project, cache, tmp_path):
    project, repo, _first = locked_project
    private = tmp_path / "cache"
    shutil.copytree(cache / "files", private / "files") if (cache / "files").is_dir() else private.mkdir()
    build = hatchling_build(project, LAYER, cache=private)
    assert "moving==1.0.0: fetching" in build.output and "tagged==0.5.0: fetching" in build.output
    section = manifest(build.out())["targets"][LAYER]
    kinds = {d["name"]: d["source"] for d in section["distributions"]}
    assert kinds == {"moving": "git", "pinned-alias": "git", "tagged": "git", "six": "registry"}
    root = lambda_root(tmp_path / "lambda", "3.11", layer=build.out("layer.zip"), function=build.out("api.zip"))
    result = invoke(root, "gitapp.handler").result
    assert result["moving"] == "locked" and result["tagged"] == "tagged"
    # Cached by URL, commit and subdirectory: with the repository gone, the next build needs nothing from it.
    layer = build.out("layer.zip").read_bytes()
    shutil.rmtree(repo)
    again = hatchling_build(project, LAYER, cache=private, args=["-c"])
    assert "fetching" not in again.output
    assert build.out("layer.zip").read_bytes() == layer
    assert len(list((private / "git").rglob("*.whl"))) == 3


@pytest.mark.network
def test_a_commit_the_repository_does_not_have_is_refused(locked_project, cache, tmp_path):
    project, repo, first = locked_project
    hatchling_build(project, LAYER, cache=cache)
    before = project.joinpath("dist", "lambda", "layer.zip").read_bytes()
    missing = "0" * 40
    lock = project / "uv.lock"
    lock.write_text(lock.read_text().replace(f"tag=v0.5.0#{first}", f"tag=v0.5.0#{missing}"))
    build = hatchling_build(project, LAYER, cache=tmp_path / "empty-cache", check=False)
    assert_failed_cleanly(build, f"tagged==0.5.0: {repo.as_uri()} has no commit {missing} (the lock pins it by tag v0.5.0)",
                          "uv lock --upgrade-package tagged")
    assert project.joinpath("dist", "lambda", "layer.zip").read_bytes() == before
