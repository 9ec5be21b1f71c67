"""A download's sockets, shut at once when the build is stopped.

A blocked ``connect``'s aftermath, a wait for the response or for the next
chunk of the body returns as soon as its socket is shut down, so a Ctrl-C
does not wait for a slow server (up to the timeout) in every download thread.
``Watch`` polls the stop event from a thread of its own while a download
runs, and builds the download's opener: HTTP(S) connections whose socket it
knows, and no redirect followed by urllib (see :func:`.download._open`).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.request
from email.message import Message
from typing import IO, Any

POLL = 0.05  # seconds between looks at the stop event


class Stopped(Exception):
    """The build is being stopped (Ctrl-C): the download was abandoned."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an ``HTTPError`` with its ``Location``: the download follows it, choosing its headers."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Message, newurl: str) -> urllib.request.Request | None:
        return None


class Watch:
    """The sockets of one download; all shut down when ``stop`` is set."""

    def __init__(self, stop: threading.Event | None) -> None:
        self.stop = stop
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        if self.stop is not None:
            self._thread = threading.Thread(target=self._run, name="hatch-lambda-download-stop", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> None:
        """Raise :class:`Stopped` when the build is being stopped."""
        if self.stop is not None and self.stop.is_set():
            raise Stopped()

    def _run(self) -> None:
        assert self.stop is not None
        while not self._done.wait(POLL):
            if self.stop.is_set():
                self._shut()
                return

    def _shut(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
        if self.stop is not None and self.stop.is_set():
            self._shut()

    def opener(self) -> urllib.request.OpenerDirector:
        """An opener (proxies as urllib reads them) whose connections this watch knows, following no redirect."""
        watch = self

        def tracked(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
            class Tracked(base):  # type: ignore[valid-type,misc]
                def connect(self) -> None:
                    super().connect()
                    watch.track(self.sock)

            return Tracked

        class Http(urllib.request.HTTPHandler):
            def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
                return super().do_open(tracked(http_class), req, **kwargs)

        class Https(urllib.request.HTTPSHandler):
            def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
                return super().do_open(tracked(http_class), req, **kwargs)

        return urllib.request.build_opener(_NoRedirect, Http, Https)
