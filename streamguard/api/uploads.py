"""An upload's bytes, read from a request into memory and never further (no file, no log),
raw with its ``Content-Type`` or as the one file of a ``multipart/form-data`` body.

aiohttp parses the HTTP and the multipart framing; this module bounds what is read (the
body limit is checked on ``Content-Length`` before reading, and on the bytes as they
come for chunked bodies) and tells a picture from a video.
"""

from dataclasses import dataclass
from typing import Literal

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from streamguard.api.refusals import Refusal, malformed

Kind = Literal["picture", "video"]
_CHUNK_BYTES = 256 * 1024
# Multipart field names of the file: streamguard's, and Open Media Match's content types.
FIELD_KINDS: dict[str, Kind | None] = {"file": None, "photo": "picture", "video": "video"}


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    kind: Kind | None  # None: to be told from the bytes


def kind_of(content_type: str) -> Kind | None:
    """The kind a media type names; None for application/octet-stream or none given;
    Refusal (415) for any other."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type.startswith("image/"):
        return "picture"
    if media_type.startswith("video/"):
        return "video"
    if media_type in ("", "application/octet-stream"):
        return None
    raise Refusal(
        415,
        "unsupported_media",
        f"Content-Type {media_type[:60]!r}: send a picture (image/*) or a video (video/*), "
        "raw or as multipart/form-data",
    )


async def read_upload(request: web.Request, max_bytes: int) -> Upload:
    """The upload a POST carries (Refusal 400, 413 or 415 if none, too large, or not
    media)."""
    _check_length(request, max_bytes)
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request, max_bytes)
    kind = kind_of(request.headers.get("Content-Type", ""))
    data = await read_bounded(request, max_bytes)
    if not data:
        raise malformed("empty body: send a picture or a video")
    return Upload(data, kind)


async def read_bounded(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, or Refusal 413 as soon as it passes ``max_bytes``."""
    _check_length(request, max_bytes)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_length(request: web.Request, max_bytes: int) -> None:
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> Refusal:
    return Refusal(413, "too_large", f"body larger than {max_bytes:,} bytes")


async def _read_multipart(request: web.Request, max_bytes: int) -> Upload:
    """The one file of a multipart body; aiohttp's reader raises ValueError (and, for some
    framings, AssertionError; for a part's bad headers, its HTTP parser's error) on a body
    that is not the multipart it says it is."""
    try:
        return await _one_file(await request.multipart(), max_bytes)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        reason = " ".join(str(exc).split())[:100] or exc.__class__.__name__
        raise malformed(f"multipart body: {reason}") from None


async def _one_file(reader: MultipartReader, max_bytes: int) -> Upload:
    found: Upload | None = None
    size = 0
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name not in FIELD_KINDS:
            continue  # other fields, and nested multiparts, are not read into memory
        if found is not None:
            raise malformed("multipart body: send one file")
        kind = FIELD_KINDS[part.name] or kind_of(part.headers.get("Content-Type", ""))
        chunks = []
        while chunk := await part.read_chunk(_CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
        found = Upload(b"".join(chunks), kind)
    if found is None or not found.data:
        fields = ", ".join(f"'{name}'" for name in FIELD_KINDS)
        raise malformed(f"multipart body: no file in a field named {fields}")
    return found
