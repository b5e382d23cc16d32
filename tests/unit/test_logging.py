import json
import logging
import sys

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


def test_the_variable_selects_the_format(monkeypatch):
    monkeypatch.setenv("STREAMGUARD_LOG_FORMAT", "json")
    setup_logging()
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    monkeypatch.setenv("STREAMGUARD_LOG_FORMAT", "text")
    setup_logging()
    assert not isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
