"""Credentials for private indexes, against a server on 127.0.0.1 that demands basic auth.

Each way uv users give credentials works (``UV_INDEX_<NAME>_USERNAME/PASSWORD``,
the index URL in pyproject.toml, ``.netrc``, the ``keyring`` command); a
refusal says where credentials were looked for, never what they are; a
credential is sent to its own origin only, also across redirects; and a
password in a URL is never shown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from hatch_lambda.errors import LambdaBuildError, redact
from hatch_lambda.fetch.download import RetryPolicy
from hatch_lambda.fetch.files import fetch_one
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.lockfile.wheels import LockedFile

from helpers.wheelserver import WheelServer, cache_files, loopback_env, self_signed

NAME = "private-1.0-py3-none-any.whl"
BODY = os.urandom(50_000)
DIGEST = hashlib.sha256(BODY).hexdigest()
FAST = RetryPolicy(attempts=2, timeout=5, backoff=0.01)
SECRET = "s3cr3t-Pa55"


@pytest.fixture
def loopback(monkeypatch):
    """No proxy, no .netrc, no keyring and no index credentials but what a test sets."""
    for name, value in loopback_env().items():
        monkeypatch.setenv(name, value)
    uv = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_KEYRING_PROVIDER")
    for name in list(os.environ):
        if (name.lower().endswith("_proxy") and name.lower() != "no_proxy") or name.startswith(uv):
            monkeypatch.delenv(name)


@pytest.fixture
def index(loopback):
    """A private index: every request must carry alice's password."""
    with WheelServer({NAME: BODY}) as server:
        server.require_auth("alice", SECRET)
        yield server


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _project(directory: Path, url: str, name: str = "private-repo") -> Path:
    """A project whose pyproject.toml declares one index."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "app"\nversion = "1"\n\n[[tool.uv.index]]\nname = "{name}"\nurl = "{url}"\n',
        encoding="utf-8")
    return directory


def _dist(server: WheelServer, *, registry: str | None = None, url: str | None = None) -> Distribution:
    registry = registry or f"http://127.0.0.1:{server.port}/simple"
    return Distribution("private", "1.0", "registry", registry,
                        LockedFile(kind="wheel", filename=NAME, url=url or server.url(NAME), sha256=DIGEST))


def _fetch(project: Path, dist: Distribution) -> Path:
    return fetch_one(dist, project / "cache", project, policy=FAST)


def _refused(project: Path, dist: Distribution) -> LambdaBuildError:
    with pytest.raises(LambdaBuildError) as raised:
        _fetch(project, dist)
    assert SECRET not in str(raised.value)
    assert cache_files(project / "cache") == []
    return raised.value


def test_index_credentials_from_uv_index_variables(tmp_path, index, monkeypatch):
    project = _project(tmp_path / "app", f"http://127.0.0.1:{index.port}/simple/")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_USERNAME", "alice")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_PASSWORD", SECRET)
    assert _fetch(project, _dist(index)).read_bytes() == BODY
    assert index.authorization(NAME) == [_basic("alice", SECRET)]  # sent at once, not after a 401


def test_refused_index_credentials_name_their_source_not_the_secret(tmp_path, index, monkeypatch):
    project = _project(tmp_path / "app", f"http://127.0.0.1:{index.port}/simple")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_USERNAME", "alice")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_PASSWORD", "wrong-" + SECRET)
    error = _refused(project, _dist(index))
    assert (f"private==1.0: downloading {index.url(NAME)} failed: HTTP 401 Unauthorized: the credentials from "
            f"UV_INDEX_PRIVATE_REPO_USERNAME/PASSWORD (user 'alice') were refused by 127.0.0.1:{index.port}"
            ) == error.problem
    assert "UV_INDEX_<NAME>_USERNAME" in error.fix
    assert len(index.served(NAME)) == 1  # a refusal is not retried


def test_index_credentials_in_the_index_url(tmp_path, index):
    project = _project(tmp_path / "app", f"http://alice:{SECRET}@127.0.0.1:{index.port}/simple")
    assert _fetch(project, _dist(index)).read_bytes() == BODY
    assert index.authorization(NAME) == [_basic("alice", SECRET)]


def test_netrc_credentials(tmp_path, index, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login alice password {SECRET}\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert _fetch(tmp_path, _dist(index)).read_bytes() == BODY
    netrc.write_text("machine 127.0.0.1 login alice password nope\n", encoding="utf-8")
    error = _refused(tmp_path / "other", _dist(index))
    assert f"the credentials from .netrc ({netrc}) (user 'alice') were refused by 127.0.0.1:{index.port}" in str(error)


def test_no_credentials_says_where_it_looked(tmp_path, index):
    project = _project(tmp_path / "app", f"http://127.0.0.1:{index.port}/simple")
    error = _refused(project, _dist(index))
    assert error.problem.endswith(
        f"failed: HTTP 401 Unauthorized: no credentials found for 127.0.0.1:{index.port} (looked in "
        "UV_INDEX_PRIVATE_REPO_USERNAME/PASSWORD, the URL of index 'private-repo' in pyproject.toml, "
        ".netrc (/nonexistent/netrc), keyring (off: UV_KEYRING_PROVIDER is not subprocess))")
    assert index.authorization(NAME) == [None]


def _fake_keyring(directory: Path, answers: dict[str, str]) -> Path:
    """A ``keyring`` command on PATH: logs its arguments, prints the answer for ``get SERVICE USER``."""
    directory.mkdir()
    log = directory / "calls.jsonl"
    script = directory / "keyring"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"answers = {json.dumps(answers)}\n"
        "key = ' '.join(sys.argv[2:])\n"
        "if key not in answers:\n"
        "    sys.exit(1)\n"
        "print(answers[key])\n",
        encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def test_keyring_with_a_known_username(tmp_path, index, monkeypatch):
    """A username (here in UV_INDEX_<NAME>_USERNAME) and the index URL: ``keyring get <index-url> <user>``."""
    index_url = f"http://127.0.0.1:{index.port}/simple"
    project = _project(tmp_path / "app", index_url)
    log = _fake_keyring(tmp_path / "bin", {f"{index_url} alice": SECRET})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_KEYRING_PROVIDER", "subprocess")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_USERNAME", "alice")
    assert _fetch(project, _dist(index)).read_bytes() == BODY
    assert _calls(log) == [["get", index_url, "alice"]]
    assert index.authorization(NAME) == [_basic("alice", SECRET)]


def test_keyring_without_a_username_is_asked_after_a_refusal(tmp_path, index, monkeypatch):
    """No username: a first request without credentials, then ``keyring get <url> --mode creds``, then the host."""
    project = _project(tmp_path / "app", f"http://127.0.0.1:{index.port}/simple")
    host = f"127.0.0.1:{index.port}"
    log = _fake_keyring(tmp_path / "bin", {f"{host} --mode creds": f"alice\n{SECRET}"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_KEYRING_PROVIDER", "subprocess")
    assert _fetch(project, _dist(index)).read_bytes() == BODY
    assert _calls(log) == [["get", f"http://{host}/simple", "--mode", "creds"], ["get", host, "--mode", "creds"]]
    assert index.authorization(NAME) == [None, _basic("alice", SECRET)]


def test_keyring_is_asked_at_once_when_the_index_always_authenticates(tmp_path, index, monkeypatch):
    """``authenticate = "always"``: the keyring is asked before the first request, which carries its answer."""
    host = f"127.0.0.1:{index.port}"
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[[tool.uv.index]]\nname = "eager"\nurl = "http://{host}/simple"\nauthenticate = "always"\n',
        encoding="utf-8")
    log = _fake_keyring(tmp_path / "bin", {f"http://{host}/simple --mode creds": f"alice\n{SECRET}"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_KEYRING_PROVIDER", "subprocess")
    assert _fetch(project, _dist(index)).read_bytes() == BODY
    assert _calls(log) == [["get", f"http://{host}/simple", "--mode", "creds"]]
    assert index.authorization(NAME) == [_basic("alice", SECRET)]


def test_index_credentials_in_the_legacy_extra_index_url(tmp_path, index):
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[tool.uv]\nextra-index-url = ["http://alice:{SECRET}@127.0.0.1:{index.port}/simple"]\n', encoding="utf-8")
    assert _fetch(project, _dist(index)).read_bytes() == BODY
    assert index.authorization(NAME) == [_basic("alice", SECRET)]


def test_keyring_is_not_asked_when_the_index_needs_no_credentials(tmp_path, loopback, monkeypatch):
    log = _fake_keyring(tmp_path / "bin", {})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_KEYRING_PROVIDER", "subprocess")
    with WheelServer({NAME: BODY}) as server:
        assert _fetch(tmp_path, _dist(server)).read_bytes() == BODY
    assert _calls(log) == []


def test_refused_keyring_answer_names_the_keyring(tmp_path, index, monkeypatch):
    host = f"127.0.0.1:{index.port}"
    _fake_keyring(tmp_path / "bin", {f"{host} --mode creds": "alice\nwrong"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_KEYRING_PROVIDER", "subprocess")
    error = _refused(tmp_path, _dist(index))
    assert f"the credentials from keyring ({host}) (user 'alice') were refused by {host}" in error.problem


def test_credentials_are_not_sent_across_a_redirect_to_another_origin(tmp_path, index, monkeypatch):
    """Index A (127.0.0.1, credentials from UV_INDEX_...) redirects to B on another port: B gets nothing."""
    project = _project(tmp_path / "app", f"http://127.0.0.1:{index.port}/simple")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_USERNAME", "alice")
    monkeypatch.setenv("UV_INDEX_PRIVATE_REPO_PASSWORD", SECRET)
    with WheelServer({NAME: BODY}) as files:
        index.redirect(NAME, files.url(NAME))
        assert _fetch(project, _dist(index)).read_bytes() == BODY
        assert index.authorization(NAME) == [_basic("alice", SECRET)]
        assert files.authorization(NAME) == [None]


def test_each_hop_gets_its_own_origins_credentials(tmp_path, index, monkeypatch):
    """A redirect from 127.0.0.1 (alice, from .netrc) to localhost (bob, from .netrc): each sees only its own."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login alice password {SECRET}\nmachine localhost login bob password b0b\n",
                     encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with WheelServer({NAME: BODY}) as files:
        files.require_auth("bob", "b0b")
        index.redirect(NAME, files.url(NAME, host="localhost"))
        assert _fetch(tmp_path, _dist(index)).read_bytes() == BODY
        assert index.authorization(NAME) == [_basic("alice", SECRET)]
        assert files.authorization(NAME) == [_basic("bob", "b0b")]


def test_a_password_in_a_url_is_never_shown(tmp_path, loopback):
    """A direct URL with ``user:password@`` (as uv locks one): used to log in, shown as ``user:****@``."""
    with WheelServer({NAME: BODY}) as server:
        server.require_auth("alice", SECRET)
        url = server.url("missing-1.0-py3-none-any.whl", userinfo=f"alice:{SECRET}")
        dist = Distribution("private", "1.0", "url", url, LockedFile(
            kind="wheel", filename="missing-1.0-py3-none-any.whl", url=url, sha256=DIGEST))
        with pytest.raises(LambdaBuildError) as raised:
            _fetch(tmp_path, dist)
        assert server.authorization("missing-1.0-py3-none-any.whl") == [_basic("alice", SECRET)]
    assert f"downloading http://alice:****@127.0.0.1:{server.port}/missing" in str(raised.value)
    assert "HTTP 404" in str(raised.value) and SECRET not in str(raised.value)
    assert redact(f"see https://aws:{SECRET}@x.example/simple and git+https://{SECRET}@github.com/o/r") == \
        "see https://aws:****@x.example/simple and git+https://****@github.com/o/r"


def test_index_credentials_in_uv_extra_index_url(tmp_path, index, monkeypatch):
    """An index given in the environment (as for Azure Artifacts: a token as the URL's password)."""
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", f"https://pypi.org/simple http://alice:{SECRET}@127.0.0.1:{index.port}/simple")
    assert _fetch(tmp_path, _dist(index)).read_bytes() == BODY
    assert index.authorization(NAME) == [_basic("alice", SECRET)]


def test_an_index_that_must_never_authenticate_gets_no_credentials(tmp_path, index, monkeypatch):
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[[tool.uv.index]]\nname = "open"\nurl = "http://127.0.0.1:{index.port}/simple"\nauthenticate = "never"\n',
        encoding="utf-8")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login alice password {SECRET}\n", encoding="utf-8")
    monkeypatch.setenv("NETRC", str(netrc))
    error = _refused(project, _dist(index))
    assert index.authorization(NAME) == [None]
    assert error.problem.endswith(f"no credentials found for 127.0.0.1:{index.port} (looked in none: "
                                  "authenticate = \"never\" for index 'open' in pyproject.toml)")


def test_a_git_url_with_a_token_is_shown_without_it():
    """The label of a git source goes to the build's log: its token is hidden there too."""
    from hatch_lambda.fetch.git import parse_git_source

    source = parse_git_source(f"git+https://{SECRET}@github.com/o/r?tag=v1#{'a' * 40}")
    assert source.label == f"https://****@github.com/o/r at {'a' * 12} (tag v1)"
    assert SECRET in source.url  # still used to fetch


def test_a_build_downloads_from_a_private_index(tmp_path, loopback):
    """``uv lock`` and a real build against an index on 127.0.0.1 that demands basic auth.

    With ``UV_INDEX_PRIVATE_USERNAME``/``_PASSWORD`` both work (the build's one set of credentials reaches
    every download); without them the build fails with one message, and the previous artifacts stay.
    """
    import subprocess

    import tomli_w

    from helpers.builds import assert_failed_cleanly, digests, hatchling_build, zip_names
    from helpers.projects import LAYER, make_wheel, uv_command
    from helpers.wheelserver import simple_page

    wheel = make_wheel(tmp_path / "wheels", "privdep", "1.0", {"privdep/__init__.py": b"X = 1\n"})
    with WheelServer({wheel.name: wheel.read_bytes(), "simple/privdep/": simple_page(wheel)}) as server:
        server.require_auth("alice", SECRET)
        project = tmp_path / "app"
        (project / "src" / "app").mkdir(parents=True)
        (project / "src" / "app" / "__init__.py").write_text("")
        (project / "pyproject.toml").write_text(tomli_w.dumps({
            "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
            "project": {"name": "app", "version": "0.1.0", "requires-python": ">=3.11", "dependencies": ["privdep"]},
            "tool": {
                "uv": {"index": [{"name": "private", "url": f"http://127.0.0.1:{server.port}/simple",
                                  "default": True}]},
                "hatch": {"build": {"targets": {"wheel": {"packages": ["src/app"]},
                                                "lambda-layer": {"python": "3.11"}}}},
            },
        }), encoding="utf-8")
        login = {"UV_INDEX_PRIVATE_USERNAME": "alice", "UV_INDEX_PRIVATE_PASSWORD": SECRET}
        locked = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=300,
                                env={**os.environ, **login})
        assert locked.returncode == 0, locked.stderr
        assert SECRET not in (project / "uv.lock").read_text(encoding="utf-8")
        build = hatchling_build(project, LAYER, cache=tmp_path / "cache", env=login)
        assert "python/privdep/__init__.py" in zip_names(build.out("layer.zip"))
        assert SECRET not in build.output
        assert server.authorization(wheel.name)[-1] == _basic("alice", SECRET)
        before = digests(build.out())
        refused = hatchling_build(project, LAYER, cache=tmp_path / "empty-cache", check=False)
        assert_failed_cleanly(refused, f"privdep==1.0: downloading {server.url(wheel.name)} failed: HTTP 401",
                              f"no credentials found for 127.0.0.1:{server.port} (looked in "
                              "UV_INDEX_PRIVATE_USERNAME/PASSWORD", "fix: give credentials for the index")
    assert digests(build.out()) == before


def test_a_misshapen_index_table_is_one_error_naming_pyproject(tmp_path, index):
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text('[[tool.uv.index]]\nname = "no-url"\n', encoding="utf-8")
    with pytest.raises(LambdaBuildError) as raised:
        _fetch(project, _dist(index))
    assert raised.value.problem == f"{project / 'pyproject.toml'}: [[tool.uv.index]] must be tables with a url string"
    assert index.served(NAME) == []


def test_no_credentials_after_a_redirect_from_https_to_http(tmp_path, loopback, monkeypatch):
    """An HTTPS index (alice, from .netrc, by host) redirects to plain HTTP on the same host: the plain-text hop
    gets nothing, although .netrc has credentials for that host; one that demands them is a clear refusal."""
    cert, key = self_signed(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login alice password {SECRET}\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with WheelServer({NAME: BODY}, tls=(cert, key)) as secure, WheelServer({NAME: BODY}) as plain:
        secure.require_auth("alice", SECRET)
        secure.redirect(NAME, plain.url(NAME))
        dist = _dist(secure, registry=f"https://127.0.0.1:{secure.port}/simple")
        assert _fetch(tmp_path / "a", dist).read_bytes() == BODY
        assert secure.authorization(NAME) == [_basic("alice", SECRET)]
        assert plain.authorization(NAME) == [None]

        plain.require_auth("alice", SECRET)
        error = _refused(tmp_path / "b", dist)
        assert "reached by a redirect from HTTPS to plain HTTP, where none are ever sent" in str(error)
        assert plain.authorization(NAME) == [None, None]
