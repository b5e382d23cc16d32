"""A real redis-server on a free loopback port, with AOF so a kill -9 keeps the data."""

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .certs import Certificates
from .ports import free_port
from .processes import Server

Appendfsync = Literal["always", "everysec", "off"]  # "off": no AOF at all


class RedisUnavailable(RuntimeError):
    pass


@dataclass
class RedisServer(Server):
    directory: Path
    password: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    tls: Certificates | None = None  # TLS only, client certificates required
    appendfsync: Appendfsync = "always"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(
                "redis-server is needed: install the Debian package redis-server"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            'save ""',
            f"logfile {self.log}",
        ]
        if self.appendfsync == "off":
            config.append("appendonly no")
        else:
            # No automatic rewrite: its fork would copy-on-write gigabytes during bulk writes.
            config += [
                "appendonly yes",
                f"appendfsync {self.appendfsync}",
                "auto-aof-rewrite-percentage 0",
            ]
        if self.password:
            config.append(f"requirepass {self.password}")
        if self.tls:
            config[0] = "port 0"
            config += [
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls.server_cert}",
                f"tls-key-file {self.tls.server_key}",
                f"tls-ca-cert-file {self.tls.ca}",
            ]
        (self.directory / "redis.conf").write_text("\n".join(config) + "\n")
        self._launch([binary, str(self.directory / "redis.conf")])

    def restart(self) -> None:
        self.kill()
        self.start()


@contextmanager
def redis_server(
    directory: Path,
    password: str = "",
    tls: Certificates | None = None,
    appendfsync: Appendfsync = "always",
) -> Iterator[RedisServer]:
    server = RedisServer(directory, password, tls=tls, appendfsync=appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def import_blocklist(server: RedisServer, *files: Path | str) -> None:
    """``streamguard blocklist import FILE… --redis URL``; raises with its stderr if it fails."""
    command = [sys.executable, "-m", "streamguard", "blocklist", "import", "--redis", server.url]
    done = subprocess.run([*command, *map(str, files)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"blocklist import failed: {done.stderr}")
