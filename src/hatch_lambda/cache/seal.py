"""Cache entries sealed with a secret kept outside the cache, so whoever can write the cache cannot forge one.

A download is checked against the lock's sha256 each time it is read, so
nobody can slip another file in. Packs, layers, wheels built from sdists or git
and read metadata are *made* by hatch-lambda: nothing in the lock says what
their bytes must be. Each such entry has one small file that records the
digests of the rest (a pack's ``index.json`` records its data's sha256, a built
wheel's ``wheel.json`` the wheel's); the seal is an HMAC-SHA256 of the entry's
kind, key and that file under the cache secret. An entry whose seal does not
verify (made on another machine, restored from another branch's CI cache, or
edited) is never used: it is made again.

The secret is ``$HATCH_LAMBDA_CACHE_SECRET`` when set (on CI, from a secret of
the repository, so that a restored cache is reused and a pull request from a
fork cannot write entries this build accepts), else 32 random bytes kept in
``hatch-lambda/cache-secret`` under the user's configuration directory
(``$XDG_CONFIG_HOME`` or ``~/.config``; macOS ``~/Library/Application Support``;
Windows ``%APPDATA%``), made on first use, readable by its owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from hatch_lambda.errors import LambdaBuildError

SEAL = "seal"
SECRET_VARIABLE = "HATCH_LAMBDA_CACHE_SECRET"
_DOMAIN = b"hatch-lambda cache seal 1\0"


def secret_path() -> Path:
    """Where this user's cache secret is kept when ``$HATCH_LAMBDA_CACHE_SECRET`` is not set."""
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = _home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config")
    return base / "hatch-lambda" / "cache-secret"


def _home() -> Path:
    """The user's home directory, which must exist: a build never makes one."""
    fix = f"set {SECRET_VARIABLE} to a long random string, or set XDG_CONFIG_HOME or HOME to a directory that exists"
    try:
        home = Path.home()
    except (RuntimeError, KeyError, OSError):
        raise LambdaBuildError("no place for the cache secret: HOME is not set and the password database has no "
                               "home directory for this user", fix) from None
    if not home.is_dir():
        raise LambdaBuildError(f"no place for the cache secret: the home directory {home} (from HOME) does not exist",
                               fix)
    return home


def cache_secret(cache: Path) -> bytes:
    """The secret that seals the entries of ``cache``; made on first use."""
    given = os.environ.get(SECRET_VARIABLE, "")
    if given.strip():
        return given.strip().encode()
    path = secret_path()
    if path.resolve().is_relative_to(cache.resolve()):
        raise LambdaBuildError(
            f"the cache secret {path} would be inside the cache {cache}, where whoever writes the cache reads it",
            f"set HATCH_LAMBDA_CACHE_DIR elsewhere, or set {SECRET_VARIABLE}",
        )
    try:
        return _read_or_make(path)
    except OSError as exc:
        raise LambdaBuildError(
            f"cannot read or make the cache secret {path}: {exc.strerror or exc}",
            f"make {path.parent} writable, or set {SECRET_VARIABLE} to a long random string",
        ) from None


def _read_or_make(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    if len(text) >= 32:
        return text.encode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written whole beside it, then linked into place: two builds making it at once agree on one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another build made it first: use that one
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip().encode()


def seal_of(secret: bytes, kind: str, key: str, sealed: bytes) -> str:
    message = _DOMAIN + kind.encode() + b"\0" + key.encode() + b"\0" + hashlib.sha256(sealed).digest()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def write_seal(directory: Path, secret: bytes, kind: str, key: str, sealed: str) -> None:
    """Seal the entry being filled in ``directory``, whose file ``sealed`` records the digests of the rest."""
    (directory / SEAL).write_text(seal_of(secret, kind, key, (directory / sealed).read_bytes()))


def seal_holds(directory: Path, secret: bytes, kind: str, key: str, sealed: str) -> bool:
    """The entry in ``directory`` was sealed under ``secret`` as ``kind`` ``key``, with ``sealed`` as it is now."""
    try:
        found = (directory / SEAL).read_text().strip()
        content = (directory / sealed).read_bytes()
    except OSError:
        return False
    return hmac.compare_digest(found, seal_of(secret, kind, key, content))
