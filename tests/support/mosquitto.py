"""A real mosquitto broker on a free loopback port, optionally with a password file and ACL."""

import getpass
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .certs import Certificates
from .ports import free_port
from .processes import Server

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.conf"
# What a broker keeps across a restart, and when it saves it.
_PERSISTENCE_KEYS = {"persistence", "autosave_interval", "autosave_on_changes"}
_PERSISTENCE_KEYS |= {"max_queued_messages", "max_inflight_messages", "queue_qos0_messages"}
FAST_SAVES = ["persistence true", "autosave_interval 1"]


def deploy_persistence(conf: Path = DEPLOY_CONF) -> list[str]:
    """The persistence and queueing lines of ``conf`` (deploy/mosquitto.conf), to run a
    test broker that saves as the shipped one does (its own port and directory)."""
    lines = [line.strip() for line in conf.read_text().splitlines()]
    return [line for line in lines if line.split(" ", 1)[0] in _PERSISTENCE_KEYS]


class MosquittoUnavailable(RuntimeError):
    pass


@dataclass
class Mosquitto(Server):
    directory: Path
    users: dict[str, str] = field(default_factory=dict)  # name -> password; empty: anonymous
    acl: str = ""  # mosquitto ACL file text; empty: no ACL
    tls: Certificates | None = None  # TLS only, client certificates required
    # persistence and autosave lines; persistence_location is always ``directory``
    persistence: list[str] = field(default_factory=lambda: list(FAST_SAVES))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def url(self, user: str = "") -> str:
        auth = f"{user}:{self.users[user]}@" if user else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise MosquittoUnavailable("mosquitto is needed: install the Debian package mosquitto")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = [
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to user "mosquitto"
            f"listener {self.port} 127.0.0.1",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # retained messages and sessions survive a restart
            f"persistence_location {self.directory}/",
            "max_queued_messages 100000",  # per offline persistent session; the default is 1000
            *self.persistence,  # later lines win
        ]
        if self.tls:
            config += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
            ]
        if self.users:
            passwords = self.directory / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), user, password], check=True
                )
            passwords.chmod(0o600)
            config += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            config.append("allow_anonymous true")
        if self.acl:
            (self.directory / "acl").write_text(self.acl)
            config.append(f"acl_file {self.directory / 'acl'}")
        (self.directory / "mosquitto.conf").write_text("\n".join(config) + "\n")
        self._launch([binary, "-c", str(self.directory / "mosquitto.conf")])


@contextmanager
def mosquitto_broker(directory: Path, **options) -> Iterator[Mosquitto]:
    broker = Mosquitto(directory, **options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
