"""What a parser of untrusted input promises about its errors, and inputs that broke that.

Shared by the hypothesis tests (test_fuzz_parsers.py) and the atheris targets
(atheris_targets.py): an error message is one log line, and a blocklist's hash values
never reach it (hash lists are confidential).
"""

import re
from pathlib import Path

DEEP = b"[" * 2000 + b"]" * 2000  # past the recursion limit
HUGE_INT = b'{"action": ' + b"9" * 5000 + b"}"  # past int's 4300 digits

# What docs/events.md and docs/cluster.md promise of a stream id (not the code's regex).
DOCUMENTED_STREAM_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEX_RUN = re.compile("[0-9a-f]{16,}")
# Entry ids are shown: every event carries one (HMA's are 16 decimal digits).
_DUPLICATE_ID = re.compile(r"duplicate id '.*' \(first on line \d+\)$")
SHORTEST_HASH = 16  # hex digits of a pHash or dHash


def assert_one_line(message: str) -> None:
    """A line break in a message would forge a second log line."""
    assert "\n" not in message and "\r" not in message, repr(message)


def assert_no_hash(message: str, data: bytes) -> None:
    """No 16 hex digits in a row of ``message`` (any case) come from ``data``."""
    source = data.decode("utf-8", "replace").lower()
    for run in _HEX_RUN.findall(message.lower()):
        for start in range(len(run) - SHORTEST_HASH + 1):
            piece = run[start : start + SHORTEST_HASH]
            assert piece not in source, f"{message!r} shows {piece!r} from the input"


def assert_blocklist_error(message: str, path: Path, data: bytes) -> None:
    """``FILE: problem`` in one line, without a hash value of the file's ``data``."""
    assert message.startswith(f"{path}: "), message
    assert_one_line(message)
    assert_no_hash(_DUPLICATE_ID.sub("duplicate id", message), data)
