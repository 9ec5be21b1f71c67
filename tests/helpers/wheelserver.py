"""A package server on 127.0.0.1 for the download tests, with faults on demand.

It serves real files (wheels from the session's download cache, or hand-made
ones) by file name and honours ``Range`` requests. Per file, a fault can be
set: cut the body off halfway, answer 404 or 503, wait before answering, send
the body slowly in small pieces, or send one without end. It can demand basic
auth (``require_auth``) and redirect a name elsewhere (``redirect``); it keeps
the ``Authorization`` header of every request. A name ending in ``/`` is served
as HTML: ``simple_page`` makes the simple API's page of a project, for ``uv lock``. ``point_lock_at`` rewrites a project's
``uv.lock`` so every file URL names this server (the hashes stay as locked).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import re
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Fault:
    kind: str = "none"  # none | cut | status | delay | trickle | endless
    times: int = 1 << 30  # how many requests suffer it; then the file is served normally
    status: int = 404
    seconds: float = 0.0  # delay before answering, or between trickled pieces
    piece: int = 4096  # bytes per trickled piece


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, made by openssl in ``directory``; trust the
    certificate with ``SSL_CERT_FILE``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class WheelServer:
    def __init__(self, files: dict[str, bytes] | None = None, *, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) files to serve HTTPS with (see :func:`self_signed`)."""
        self.scheme = "https" if tls else "http"
        self.files: dict[str, bytes] = dict(files or {})
        self.faults: dict[str, Fault] = {}
        self.honour_range = True  # False: answer a Range request with the whole file, as some servers do
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header)
        self.authorizations: list[tuple[str, str | None]] = []  # (name, Authorization header)
        self.login: tuple[str, str] | None = None  # basic auth every request must carry
        self.redirects: dict[str, str] = {}  # name -> the URL it redirects to
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer._serve(self)

            def do_HEAD(self):
                outer._head(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- set-up

    def add_dir(self, directory: Path) -> None:
        """Serve every file below ``directory`` by its name."""
        for path in directory.rglob("*"):
            if path.is_file() and not path.name.endswith(".part"):
                self.files[path.name] = path.read_bytes()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, name: str, *, host: str = "127.0.0.1", userinfo: str = "") -> str:
        return f"{self.scheme}://{userinfo + '@' if userinfo else ''}{host}:{self.port}/{name}"

    def require_auth(self, username: str, password: str) -> None:
        """Answer 401 to every request without these credentials."""
        self.login = (username, password)

    def redirect(self, name: str, url: str) -> None:
        self.redirects[name] = url

    def authorization(self, name: str) -> list[str | None]:
        """The ``Authorization`` header of each request for ``name`` (None when there was none)."""
        return [header for requested, header in self.authorizations if requested == name]

    def fault(self, name: str, **options) -> None:
        with self.lock:
            self.faults[name] = Fault(**options)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def served(self, name: str) -> list[str | None]:
        """The Range header of each request for ``name`` (None for a whole-file request)."""
        return [header for requested, header in self.requests if requested == name]

    def __enter__(self) -> WheelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    # -- serving

    def _take_fault(self, name: str) -> Fault:
        with self.lock:
            fault = self.faults.get(name)
            if fault is None or fault.times <= 0:
                return Fault()
            fault.times -= 1
            return Fault(**{**fault.__dict__})

    def _head(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """The headers a GET would have (uv asks them first); not counted among the requests."""
        name = handler.path.lstrip("/")
        body = self.files.get(name)
        refused = self.login is not None and handler.headers.get("Authorization") != self._expected_authorization()
        handler.send_response(401 if refused else 404 if body is None else 200)
        handler.send_header("Content-Length", "0" if refused or body is None else str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()

    def _expected_authorization(self) -> str:
        assert self.login is not None
        return "Basic " + base64.b64encode(":".join(self.login).encode()).decode()

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        name = handler.path.lstrip("/")
        requested_range = handler.headers.get("Range")
        authorization = handler.headers.get("Authorization")
        with self.lock:
            self.requests.append((name, requested_range))
            self.authorizations.append((name, authorization))
        if self.login is not None and authorization != self._expected_authorization():
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="index"')
            handler.send_header("Content-Length", "0")
            handler.send_header("Connection", "close")
            handler.end_headers()
            return
        if name in self.redirects:
            handler.send_response(302)
            handler.send_header("Location", self.redirects[name])
            handler.send_header("Content-Length", "0")
            handler.send_header("Connection", "close")
            handler.end_headers()
            return
        body = self.files.get(name)
        fault = self._take_fault(name)
        if fault.kind == "delay":
            time.sleep(fault.seconds)
        if body is None or fault.kind == "status":
            status = 404 if body is None else fault.status
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.send_header("Connection", "close")
            handler.end_headers()
            return
        if fault.kind == "endless":
            self._endless(handler)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", requested_range or "")
        if match and self.honour_range and int(match.group(1)) < len(body):
            start = int(match.group(1))
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        part = body[start:]
        if name.endswith("/"):  # a page of the simple API
            handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(part)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            if fault.kind == "cut":
                handler.wfile.write(part[: len(part) // 2])
                handler.wfile.flush()
                handler.close_connection = True
                return
            if fault.kind == "trickle":
                for offset in range(0, len(part), fault.piece):
                    handler.wfile.write(part[offset:offset + fault.piece])
                    handler.wfile.flush()
                    time.sleep(fault.seconds)
                return
            handler.wfile.write(part)
        except (BrokenPipeError, ConnectionResetError):
            pass


    @staticmethod
    def _endless(handler: http.server.BaseHTTPRequestHandler) -> None:
        """A 200 without a length whose body never ends (until the client hangs up)."""
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        piece = b"\0" * 65536
        try:
            while True:
                handler.wfile.write(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass


def simple_page(*wheels: Path) -> bytes:
    """The simple API's page listing ``wheels`` (served at ``simple/<name>/``, the wheels at the root)."""
    links = "".join(f'<a href="../../{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{w.name}</a>\n'
                    for w in wheels)
    return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()


LOCKED_URL = re.compile(r'url = "https?://[^"]*/([^/"]+)"')


def point_lock_at(project: Path, server: WheelServer) -> None:
    """Rewrite ``project/uv.lock`` so every file is downloaded from ``server``."""
    lock = project / "uv.lock"
    text = lock.read_text(encoding="utf-8")
    port = server.httpd.server_address[1]
    lock.write_text(LOCKED_URL.sub(lambda m: f'url = "http://127.0.0.1:{port}/{m.group(1)}"', text), encoding="utf-8")


def loopback_env() -> dict[str, str]:
    """Environment for a build that downloads from the loopback server, not through a proxy."""
    return {
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "NETRC": "/nonexistent/netrc",
        "HATCH_LAMBDA_DOWNLOAD_BACKOFF": "0.05",
        "HATCH_LAMBDA_DOWNLOAD_TIMEOUT": "10",
    }


def cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def assert_cache_holds_only_verified_files(cache: Path, *, allow_part: bool = False) -> None:
    """Every usable file under files/<xx>/<sha256>/ is whole: its digest is its directory's name.

    ``*.part`` files are downloads in progress, never used as they are (a build
    killed outright leaves one behind; ``allow_part`` accepts that).
    """
    for path in cache_files(cache):
        if path.name.endswith(".part"):
            assert allow_part, f"half-written download left in the cache: {path}"
            continue
        if path.relative_to(cache).parts[0] == "files":
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.parent.name, path
