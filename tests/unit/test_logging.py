import json
import logging
import sys

import pytest

from streamguard.observability.logging import JsonFormatter, setup_logging


def test_json_lines_carry_level_process_logger_and_exception():
    formatter = JsonFormatter("worker-1")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "streamguard.worker", logging.ERROR, "", 0, "s %s: x", ("cam",), None
        )
        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert line["level"] == "ERROR" and line["process"] == "worker-1"
    assert line["logger"] == "streamguard.worker" and line["message"] == "s cam: x"
    assert line["time"].endswith("Z") and "ValueError: boom" in line["exception"]


@pytest.fixture
def root_logger():
    """setup_logging() replaces the root logger's handlers: put them back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_variable_selects_the_format(monkeypatch, root_logger):
    monkeypatch.setenv("STREAMGUARD_LOG_FORMAT", "json")
    setup_logging()
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    monkeypatch.setenv("STREAMGUARD_LOG_FORMAT", "text")
    setup_logging()
    assert not isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
