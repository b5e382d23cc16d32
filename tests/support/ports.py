"""Loopback ports for the real servers the integration tests and benchmarks start."""

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (another process may take it first)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_ports(
    *ports: int, timeout_s: float = 10.0, alive: Callable[[], bool] = lambda: True
) -> None:
    """Return once every port accepts a connection; fail after ``timeout_s`` or when not alive()."""
    deadline = time.monotonic() + timeout_s
    pending = list(ports)
    while pending:
        pending = [port for port in pending if not accepts_connections(port)]
        if not pending:
            return
        if not alive():
            raise RuntimeError(f"server exited before listening on {pending}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{pending} after {timeout_s} s")
        time.sleep(0.05)
