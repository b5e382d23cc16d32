"""What goes over the file: STREAMGUARD_* variables, then the command line's flags.

One order for ``run`` and ``enforce``: `resolve` loads the file (or the defaults),
applies the environment, then the flags that were given.
"""

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamguard.config.errors import ConfigError
from streamguard.config.load import http_address, load_file
from streamguard.config.model import Settings
from streamguard.infra.redis import RedisSettings


def resolve(
    path: Path | None, flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """The file's settings (defaults without one), then the environment, then ``flags``.

    Flags that are None were not given. A flag ``TABLE.KEY`` sets a key of a table
    (``mqtt.url``, ``enforce.adapter``); ``http`` takes HOST:PORT.
    """
    settings = from_environment(load_file(path) if path else Settings(), environ)
    return with_flags(settings, flags)


def with_flags(settings: Settings, flags: Mapping[str, Any]) -> Settings:
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for name, value in flags.items():
        if value is None:
            continue
        if name == "http":
            top |= http_address(value, "--http")
        elif "." in name:
            table, key = name.split(".", 1)
            tables.setdefault(table, {})[key] = value
        else:
            top[name] = value
    for table, values in tables.items():
        top[table] = replace(getattr(settings, table), **values)
    return replace(settings, **top)


def from_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """Apply STREAMGUARD_HTTP, _PROCESSES, _WORKER_ID, _REDIS_URL, _REDIS_PREFIX, _MQTT_URL."""
    environ = os.environ if environ is None else environ
    if "STREAMGUARD_HTTP" in environ:
        address = http_address(environ["STREAMGUARD_HTTP"], "STREAMGUARD_HTTP")
        settings = replace(settings, **address)
    if "STREAMGUARD_PROCESSES" in environ:
        text = environ["STREAMGUARD_PROCESSES"]
        if not text.isdigit():
            raise ConfigError(f"STREAMGUARD_PROCESSES: expected a whole number, got '{text}'")
        settings = replace(settings, processes=int(text))
    if "STREAMGUARD_WORKER_ID" in environ:
        settings = replace(settings, worker_id=environ["STREAMGUARD_WORKER_ID"])
    if "STREAMGUARD_MQTT_URL" in environ:
        settings = replace(
            settings, mqtt=replace(settings.mqtt, url=environ["STREAMGUARD_MQTT_URL"])
        )
    return replace(settings, redis=redis_from_environment(settings.redis, environ))


def redis_from_environment(
    redis: RedisSettings, environ: Mapping[str, str] | None = None
) -> RedisSettings:
    """STREAMGUARD_REDIS_URL and STREAMGUARD_REDIS_PREFIX over ``redis``."""
    environ = os.environ if environ is None else environ
    if "STREAMGUARD_REDIS_URL" in environ:
        redis = replace(redis, url=environ["STREAMGUARD_REDIS_URL"])
    if "STREAMGUARD_REDIS_PREFIX" in environ:
        redis = replace(redis, prefix=environ["STREAMGUARD_REDIS_PREFIX"])
    return redis
