"""What every route of the API reads: the matcher, the scans, the limits, readiness."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streamguard.api.refusals import Refusal
from streamguard.api.scans import Scans
from streamguard.api.tokens import Tokens
from streamguard.blocklist.memory import Blocklist
from streamguard.config.model import ApiSettings
from streamguard.detect.upload import UploadMatcher


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: ApiSettings
    blocklist: Blocklist
    matcher: UploadMatcher
    scans: Scans
    tokens: Tokens
    blocklist_status: Callable[[], dict[str, Any]]  # as /readyz shows it; "loaded" in it
    built_to: Callable[[], int]  # unix time the index was last known equal to its source

    @property
    def ready(self) -> bool:
        return bool(self.blocklist_status()["loaded"])

    def require_ready(self) -> None:
        if not self.ready:
            raise Refusal(503, "not_ready", "the blocklist is not loaded yet; retry shortly")


CONTEXT = web.AppKey("context", ApiContext)
CLIENT = web.RequestKey("client", str)  # the request's client name, set by the middleware
