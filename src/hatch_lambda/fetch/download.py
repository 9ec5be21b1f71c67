"""One HTTP download with timeouts, retries, per-hop credentials and a size cap.

A transient failure (connection refused or reset, a timeout, a body cut off
before its ``Content-Length``, HTTP 408/429/5xx) is retried with exponential
backoff; a partial body is resumed with a ``Range`` request when the server
allows it (the file cut back to what was received first), and started over
otherwise. Other HTTP errors (404, 403, ...) are not retried, nor is a failed
write (a full disk). Redirects are followed here, not by urllib, so that each
hop is sent the credentials of its own origin only (:mod:`.credentials`). A
body longer than the lock's ``size`` for the file, or than
``HATCH_LAMBDA_DOWNLOAD_MAX_MB`` when the lock gives none, is an error. A set
``stop`` ends the download at once, whatever it waits for. The tunables come
from the environment:

- ``HATCH_LAMBDA_DOWNLOAD_ATTEMPTS`` (default 4): tries per file,
- ``HATCH_LAMBDA_DOWNLOAD_TIMEOUT`` (default 60): seconds to wait for a connection or for data,
- ``HATCH_LAMBDA_DOWNLOAD_BACKOFF`` (default 1): seconds before the first retry, doubled for each next one,
- ``HATCH_LAMBDA_DOWNLOAD_MAX_MB`` (default 1024): the largest body when the lock gives no size.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.credentials import FileCredentials, Login, Origin, split_userinfo
from hatch_lambda.fetch.watch import Stopped, Watch

__all__ = ["DownloadFailed", "RetryPolicy", "Stopped", "WriteFailed", "download"]

CHUNK = 1 << 20
MB = 1 << 20
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REFUSED_STATUSES = frozenset({401, 403})
MAX_REDIRECTS = 10
CREDENTIALS_FIX = ("give credentials for the index: UV_INDEX_<NAME>_USERNAME and UV_INDEX_<NAME>_PASSWORD for a "
                   "named [[tool.uv.index]], .netrc, or UV_KEYRING_PROVIDER=subprocess (see docs/caching.md)")


class DownloadFailed(Exception):
    """The download did not succeed; ``str()`` says why (without the URL), ``fix`` what to do when it is known."""

    def __init__(self, reason: str, fix: str | None = None) -> None:
        super().__init__(reason)
        self.fix = fix


class WriteFailed(Exception):
    """Writing the body failed (a full disk, ...): ``error`` is the OS's error. Never retried."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 60.0
    backoff: float = 1.0
    max_mb: float = 1024.0  # the largest body when the lock gives no size

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            attempts=int(_env_number("HATCH_LAMBDA_DOWNLOAD_ATTEMPTS", cls.attempts, minimum=1)),
            timeout=_env_number("HATCH_LAMBDA_DOWNLOAD_TIMEOUT", cls.timeout, minimum=0.001),
            backoff=_env_number("HATCH_LAMBDA_DOWNLOAD_BACKOFF", cls.backoff, minimum=0),
            max_mb=_env_number("HATCH_LAMBDA_DOWNLOAD_MAX_MB", cls.max_mb, minimum=0.001),
        )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        return self.backoff * 2 ** (retry - 1)


def _env_number(name: str, default: float, *, minimum: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise LambdaBuildError(
            f"environment variable {name}={text!r} is not a number >= {minimum:g}",
            f"set it to a number (default {default:g}) or unset it",
        )
    return value


class _Body:
    """What was received so far: written to ``out`` first, then counted in the digest."""

    def __init__(self, out: IO[bytes], progress: Callable[[int], None]) -> None:
        self.out, self.progress = out, progress
        self.digest = hashlib.sha256()
        self.received = 0

    def add(self, chunk: bytes) -> None:
        try:
            self.out.write(chunk)
        except OSError as exc:
            raise WriteFailed(exc) from exc
        self.digest.update(chunk)
        self.received += len(chunk)
        self.progress(len(chunk))

    def cut(self, length: int) -> None:
        """Keep the first ``length`` bytes of the file (0: start over)."""
        try:
            self.out.seek(length)
            self.out.truncate()
        except OSError as exc:
            raise WriteFailed(exc) from exc
        if length == 0 and self.received:
            self.progress(-self.received)
            self.digest, self.received = hashlib.sha256(), 0


def download(
    url: str,
    out: IO[bytes],
    *,
    headers: dict[str, str],
    policy: RetryPolicy,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int], None] | None = None,
    credentials: FileCredentials | None = None,
    size: int | None = None,
) -> str:
    """Write the body at ``url`` to ``out`` (empty, seekable); the hex sha256 of what was written.

    ``progress`` is told each chunk's length (and minus what was thrown away when starting over).
    ``size``: the length the lock gives, the most that is read (else ``policy.max_mb``).
    """
    body = _Body(out, progress or (lambda count: None))
    limit = size if size is not None else int(policy.max_mb * MB)
    if size is not None:
        too_big = f"the body is larger than {size} bytes, the size uv.lock gives for the file"
        too_big_fix = "the index serves another file than the one locked: relock it with `uv lock " \
                      "--refresh-package <name>` and review the change"
    else:
        too_big = f"the body is larger than {policy.max_mb:g} MB (HATCH_LAMBDA_DOWNLOAD_MAX_MB)"
        too_big_fix = "check the URL; if the file really is that large, raise HATCH_LAMBDA_DOWNLOAD_MAX_MB"
    reason = "no attempt made"
    with Watch(stop) as watch:
        opener = watch.opener()
        for attempt in range(policy.attempts):
            if attempt:
                _wait(policy.delay(attempt), stop, sleep)
            if body.received:
                body.cut(body.received)  # resume right after what was counted, whatever else is in the file
            try:
                with _open(opener, url, headers, body.received, policy.timeout, credentials, watch) as response:
                    if body.received and response.status != 206:
                        body.cut(0)  # the server sent the whole body again: start over
                    length = response.headers.get("Content-Length")
                    expected = int(length) if length and length.isdigit() else None
                    if expected is not None and body.received + expected > limit:
                        raise DownloadFailed(f"{too_big} (it announced {body.received + expected})", too_big_fix)
                    got = 0
                    while chunk := response.read1(CHUNK):
                        watch.check()
                        if body.received + len(chunk) > limit:
                            raise DownloadFailed(too_big, too_big_fix)
                        body.add(chunk)
                        got += len(chunk)
                    watch.check()
                    if expected is not None and got < expected:
                        raise http.client.IncompleteRead(b"", expected - got)
                    return body.digest.hexdigest()
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code} {exc.reason}"
                if exc.code == 416:  # the range asked for does not exist: start over
                    body.cut(0)
                    continue
                if exc.code not in RETRY_STATUSES:
                    raise DownloadFailed(reason) from None
            except http.client.IncompleteRead as exc:
                watch.check()
                reason = f"the connection closed with {exc.expected} bytes still to come"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                watch.check()  # a socket shut by the stop ends here
                reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    tries = "once" if policy.attempts == 1 else f"{policy.attempts} times"
    raise DownloadFailed(f"{reason} (tried {tries})")


def _open(
    opener: urllib.request.OpenerDirector,
    url: str,
    headers: dict[str, str],
    received: int,
    timeout: float,
    credentials: FileCredentials | None,
    watch: Watch,
) -> http.client.HTTPResponse:
    """The response for ``url``, redirects followed; each hop carries its own origin's credentials only."""
    hop, hops, refused = url, 0, False
    secure = urllib.parse.urlsplit(url).scheme == "https"
    while True:
        watch.check()
        bare = split_userinfo(hop)[0]
        # After a redirect from HTTPS to plain HTTP nothing is sent that an eavesdropper could read, even to a
        # host that has credentials (.netrc's are by host, whatever the scheme).
        downgraded = secure and urllib.parse.urlsplit(bare).scheme == "http"
        login = credentials.login(hop, refused=refused) if credentials is not None and not downgraded else None
        sent = {**headers, **(login.header() if login else {}), **({"Range": f"bytes={received}-"} if received else {})}
        try:
            response: http.client.HTTPResponse = opener.open(urllib.request.Request(bare, headers=sent),
                                                             timeout=timeout)
            return response
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code in REDIRECT_STATUSES else None
            if location:
                exc.close()
                hops += 1
                hop, refused = _next_hop(bare, location, hops), False
                continue
            if exc.code not in REFUSED_STATUSES or credentials is None:
                raise
            exc.close()
            if downgraded:
                raise DownloadFailed(
                    f"HTTP {exc.code} {exc.reason}: {Origin.of(bare)} asks for credentials, but it was reached by a "
                    "redirect from HTTPS to plain HTTP, where none are ever sent",
                    "ask the index's owner to redirect to an HTTPS address; downloads over HTTP get no credentials "
                    "after a redirect from HTTPS") from None
            if login is None and not refused:
                refused = True  # asked again, the keyring may answer now
                if credentials.login(hop, refused=True) is not None:
                    continue
            raise DownloadFailed(_refusal(exc, login, credentials, hop), CREDENTIALS_FIX) from None


def _next_hop(url: str, location: str, hops: int) -> str:
    target = urllib.parse.urljoin(url, location)
    if hops > MAX_REDIRECTS:
        raise DownloadFailed(f"more than {MAX_REDIRECTS} redirects")
    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
        raise DownloadFailed(f"redirected to {target}, which is not an HTTP URL")
    return target


def _refusal(exc: urllib.error.HTTPError, login: Login | None, credentials: FileCredentials, url: str) -> str:
    """Why the server said 401/403, naming where credentials were looked for (never what they are)."""
    origin = Origin.of(split_userinfo(url)[0])
    if login is None:
        return (f"HTTP {exc.code} {exc.reason}: no credentials found for {origin} "
                f"(looked in {credentials.looked_in(url)})")
    return f"HTTP {exc.code} {exc.reason}: the credentials from {login.source} (user {login.username!r}) " \
           f"were refused by {origin}"


def _wait(seconds: float, stop: threading.Event | None, sleep: Callable[[float], None]) -> None:
    if stop is None:
        sleep(seconds)
    elif stop.wait(seconds):
        raise Stopped()
