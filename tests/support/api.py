"""The matching API served in-process on a real loopback socket, and media made for it."""

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from streamguard.api.app import make_runner
from streamguard.api.service import ListSource, api_context
from streamguard.api.tokens import Tokens
from streamguard.config import ApiSettings, Settings
from streamguard.samples import SAMPLES_DIR

SAMPLE_LIST = SAMPLES_DIR / "blocklist.csv"


def sample_settings(**api: Any) -> Settings:
    return Settings(blocklists=(SAMPLE_LIST,), api=replace(ApiSettings(), **api))


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, tokens: Tokens | None = None, source: ListSource | None = None
) -> AsyncIterator[str]:
    """The API's base URL while the body runs."""
    context = api_context(settings, tokens or Tokens({}), source or ListSource(settings))
    runner = make_runner(context, shutdown_timeout_s=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        context.scans.close()


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **options: Any
) -> tuple[int, Any]:
    async with session.request(method, url, **options) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario, 120))


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def picture(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return opened.convert("RGB")


def frames_gif(images: Iterator[Image.Image] | list[Image.Image], duration_ms: int = 1000) -> bytes:
    """An animated GIF of ``images``, each shown ``duration_ms``."""
    images = list(images)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=duration_ms)
    return out.getvalue()
