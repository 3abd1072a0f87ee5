"""Helpers of the Python client's tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from coachdesk import AsyncCoachdesk


def make_user_token(username: str, roles: list[str], agents: tuple[str, ...] = ()) -> str:
    from accounts.services import token_create
    from tests.factories import UserFactory

    user = UserFactory(username=username, roles=roles)
    _, secret = token_create(user=user, name="python-client", agent_slugs=agents)
    return secret


def async_client(url: str, token: str, **options: Any) -> AsyncCoachdesk:
    """An async client with the tests' quick timings (close it inside its event loop)."""
    options.setdefault("flush_interval", 0.05)
    options.setdefault("backoff_base", 0.05)
    options.setdefault("max_backoff", 0.5)
    options.setdefault("timeout", 5.0)
    return AsyncCoachdesk(url, token, **options)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Polls `predicate` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


def stored_ids(agent: str) -> list[str]:
    """The external ids stored for `agent`, as the server's database has them."""
    from agents.models import Interaction

    return list(
        Interaction.objects.filter(agent__slug=agent)
        .order_by("external_id")
        .values_list("external_id", flat=True)
    )


# --- a proxy the test controls ---------------------------------------------------------------


def _reset(sock: socket.socket) -> None:
    """Closes with a TCP reset (SO_LINGER 0), as a crashed server would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream`, starting *down*: its port is bound
    (so no one else takes it) but not listening, so connecting is refused, as with a server
    that is not running.

    - `up()`: listens and forwards.
    - `down()`: stops listening and resets every open connection (a server that died).
    - `pause()` / `resume()`: connections are accepted but nothing is forwarded meanwhile
      (a server that hangs); what was held is forwarded on resume.
    - `lose_next_response()`: the next answer of the server is thrown away and the client's
      connection closed: the server did the work, the client never hears of it.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener: socket.socket | None = self._bind(0)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._lose = 0
        self._closed = False
        self._listening = False
        self.connections = 0

    @staticmethod
    def _bind(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return sock

    def up(self) -> None:
        with self._lock:
            if self._listening:
                return
            if self._listener is None:
                self._listener = self._bind(self.port)
            self._listener.listen(64)
            self._listening = True
            listener = self._listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            self._listening = False
            conns, self._conns = self._conns, set()
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone may not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            _reset(conn)

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def lose_next_response(self) -> None:
        with self._lock:
            self._lose += 1

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._listening or listener is not self._listener:
                    _reset(conn)
                    return
                self._conns.add(conn)
                self.connections += 1
            threading.Thread(target=self._pump, args=(conn,), daemon=True).start()

    def _take_lose(self) -> bool:
        with self._lock:
            if self._lose:
                self._lose -= 1
                return True
            return False

    def _pump(self, client: socket.socket) -> None:
        upstream = None
        try:
            while not self._flowing.wait(0.1):
                if self._closed or client not in self._conns:
                    return
            upstream = socket.create_connection(self.upstream, timeout=30)
            with self._lock:
                self._conns.add(upstream)
            while not self._closed:
                if not self._flowing.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        upstream.sendall(data)
                    elif self._take_lose():
                        return  # the answer goes nowhere; the client sees its connection close
                    else:
                        client.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(client)
                if upstream is not None:
                    self._conns.discard(upstream)
            with contextlib.suppress(OSError):
                client.close()
            if upstream is not None:
                with contextlib.suppress(OSError):
                    upstream.close()


def run_async(coroutine_function: Any) -> Any:
    """Runs `coroutine_function()` to completion on a fresh event loop in its own thread:
    the test thread may already run a loop (pytest-playwright's sync API leaves one), and
    asyncio.run() refuses to start inside a running loop."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine_function()).result()
