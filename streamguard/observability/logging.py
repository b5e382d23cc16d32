"""Log lines on stderr: one per state change, never a stream key or a hash value.

A readable line by default; JSON lines (one object per line) with
``STREAMGUARD_LOG_FORMAT=json``, for log pipelines. The variable is read by every
process, so spawned worker processes log the same way as their parent.
"""

import json
import logging
import os
import sys
import time

LOG_FORMAT_VARIABLE = "STREAMGUARD_LOG_FORMAT"


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = {
            "time": f"{moment}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: int = logging.INFO, *, process: str = "main") -> None:
    handler = logging.StreamHandler(sys.stderr)
    wanted = os.environ.get(LOG_FORMAT_VARIABLE, "text").lower()
    if wanted == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s [{process}] %(name)s: %(message)s",
                datefmt="%Y-%m-%dT%H:%M:%S",
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if wanted not in ("text", "json"):
        logging.getLogger("streamguard").warning(
            "%s=%r: expected text or json; using text", LOG_FORMAT_VARIABLE, wanted[:20]
        )
