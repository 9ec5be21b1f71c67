"""Credentials for downloads from private indexes, found the way uv finds them, per origin.

A credential belongs to one origin (scheme, host and port) and is sent only
to it: a redirect to another origin gets that origin's credentials, if any,
never the first one's, and a hop reached by a redirect from HTTPS to plain HTTP
gets none at all. For one request they are looked up in this order:

1. the URL itself (``https://user:password@host/...``, as uv writes a direct URL);
2. the index the package comes from (the lock's ``source = { registry = ... }``),
   or else one on the same origin, among ``UV_INDEX``, ``UV_DEFAULT_INDEX``,
   ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL`` and the lock's ``pyproject.toml``
   (``[[tool.uv.index]]``, ``[tool.uv] index-url`` and ``extra-index-url``):
   ``UV_INDEX_<NAME>_USERNAME`` / ``UV_INDEX_<NAME>_PASSWORD`` for a named one
   (``NAME``: the index name upper-cased, every other character than a letter or
   digit replaced by ``_``), then credentials in the index URL; none at all
   for an index with ``authenticate = "never"``;
3. ``.netrc`` (``$NETRC``, else ``~/.netrc``), by host;
4. with ``UV_KEYRING_PROVIDER=subprocess``, the ``keyring`` command, as uv
   calls it: ``keyring get <index-or-file-url> <username>`` then
   ``keyring get <host[:port]> <username>`` (``--mode creds`` without a
   username); asked first when a username is known (or the index says
   ``authenticate = "always"``), else only after the server refused a request
   without credentials.

A ``Credentials`` is built once per build and shared by its downloads.
"""

from __future__ import annotations

import base64
import netrc
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import read_toml

DEFAULT_PORTS = {"http": 80, "https": 443}
KEYRING_TIMEOUT = 60.0


@dataclass(frozen=True)
class Login:
    """A username and password, and where they were found (for messages: never the password)."""

    username: str
    password: str = field(repr=False)
    source: str

    def header(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        return cls(parts.scheme.lower(), (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(parts.scheme, 0))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its ``user:password@``, and the (unquoted) user and password it carried."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, unquote(user) or None, unquote(password) if colon else None


def env_prefix(name: str) -> str:
    """``UV_INDEX_<NAME>_``, as uv derives it from an index name."""
    return "UV_INDEX_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_"


def _same_index(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class IndexCredentials:
    """One index: its URL without credentials, and what the user gave for it."""

    name: str | None
    url: str
    where: str  # "pyproject.toml", "UV_EXTRA_INDEX_URL", ...
    login: Login | None = None
    username: str | None = None  # a username without a password (the keyring is asked for it)
    authenticate: str = "auto"  # uv's setting: "auto", "always" (ask the keyring at once) or "never"

    @property
    def label(self) -> str:
        return f"index {self.name or self.url!r} in {self.where}"

    @property
    def sources(self) -> list[str]:
        if self.authenticate == "never":
            return [f'none: authenticate = "never" for {self.label}']
        where = [f"{env_prefix(self.name)}USERNAME/PASSWORD"] if self.name else []
        return [*where, f"the URL of {self.label}"]


#: ``name=url`` in UV_INDEX and UV_DEFAULT_INDEX, as uv reads them.
NAMED = re.compile(r"^([A-Za-z0-9._-]+)=(.+)$")


def _declared(pyproject: Path) -> list[tuple[str | None, str, str, str]]:
    """(name, url, authenticate, where) of the indexes ``pyproject`` declares for uv."""
    if not pyproject.is_file():
        return []
    tool = read_toml(pyproject).get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    if not isinstance(uv, dict):
        return []
    tables = uv.get("index", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) and isinstance(t.get("url"), str) for t in tables):
        raise LambdaBuildError(f"{pyproject}: [[tool.uv.index]] must be tables with a url string",
                               "fix the index tables as uv documents them, and run `uv lock`")
    out = [(t["name"] if isinstance(t.get("name"), str) else None, t["url"], str(t.get("authenticate", "auto")),
            "pyproject.toml") for t in tables]
    legacy = [uv.get("index-url"), *(uv.get("extra-index-url") or [])]
    return out + [(None, url, "auto", "pyproject.toml") for url in legacy if isinstance(url, str)]


def _from_environment(environ: Mapping[str, str]) -> list[tuple[str | None, str, str, str]]:
    """(name, url, authenticate, where) of the indexes given to uv in the environment."""
    out: list[tuple[str | None, str, str, str]] = []
    for variable in ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL"):
        for item in environ.get(variable, "").split():
            named = NAMED.match(item) if variable in ("UV_INDEX", "UV_DEFAULT_INDEX") else None
            out.append((named.group(1), named.group(2), "auto", variable) if named else (None, item, "auto", variable))
    return out


def read_indexes(pyproject: Path, environ: Mapping[str, str]) -> tuple[IndexCredentials, ...]:
    """The indexes of the environment and of ``pyproject`` (in uv's order of precedence), with their credentials."""
    out = []
    for name, given, authenticate, where in [*_from_environment(environ), *_declared(pyproject)]:
        url, user, password = split_userinfo(given)
        label = f"index {name or url!r} in {where}"
        login = Login(user or "", password, f"the URL of {label}") if password is not None else None
        username = user
        if name:
            prefix = env_prefix(name)
            env_user, env_password = environ.get(prefix + "USERNAME"), environ.get(prefix + "PASSWORD")
            if env_password is not None:
                login = Login(env_user or "", env_password, f"{prefix}USERNAME/PASSWORD")
            elif env_user:
                username = env_user
        out.append(IndexCredentials(name, url, where, login, username, authenticate))
    return tuple(out)


class _KeyringAnswers:
    """What the ``keyring`` command said, per service and username, for the length of one build."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str | None], tuple[str, str] | None] = {}

    def get(self, service: str, username: str | None) -> tuple[str, str] | None:
        with self._lock:
            if (service, username) not in self._answers:
                self._answers[service, username] = _ask_keyring(service, username)
            return self._answers[service, username]


def _ask_keyring(service: str, username: str | None) -> tuple[str, str] | None:
    command = ["keyring", "get", service, *([username] if username else ["--mode", "creds"])]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=KEYRING_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    if username:
        return username, done.stdout.rstrip("\r\n")
    lines = done.stdout.splitlines()
    return (lines[0], lines[1]) if len(lines) >= 2 else None


@dataclass(frozen=True)
class Credentials:
    """Everything a build knows about credentials; ``for_file`` gives one download's."""

    indexes: tuple[IndexCredentials, ...] = ()
    netrc: Path | None = None
    keyring: bool = False
    _keyring: _KeyringAnswers = field(default_factory=_KeyringAnswers, compare=False, repr=False)

    @classmethod
    def of_project(cls, project_dir: Path, environ: Mapping[str, str] | None = None) -> Credentials:
        """From the indexes of ``project_dir/pyproject.toml`` (the lock's directory) and the environment."""
        environ = os.environ if environ is None else environ
        path = environ.get("NETRC") or (Path(environ["HOME"]) / ".netrc" if environ.get("HOME") else None)
        return cls(read_indexes(project_dir / "pyproject.toml", environ), Path(path) if path else None,
                   environ.get("UV_KEYRING_PROVIDER", "").strip().lower() == "subprocess")

    def for_file(self, registry: str | None) -> FileCredentials:
        """The credentials of one file's download; ``registry``: the index its package comes from, if any."""
        index = next((i for i in self.indexes if registry and _same_index(i.url, registry)), None)
        return FileCredentials(self, index)

    def from_netrc(self, host: str) -> Login | None:
        if self.netrc is None or not host or not self.netrc.is_file():
            return None
        try:
            entry = netrc.netrc(self.netrc).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            return None
        if not entry:
            return None
        login, _, password = entry
        return Login(login, password or "", f".netrc ({self.netrc})")

    def from_keyring(self, service: str, host: str, username: str | None) -> Login | None:
        for name in (service, host):
            found = self._keyring.get(name, username)
            if found is not None:
                return Login(found[0], found[1], f"keyring ({name})")
        return None


@dataclass(frozen=True)
class FileCredentials:
    """One file's credentials, per hop: ``login(url)`` for each URL the download is sent to."""

    build: Credentials
    index: IndexCredentials | None  # the index the package comes from

    def _index_for(self, origin: Origin) -> IndexCredentials | None:
        if self.index is not None and Origin.of(self.index.url) == origin:
            return self.index
        return next((i for i in self.build.indexes if Origin.of(i.url) == origin), None)

    def login(self, url: str, *, refused: bool = False) -> Login | None:
        """The credentials for ``url``'s origin; ``refused``: the server refused the request without any."""
        bare, user, password = split_userinfo(url)
        if password is not None:
            return Login(user or "", password, "the URL in uv.lock")
        origin = Origin.of(bare)
        index = self._index_for(origin)
        if index is not None and index.authenticate == "never":
            return None
        if index is not None and index.login is not None:
            return index.login
        found = self.build.from_netrc(origin.host)
        if found is not None:
            return found
        username = user or (index.username if index is not None else None)
        eager = index is not None and index.authenticate == "always"
        if self.build.keyring and (username or refused or eager):
            host = urlsplit(bare).netloc.rpartition("@")[2]
            return self.build.from_keyring(index.url if index is not None else bare, host, username)
        return None

    def looked_in(self, url: str) -> str:
        """Where credentials for ``url`` were looked for, for the message when none were found."""
        index = self._index_for(Origin.of(split_userinfo(url)[0]))
        if index is not None and index.authenticate == "never":
            return index.sources[0]
        places = index.sources if index is not None else ["no index of pyproject.toml or UV_INDEX is on this host"]
        places.append(f".netrc ({self.build.netrc})" if self.build.netrc else ".netrc (no NETRC or HOME)")
        places.append("keyring" if self.build.keyring else "keyring (off: UV_KEYRING_PROVIDER is not subprocess)")
        return ", ".join(places)
