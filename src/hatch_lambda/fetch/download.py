"""One HTTP download with timeouts and retries.

A transient failure (connection refused or reset, a timeout, a body cut off
before its ``Content-Length``, HTTP 408/429/5xx) is retried with exponential
backoff; a partial body is resumed with a ``Range`` request when the server
allows it, and started over otherwise. Other HTTP errors (404, 403, ...) are
not retried. The tunables come from the environment:

- ``HATCH_LAMBDA_DOWNLOAD_ATTEMPTS`` (default 4): tries per file,
- ``HATCH_LAMBDA_DOWNLOAD_TIMEOUT`` (default 60): seconds to wait for a connection or for data,
- ``HATCH_LAMBDA_DOWNLOAD_BACKOFF`` (default 1): seconds before the first retry, doubled for each next one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from hatch_lambda.errors import LambdaBuildError

CHUNK = 1 << 20
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadFailed(Exception):
    """The download did not succeed; ``str()`` says why (without the URL)."""


class Stopped(Exception):
    """The build is being stopped (Ctrl-C): the download was abandoned."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 60.0
    backoff: float = 1.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            attempts=int(_env_number("HATCH_LAMBDA_DOWNLOAD_ATTEMPTS", cls.attempts, minimum=1)),
            timeout=_env_number("HATCH_LAMBDA_DOWNLOAD_TIMEOUT", cls.timeout, minimum=0.001),
            backoff=_env_number("HATCH_LAMBDA_DOWNLOAD_BACKOFF", cls.backoff, minimum=0),
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


def download(
    url: str,
    out: IO[bytes],
    *,
    headers: dict[str, str],
    policy: RetryPolicy,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Write the body at ``url`` to ``out`` (empty, seekable); the hex sha256 of what was written.

    ``progress`` is told each chunk's length (and minus what was thrown away when starting over).
    """
    progress = progress or (lambda count: None)
    digest = hashlib.sha256()
    received = 0
    reason = "no attempt made"
    for attempt in range(policy.attempts):
        if attempt:
            _wait(policy.delay(attempt), stop, sleep)
        request_headers = dict(headers)
        if received:
            request_headers["Range"] = f"bytes={received}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=request_headers),
                                        timeout=policy.timeout) as response:
                if received and response.status != 206:
                    # The server sent the whole body again: start over.
                    out.seek(0)
                    out.truncate()
                    progress(-received)
                    digest, received = hashlib.sha256(), 0
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                got = 0
                while chunk := response.read1(CHUNK):
                    if stop is not None and stop.is_set():
                        raise Stopped()
                    digest.update(chunk)
                    out.write(chunk)
                    progress(len(chunk))
                    got += len(chunk)
                    received += len(chunk)
                if expected is not None and got < expected:
                    raise http.client.IncompleteRead(b"", expected - got)
                return digest.hexdigest()
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # the range asked for does not exist: start over
                out.seek(0)
                out.truncate()
                progress(-received)
                digest, received = hashlib.sha256(), 0
                reason = f"HTTP {exc.code} {exc.reason}"
                continue
            if exc.code not in RETRY_STATUSES:
                raise DownloadFailed(f"HTTP {exc.code} {exc.reason}") from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except http.client.IncompleteRead as exc:
            reason = f"the connection closed with {exc.expected} bytes still to come"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    tries = "once" if policy.attempts == 1 else f"{policy.attempts} times"
    raise DownloadFailed(f"{reason} (tried {tries})")


def _wait(seconds: float, stop: threading.Event | None, sleep: Callable[[float], None]) -> None:
    if stop is None:
        sleep(seconds)
    elif stop.wait(seconds):
        raise Stopped()
