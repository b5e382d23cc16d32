"""``streamguard enforce``: end killed streams on the media server.

Settings come from the TOML file ``run`` uses (``[[streams]]``, ``[mqtt]`` and the
``[enforce]`` table), then ``STREAMGUARD_MQTT_URL``, then the flags.
"""

import argparse
import asyncio
from dataclasses import replace
from pathlib import Path

from streamguard import config
from streamguard.cli.options import Subcommands
from streamguard.enforce import settings
from streamguard.enforce.adapters import ADAPTERS
from streamguard.enforce.targets import ConfigResolver
from streamguard.observability.logging import setup_logging


def add_parser(commands: Subcommands) -> None:
    enforce = commands.add_parser(
        "enforce", help="end killed streams on the media server (nginx-rtmp, MediaMTX, SRS)"
    )
    enforce.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file: [[streams]], [mqtt], [enforce]"
    )
    enforce.add_argument(
        "--stream", action="append", default=[], metavar="ID=URL", help="repeatable"
    )
    enforce.add_argument("--mqtt", metavar="URL", help="broker URL (mqtt:// or mqtts://)")
    enforce.add_argument("--adapter", choices=list(ADAPTERS), help="the media server")
    enforce.add_argument(
        "--api-url", metavar="URL", help="nginx-rtmp control URL, or MediaMTX/SRS API URL"
    )
    enforce.add_argument(
        "--listen", metavar="HOST:PORT", help="the publish hook (default 127.0.0.1:9311)"
    )
    enforce.add_argument(
        "--hook-secret-file", type=Path, metavar="FILE", help="the hook URL's ?secret= value"
    )
    enforce.add_argument(
        "--state-file", type=Path, metavar="FILE", help="SQLite file with the deny list"
    )
    enforce.set_defaults(handler=cmd_enforce)


def cmd_enforce(args: argparse.Namespace) -> int:
    given = ("adapter", "api_url", "listen", "hook_secret_file", "state_file")
    flags = {f"enforce.{name}": getattr(args, name) for name in given} | {"mqtt.url": args.mqtt}
    base = config.resolve(args.config, flags)
    enforce = base.enforce
    settings.check(enforce)
    streams = base.streams + tuple(config.parse_stream_flag(text) for text in args.stream)
    config.check_streams(streams)
    registered = base.cluster.enabled and base.redis.url
    if not streams and not registered:
        raise config.ConfigError(
            "no streams: give --stream ID=URL or [[streams]] in --config, or enable [cluster]"
        )
    mqtt = replace(
        base.mqtt,
        client_id=enforce.client_id,
        persistent_session=True,  # kills sent while enforce is down wait at the broker
    )
    if not mqtt.url:
        raise config.ConfigError(
            "no MQTT broker: give --mqtt URL, [mqtt] url in --config, or STREAMGUARD_MQTT_URL"
        )
    setup_logging()
    # Imported here, not at the top: `run`'s worker processes import this module with the
    # CLI, and in prometheus-client's multiprocess mode every metric a process creates
    # lands in run's /metrics, whatever its registry.
    from streamguard.enforce import service
    from streamguard.enforce.registry import RegistryResolver

    configured = ConfigResolver(streams)
    resolver = RegistryResolver(configured, base.redis) if registered else configured
    asyncio.run(service.run(enforce, mqtt, resolver))
    return 0
