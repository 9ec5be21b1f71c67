"""Downloads against a misbehaving server on 127.0.0.1: retries, resume, timeouts, clear errors.

Every failure names the URL, and nothing but whole, verified files is ever
left in the cache.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.download import RetryPolicy, download
from hatch_lambda.fetch.files import fetch_one
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.lockfile.wheels import LockedFile

from helpers.builds import assert_failed_cleanly, digests, hatchling_build, manifest
from helpers.projects import LAYER, copy_fixture
from helpers.wheelserver import (
    WheelServer,
    assert_cache_holds_only_verified_files,
    cache_files,
    loopback_env,
    point_lock_at,
)

NAME = "demo-1.0-py3-none-any.whl"
BODY = os.urandom(300_000)  # any bytes: the download does not look inside
DIGEST = hashlib.sha256(BODY).hexdigest()
FAST = RetryPolicy(attempts=3, timeout=2, backoff=0.01)


@pytest.fixture
def no_proxy(monkeypatch):
    for name, value in loopback_env().items():
        monkeypatch.setenv(name, value)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(no_proxy):
    with WheelServer({NAME: BODY}) as running:
        yield running


def _dist(server: WheelServer, name: str = NAME) -> Distribution:
    return Distribution("demo", "1.0", "registry", "https://pypi.org/simple",
                        LockedFile(kind="wheel", filename=name, url=server.url(name), sha256=DIGEST))


def test_cut_off_download_is_resumed(tmp_path, server):
    server.fault(NAME, kind="cut", times=1)
    path = fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=FAST)
    assert path.read_bytes() == BODY
    assert server.served(NAME) == [None, f"bytes={len(BODY) // 2}-"]  # the second asked for the rest
    assert_cache_holds_only_verified_files(tmp_path / "cache")


def test_cut_off_download_restarts_when_the_server_ignores_range(tmp_path, server):
    server.honour_range = False
    server.fault(NAME, kind="cut", times=1)
    path = fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=FAST)
    assert path.read_bytes() == BODY  # the whole body came again and was written from the start
    assert server.served(NAME) == [None, f"bytes={len(BODY) // 2}-"]
    assert_cache_holds_only_verified_files(tmp_path / "cache")


def test_download_cut_off_every_time_fails_naming_the_url(tmp_path, server):
    server.fault(NAME, kind="cut")
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=FAST)
    message = str(raised.value)
    assert f"demo==1.0: downloading {server.url(NAME)} failed: the connection closed with" in message
    assert "(tried 3 times)" in message
    assert "fix: check the URL, the network" in message
    assert len(server.served(NAME)) == 3
    assert cache_files(tmp_path / "cache") == []


def test_404_is_not_retried(tmp_path, server):
    dist = _dist(server, "missing-1.0-py3-none-any.whl")
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(dist, tmp_path / "cache", tmp_path, policy=FAST)
    assert f"downloading {server.url('missing-1.0-py3-none-any.whl')} failed: HTTP 404" in str(raised.value)
    assert len(server.served("missing-1.0-py3-none-any.whl")) == 1
    assert cache_files(tmp_path / "cache") == []


def test_503_is_retried(tmp_path, server):
    server.fault(NAME, kind="status", status=503, times=2)
    path = fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=FAST)
    assert path.read_bytes() == BODY
    assert len(server.served(NAME)) == 3


def test_slow_server_times_out_then_fails_naming_the_url(tmp_path, server):
    server.fault(NAME, kind="delay", seconds=1.5)
    policy = RetryPolicy(attempts=2, timeout=0.3, backoff=0.01)
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=policy)
    message = str(raised.value)
    assert f"downloading {server.url(NAME)} failed: timed out (tried 2 times)" in message
    assert cache_files(tmp_path / "cache") == []


def test_slow_server_once_is_retried(tmp_path, server):
    server.fault(NAME, kind="delay", seconds=1.0, times=1)
    policy = RetryPolicy(attempts=2, timeout=0.3, backoff=0.01)
    path = fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=policy)
    assert path.read_bytes() == BODY


def test_backoff_doubles(tmp_path, server):
    server.fault(NAME, kind="status", status=503)
    waits: list[float] = []
    with (tmp_path / "out").open("wb") as out, pytest.raises(Exception, match="HTTP 503"):
        download(server.url(NAME), out, headers={}, policy=RetryPolicy(attempts=4, timeout=2, backoff=0.5),
                 sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("name", ["HATCH_LAMBDA_DOWNLOAD_ATTEMPTS", "HATCH_LAMBDA_DOWNLOAD_TIMEOUT",
                                  "HATCH_LAMBDA_DOWNLOAD_BACKOFF", "HATCH_LAMBDA_DOWNLOAD_MAX_MB"])
def test_bad_retry_variable_is_an_error(monkeypatch, name):
    monkeypatch.setenv(name, "soon")
    with pytest.raises(LambdaBuildError) as raised:
        RetryPolicy.from_env()
    assert f"environment variable {name}='soon' is not a number" in raised.value.problem
    assert "unset it" in raised.value.fix
    monkeypatch.setenv(name, "3")
    assert RetryPolicy.from_env() != RetryPolicy()


def test_stale_partial_downloads_are_swept(tmp_path, server):
    directory = tmp_path / "cache" / "files" / DIGEST[:2] / DIGEST
    directory.mkdir(parents=True)
    old, fresh = directory / "tmpold.part", directory / "tmpfresh.part"
    old.write_bytes(BODY[:100])
    fresh.write_bytes(BODY[:100])
    os.utime(old, (1_000_000_000, 1_000_000_000))
    fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=FAST)
    assert not old.exists()  # left by a killed build long ago
    assert fresh.exists()  # may be another build's download in progress


@pytest.mark.network
def test_build_with_a_missing_file_fails_naming_the_url(tmp_path, cache):
    """Through a build: a 404 from the index stops it, names the URL, and leaves the artifacts."""
    project = copy_fixture("native-app", tmp_path)
    hatchling_build(project, LAYER, cache=cache)  # fills the session cache from the index
    before = digests(project / "dist" / "lambda")
    with WheelServer() as server:
        server.add_dir(cache / "files")
        point_lock_at(project, server)
        chosen = manifest(project / "dist" / "lambda")["targets"][LAYER]["distributions"]
        missing = next(d["file"] for d in chosen if d["name"] == "orjson")
        del server.files[missing]
        empty = tmp_path / "empty-cache"
        build = hatchling_build(project, LAYER, cache=empty, env=loopback_env(), check=False)
        assert_failed_cleanly(build, f"downloading {server.url(missing)} failed: HTTP 404", "fix: check the URL")
        assert server.served(missing) == [None]
    assert digests(project / "dist" / "lambda") == before
    assert_cache_holds_only_verified_files(empty)


# --------------------------------------------------------------------------
# progress of long downloads


class _Stream:
    """A text stream that says whether it is a terminal, and keeps what was written."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self.text = ""

    def isatty(self) -> bool:
        return self.terminal

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("terminal", [False, True])
def test_a_long_download_shows_progress(tmp_path, server, monkeypatch, terminal):
    """A periodic line in a log, one rewritten line on a terminal; a last line with what was fetched."""
    from hatch_lambda.fetch.files import fetch_all
    from hatch_lambda.fetch.progress import Progress

    stream = _Stream(terminal)
    monkeypatch.setenv("HATCH_LAMBDA_PROGRESS_INTERVAL", "0.3")
    monkeypatch.setattr("hatch_lambda.fetch.files.Progress",
                        lambda files, total: Progress(files, total, stream=stream, delay=0.5))
    server.fault(NAME, kind="trickle", piece=len(BODY) // 10, seconds=0.2)  # about 2 s in all
    dist = _dist(server)
    dist = Distribution(dist.name, dist.version, dist.source_kind, dist.source,
                        LockedFile(kind="wheel", filename=NAME, url=server.url(NAME), sha256=DIGEST, size=len(BODY)))
    fetch_all([dist], tmp_path / "cache", tmp_path)
    if terminal:
        assert stream.text.count("\r") >= 3 and "\n" not in stream.text[:-1]  # one line, rewritten
        assert stream.text.endswith("\n")
    else:
        lines = stream.text.splitlines()
        assert len(lines) >= 3 and all(line.startswith("  download") for line in lines)
        assert "\r" not in stream.text
    assert "downloading: 0 of 1 files" in stream.text
    assert "downloaded: 1 of 1 files, 0.3 of 0.3 MB (100 %)" in stream.text


def test_a_quick_download_shows_nothing(tmp_path, server, monkeypatch):
    from hatch_lambda.fetch.files import fetch_all
    from hatch_lambda.fetch.progress import Progress

    stream = _Stream(False)
    monkeypatch.setattr("hatch_lambda.fetch.files.Progress", lambda files, total: Progress(files, total, stream=stream))
    fetch_all([_dist(server)], tmp_path / "cache", tmp_path)
    assert stream.text == ""


# --------------------------------------------------------------------------
# size caps, a full disk, the stop


def test_an_endless_body_stops_at_the_cap(tmp_path, server):
    """No size in the lock: HATCH_LAMBDA_DOWNLOAD_MAX_MB caps the body; an error naming the URL, not retried."""
    server.fault(NAME, kind="endless")
    policy = RetryPolicy(attempts=3, timeout=5, backoff=0.01, max_mb=2)
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(_dist(server), tmp_path / "cache", tmp_path, policy=policy)
    assert raised.value.problem == (f"demo==1.0: downloading {server.url(NAME)} failed: the body is larger than "
                                    "2 MB (HATCH_LAMBDA_DOWNLOAD_MAX_MB)")
    assert "raise HATCH_LAMBDA_DOWNLOAD_MAX_MB" in raised.value.fix
    assert len(server.served(NAME)) == 1
    assert cache_files(tmp_path / "cache") == []


def test_a_body_larger_than_the_locks_size_is_refused_at_once(tmp_path, server):
    dist = _dist(server)
    dist = Distribution(dist.name, dist.version, dist.source_kind, dist.source,
                        LockedFile(kind="wheel", filename=NAME, url=server.url(NAME), sha256=DIGEST, size=1000))
    with pytest.raises(LambdaBuildError) as raised:
        fetch_one(dist, tmp_path / "cache", tmp_path, policy=FAST)
    assert raised.value.problem == (f"demo==1.0: downloading {server.url(NAME)} failed: the body is larger than "
                                    f"1000 bytes, the size uv.lock gives for the file (it announced {len(BODY)})")
    assert "uv lock --refresh-package" in raised.value.fix
    assert cache_files(tmp_path / "cache") == []


def test_the_download_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HATCH_LAMBDA_DOWNLOAD_MAX_MB", "5")
    assert RetryPolicy.from_env().max_mb == 5
    assert RetryPolicy().max_mb == 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and a kernel that lets us mount; skipped otherwise)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a small tmpfs needs root and mount permission")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_reported_as_one(small_disk, no_proxy):
    """Not "the file changed on the index": the directory is named, nothing is retried or left behind."""
    big = os.urandom(3 << 20)
    with WheelServer({NAME: big}) as server:
        dist = Distribution("demo", "1.0", "registry", "https://pypi.org/simple", LockedFile(
            kind="wheel", filename=NAME, url=server.url(NAME), sha256=hashlib.sha256(big).hexdigest()))
        with pytest.raises(LambdaBuildError) as raised:
            fetch_one(dist, small_disk / "cache", small_disk, policy=FAST)
        assert len(server.served(NAME)) == 1
    directory = small_disk / "cache" / "files" / dist.sha256[:2] / dist.sha256
    assert raised.value.problem == f"demo==1.0: no space left on device writing {directory}"
    assert "HATCH_LAMBDA_CACHE_DIR" in raised.value.fix
    assert cache_files(small_disk / "cache") == []


def test_a_failed_write_is_not_retried(server):
    """/dev/full fails every write with ENOSPC: the OS's error comes out at once, not as a network error."""
    import errno

    from hatch_lambda.fetch.download import WriteFailed

    with open("/dev/full", "wb", buffering=0) as out, pytest.raises(WriteFailed) as raised:
        download(server.url(NAME), out, headers={}, policy=FAST)
    assert raised.value.error.errno == errno.ENOSPC
    assert len(server.served(NAME)) == 1


def _stopped_after(seconds: float, server: WheelServer, tmp_path, policy: RetryPolicy) -> float:
    """Seconds ``download`` took to give up once ``stop`` was set ``seconds`` after it started."""
    import threading
    import time

    from hatch_lambda.fetch.download import Stopped

    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    started = time.monotonic()
    timer.start()
    with (tmp_path / "out").open("wb") as out, pytest.raises(Stopped):
        download(server.url(NAME), out, headers={}, policy=policy, stop=stop)
    timer.join()
    return time.monotonic() - started - seconds


def test_stop_before_connecting(tmp_path, server):
    assert _stopped_after(0, server, tmp_path, FAST) < 1
    assert server.served(NAME) in ([], [None])  # at most the request already on its way


@pytest.mark.parametrize("fault", [
    {"kind": "delay", "seconds": 10},  # waiting for the response
    {"kind": "trickle", "piece": 1000, "seconds": 5},  # reading the body
    {"kind": "status", "status": 503},  # waiting to retry
])
def test_stop_ends_a_download_at_once(tmp_path, server, fault):
    server.fault(NAME, **fault)
    policy = RetryPolicy(attempts=3, timeout=30, backoff=30)
    assert _stopped_after(0.5, server, tmp_path, policy) < 1
