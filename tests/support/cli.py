"""`streamguard` as a subprocess, as an operator runs it."""

import subprocess
import sys

from .redis import RedisServer


def streamguard(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "streamguard", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)


def blocklist(redis: RedisServer, *args: str) -> subprocess.CompletedProcess:
    """``streamguard blocklist ARGS… --redis URL``."""
    return streamguard("blocklist", *args, "--redis", redis.url)
