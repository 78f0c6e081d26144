"""One way to run a wire simulator: an HTTP handler on a free 127.0.0.1 port, in a daemon thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def loopback_http(handler: type[BaseHTTPRequestHandler],
                  on_close: Callable[[], None] | None = None) -> Iterator[str]:
    """Serve `handler` until the block ends; yields the base URL `http://127.0.0.1:<port>`.
    `on_close` runs first on the way out (to release requests a simulator holds, e.g. a hang)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        if on_close is not None:
            on_close()
        server.shutdown()
        server.server_close()
