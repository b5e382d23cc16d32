"""Hostile-input tests reuse the integration suite's real servers (nginx-rtmp,
redis-server) and its report hook, which prints a server's log after a failed test."""

from ..integration.conftest import (  # noqa: F401
    nginx_rtmp,
    pytest_runtest_makereport,
    redis,
)
