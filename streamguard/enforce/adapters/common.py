"""What the JSON publish hooks (MediaMTX, SRS) share."""

import json
from typing import Any


def json_object(body: bytes) -> dict[str, Any]:
    """The hook request's JSON object; ValueError for anything else."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("body is not a JSON object")
    return data
