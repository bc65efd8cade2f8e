"""A local HTTP(S) server for a test: started in a daemon thread, shut down and closed on the way out."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import HTTPServer


@contextlib.contextmanager
def serving(server: HTTPServer) -> Iterator[str]:
    """Serve until the block ends; yields the server's 127.0.0.1:<port>."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class StaticToken:
    """A token source for GraphClient that always hands out the same access token; these servers check none."""

    def __init__(self, value: str = "token-1") -> None:
        self.value = value

    def token(self) -> str:
        return self.value

    def invalidate(self) -> None:
        pass
