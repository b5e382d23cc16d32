"""Log lines on stderr: one per state change, never a stream key or a hash value."""

import logging
import sys


def setup_logging(level: int = logging.INFO, *, process: str = "main") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s [{process}] %(name)s: %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
