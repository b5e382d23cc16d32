"""``streamguard api`` on a real loopback socket, with real pictures and encoded video:
what it matches and decides, what it refuses and how, and that it answers as its
OpenAPI document and Open Media Match say."""

import asyncio
import io
import json
import logging

import aiohttp
import av
import jsonschema
import numpy as np
import pytest
from openapi_spec_validator import validate as validate_spec
from PIL import Image

from streamguard.api.app import OPENAPI, build_app
from streamguard.api.service import ListSource, api_context
from streamguard.api.tokens import Tokens
from streamguard.hashing.picture import hash_picture, load_picture, read_picture

from ..conftest import SAMPLES
from ..support.api import call, frames_gif, picture, png, run, sample_settings, serving
from ..support.cli import streamguard

pytestmark = pytest.mark.integration

FLAGGED = SAMPLES / "flagged" / "flagged_01.png"
CONTROL = SAMPLES / "images" / "control_01.png"
CLIPS = SAMPLES / "clips"
DOCUMENT = json.loads(OPENAPI)
MULTIPART_X = "multipart/form-data; boundary=x"


def conforms(answer: object, schema_name: str) -> None:
    """``answer`` is what the OpenAPI document says the route answers."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": DOCUMENT["components"]}
    jsonschema.validate(answer, schema)


def post(session, url, body: bytes, content_type: str):
    return call(session, "POST", url, data=body, headers={"Content-Type": content_type})


def post_form(session, url, field: str, body: bytes, content_type: str = "", name="f"):
    form = aiohttp.FormData()
    form.add_field(field, body, filename=name, content_type=content_type or None)
    return call(session, "POST", url, data=form)


def test_pictures_are_matched_and_decided_as_frames_are():
    flagged = picture(FLAGGED)
    mirrored = flagged.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    letterboxed = Image.new("RGB", (1280, 1040))
    letterboxed.paste(flagged.resize((1280, 720)), (0, 160))

    async def scenario():
        async with serving(sample_settings()) as base, aiohttp.ClientSession() as session:
            url = f"{base}/v1/match"
            return {
                "raw": await post(session, url, FLAGGED.read_bytes(), "image/png"),
                "form": await post_form(session, url, "file", FLAGGED.read_bytes()),
                "sniffed": await post(session, url, png(flagged), "application/octet-stream"),
                "control": await post(session, url, CONTROL.read_bytes(), "image/png"),
                "mirrored": await post(session, url, png(mirrored), "image/png"),
                "letterboxed": await post(session, url, png(letterboxed), "image/png"),
            }

    answers = run(scenario())
    for name in ("raw", "form", "sniffed"):
        status, answer = answers[name]
        assert status == 200, answer
        conforms(answer, "UploadVerdict")
        assert answer["decision"] == "kill"
        assert answer["media"] == {"kind": "picture", "width": 1280, "height": 720}
        pdq = next(m for m in answer["matches"] if m["algo"] == "pdq")
        # the reference PDQ of the file: the hash a shared list holds, 0 bits off
        assert (pdq["entry_id"], pdq["distance"], pdq["transform"]) == ("flagged_01-pdq", 0, "")
    assert answers["control"] == (200, {**answers["control"][1], "matches": [], "decision": None})
    status, mirrored_answer = answers["mirrored"]
    found = {m["transform"] for m in mirrored_answer["matches"] if m["algo"] == "pdq"}
    assert (status == 200 and "flipy" in found) or "flipx" in found
    # a flip is more ways to match by chance: one picture found so is reviewed, not killed
    assert mirrored_answer["decision"] == "review"
    status, boxed = answers["letterboxed"]
    assert any(m["transform"].startswith("borders") for m in boxed["matches"]), boxed
    assert boxed["decision"] == "kill"


def test_videos_are_sampled_as_scan_samples_them():
    async def scenario():
        async with serving(sample_settings()) as base, aiohttp.ClientSession() as session:
            url = f"{base}/v1/match"
            flagged = await post_form(
                session, url, "file", (CLIPS / "flagged_720p.mp4").read_bytes(), "video/mp4"
            )
            clean = await post(session, url, (CLIPS / "clean_360p.flv").read_bytes(), "video/x-flv")
            sniffed = await post(
                session, url, (CLIPS / "flagged_360p.flv").read_bytes(), "application/octet-stream"
            )
            return flagged, clean, sniffed

    (status, flagged), (clean_status, clean), (_, sniffed) = run(scenario())
    assert status == 200, flagged
    conforms(flagged, "UploadVerdict")
    assert flagged["decision"] == "kill"
    assert flagged["media"]["kind"] == "video" and flagged["media"]["frames_sampled"] >= 5
    # the sample clips show their flagged picture from 3.5 s of each 10 s loop
    assert {round(m["pts_s"]) for m in flagged["matches"]} & {3, 4, 5}
    assert clean_status == 200 and clean["decision"] is None and clean["matches"] == []
    assert sniffed["decision"] == "kill" and sniffed["media"]["kind"] == "video"


def test_an_animated_picture_is_scanned_frame_by_frame():
    """The flagged picture as the second frame of a GIF: its first frame is not all it shows."""
    frames = [picture(CONTROL).resize((640, 360)), picture(FLAGGED).resize((640, 360))]

    async def scenario():
        async with serving(sample_settings()) as base, aiohttp.ClientSession() as session:
            return await post(session, f"{base}/v1/match", frames_gif(frames), "image/gif")

    status, answer = run(scenario())
    assert status == 200, answer
    assert answer["media"]["kind"] == "video"
    assert {m["entry_id"] for m in answer["matches"]} & {"flagged_01-pdq", "flagged_01-phash"}
    assert answer["decision"] in ("kill", "review")


def test_hashes_a_platform_computed_are_looked_up_one_or_many():
    flagged = hash_picture(load_picture(FLAGGED), ["pdq"])[0].hex
    black_picture = read_picture(png(Image.new("RGB", (640, 480))), "black", 10**7)
    black = hash_picture(black_picture, ["pdq"])[0].hex

    async def scenario():
        async with serving(sample_settings()) as base, aiohttp.ClientSession() as session:
            one = await call(session, "GET", f"{base}/v1/match?algo=pdq&hash={flagged}")
            weak = await call(
                session, "GET", f"{base}/v1/match?algo=PDQ&hash={flagged.upper()}&quality=20"
            )
            featureless = await call(session, "GET", f"{base}/v1/match?algo=pdq&hash={black}")
            many = await call(
                session,
                "POST",
                f"{base}/v1/lookup",
                json={
                    "hashes": [
                        {"algo": "pdq", "hash": flagged},
                        {"algo": "dhash", "hash": "0" * 16},
                    ]
                },
            )
            return one, weak, featureless, many

    (status, one), (_, weak), (_, featureless), (many_status, many) = run(scenario())
    assert status == 200 and one["decision"] == "kill" and one["looked_up"]
    conforms(one, "HashVerdict")
    assert one["matches"][0]["entry_id"] == "flagged_01-pdq"
    assert weak == {"matches": [], "decision": None, "looked_up": False}  # PDQ's quality gate
    # a black frame's hash matches nothing, whatever a careless list holds
    assert featureless == {"matches": [], "decision": None, "looked_up": False}
    assert many_status == 200
    conforms(many, "LookupResults")
    assert [r["decision"] for r in many["results"]] == ["kill", None]


def test_bad_uploads_are_refused_with_one_line_and_a_4xx(tmp_path):
    """Every refusal names its reason; nothing an upload names is opened (the playlist's
    segment is the flagged clip: had FFmpeg read it, the answer would be a kill)."""
    segment = tmp_path / "segment.flv"
    segment.write_bytes((CLIPS / "flagged_360p.flv").read_bytes())
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
        f"#EXTINF:10.0,\nfile://{segment}\n#EXTINF:10.0,\n{segment}\n#EXT-X-ENDLIST\n"
    ).encode()
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # a few KB that declare 900 megapixels
    wide = png(Image.new("RGB", (4000, 3000), "white"))
    video = (CLIPS / "flagged_360p.flv").read_bytes()
    mp4 = (CLIPS / "flagged_720p.mp4").read_bytes()
    settings = sample_settings(
        max_body_bytes=2_000_000, max_picture_pixels=10_000_000, max_video_s=5
    )

    async def scenario():
        async with serving(settings) as base, aiohttp.ClientSession() as session:
            url = f"{base}/v1/match"
            return {
                "text": await post(session, url, b"hello", "text/plain"),
                "empty": await post(session, url, b"", "image/png"),
                "garbage": await post(
                    session, url, b"\x00garbage" * 100, "application/octet-stream"
                ),
                "not a picture": await post(session, url, b"\x00garbage" * 100, "image/jpeg"),
                "truncated": await post(session, url, mp4[:3000], "video/mp4"),
                "playlist": await post(session, url, playlist, "application/octet-stream"),
                "playlist as video": await post(session, url, playlist, "video/mp2t"),
                "bomb": await post(session, url, bomb.getvalue(), "image/png"),
                "pixels": await post(session, url, wide, "image/png"),
                "too long": await post(session, url, video, "video/x-flv"),
                "body": await post(session, url, b"\x00" * 2_000_001, "image/png"),
                "no file": await call(session, "POST", url, data=fields_only()),
                "no boundary": await post(session, url, b"garbage", MULTIPART_X),
                "bad part": await post(
                    session, url, b"--x\r\nBad Header\r\n\r\nabc\r\n--x--\r\n", MULTIPART_X
                ),
                "cut short": await post(session, url, b"--x\r\n\r\n", MULTIPART_X),
                "two files": await post_two_files(session, url),
                "no hash": await call(session, "GET", url),
                "bad algo": await call(session, "GET", f"{url}?algo=md5&hash=00"),
                "bad json": await post(session, f"{base}/v1/lookup", b"{", "application/json"),
                "too many": await call(
                    session,
                    "POST",
                    f"{base}/v1/lookup",
                    json={"hashes": [{"algo": "dhash", "hash": "1" * 16}] * 1001},
                ),
                "not found": await call(session, "GET", f"{base}/v2/match"),
                "wrong method": await call(session, "DELETE", url),
            }

    answers = run(scenario())
    expected = {
        "text": (415, "unsupported_media"),
        "empty": (400, "malformed"),
        "garbage": (422, "undecodable"),
        "not a picture": (422, "undecodable"),
        "truncated": (422, "undecodable"),
        "playlist": (422, "undecodable"),
        "playlist as video": (422, "undecodable"),
        "bomb": (413, "picture_too_large"),
        "pixels": (413, "picture_too_large"),
        "too long": (413, "video_too_long"),
        "body": (413, "too_large"),
        "no file": (400, "malformed"),
        "no boundary": (400, "malformed"),
        "bad part": (400, "malformed"),
        "cut short": (400, "malformed"),
        "two files": (400, "malformed"),
        "no hash": (400, "malformed"),
        "bad algo": (400, "malformed"),
        "bad json": (400, "malformed"),
        "too many": (413, "too_large"),
        "not found": (404, "not_found"),
        "wrong method": (405, "method_not_allowed"),
    }
    for name, (status, reason) in expected.items():
        got_status, answer = answers[name]
        assert (got_status, answer["reason"]) == (status, reason), (name, answer)
        conforms(answer, "Error")
        assert "\n" not in answer["error"] and answer["error"], name


def fields_only():
    return aiohttp.FormData({"x": "1"}, default_to_multipart=True)


def post_two_files(session, url):
    form = aiohttp.FormData()
    form.add_field("file", FLAGGED.read_bytes(), filename="a.png", content_type="image/png")
    form.add_field("file", CONTROL.read_bytes(), filename="b.png", content_type="image/png")
    return call(session, "POST", url, data=form)


def test_open_media_match_routes_answer_as_omm_does():
    flagged = hash_picture(load_picture(FLAGGED), ["pdq"])[0].hex

    async def scenario():
        async with serving(sample_settings()) as base, aiohttp.ClientSession() as session:
            query = f"signal_type=pdq&signal={flagged}"
            return {
                "raw": await call(session, "GET", f"{base}/m/raw_lookup?{query}"),
                "raw distance": await call(
                    session, "GET", f"{base}/m/raw_lookup?{query}&include_distance=true"
                ),
                "other bank": await call(
                    session, "GET", f"{base}/m/raw_lookup?{query}&banks=another"
                ),
                "lookup": await call(session, "GET", f"{base}/m/lookup?{query}"),
                "lookup url": await call(session, "GET", f"{base}/m/lookup?url=http://x/y.jpg"),
                "lookup file": await post_form(
                    session, f"{base}/m/lookup", "photo", FLAGGED.read_bytes()
                ),
                "no type": await call(session, "GET", f"{base}/m/raw_lookup?signal=00"),
                "unknown type": await call(
                    session, "GET", f"{base}/m/raw_lookup?signal_type=video_md5&signal=00"
                ),
                "status": await call(session, "GET", f"{base}/m/index/status"),
                "status pdq": await call(session, "GET", f"{base}/m/index/status?signal_type=pdq"),
                "hash photo": await post_form(
                    session, f"{base}/h/hash", "photo", FLAGGED.read_bytes()
                ),
                "hash video": await post_form(
                    session, f"{base}/h/hash", "video", (CLIPS / "flagged_360p.flv").read_bytes()
                ),
                "hash url": await call(session, "GET", f"{base}/h/hash?url=http://x/y.jpg"),
            }

    answers = run(scenario())
    assert answers["raw"] == (200, {"matches": ["flagged_01-pdq"]})
    assert answers["raw distance"] == (
        200,
        {"matches": [{"bank_content_id": "flagged_01-pdq", "distance": "0"}]},
    )
    assert answers["other bank"] == (200, {"matches": []})
    assert answers["lookup"] == (
        200,
        {"streamguard-samples": [{"bank_content_id": "flagged_01-pdq", "distance": "0"}]},
    )
    status, by_type = answers["lookup file"]
    assert status == 200
    assert by_type["pdq"] == {
        "streamguard-samples": [{"bank_content_id": "flagged_01-pdq", "distance": "0"}]
    }
    for name in ("lookup url", "no type", "unknown type", "hash url"):
        status, answer = answers[name]
        assert status == 400 and set(answer) == {"message"}, (name, answer)
    assert answers["status"][1]["pdq"]["present"] and answers["status"][1]["pdq"]["size"] == 4
    assert set(answers["status pdq"][1]) == {"pdq"}
    reference = streamguard(
        "hash", str(FLAGGED), "--json", "--algo", "pdq", "--algo", "phash", "--algo", "dhash"
    )
    assert reference.returncode == 0
    expected = {
        json.loads(line)["algo"]: json.loads(line)["hash"] for line in reference.stdout.splitlines()
    }
    assert answers["hash photo"] == (200, expected)
    vpdq = streamguard("hash", "--vpdq", str(CLIPS / "flagged_360p.flv"))
    assert answers["hash video"] == (200, {"vpdq": vpdq.stdout.strip().split(maxsplit=1)[-1]})


def test_tokens_name_the_client_and_open_routes_stay_open(tmp_path, caplog):
    token = "t" * 24
    (tmp_path / "platform-a").write_text(token)
    tokens = Tokens.from_files([tmp_path / "platform-a"])
    flagged = hash_picture(load_picture(FLAGGED), ["pdq"])[0].hex

    async def scenario():
        async with serving(sample_settings(), tokens) as base, aiohttp.ClientSession() as session:
            url = f"{base}/v1/match?algo=pdq&hash={flagged}"
            bearer = {"Authorization": f"Bearer {token}"}
            return {
                "none": await call(session, "GET", url),
                "wrong": await call(session, "GET", url, headers={"Authorization": "Bearer x" * 3}),
                "omm none": await call(session, "GET", f"{base}/m/index/status"),
                "right": await call(session, "GET", url, headers=bearer),
                "healthz": await call(session, "GET", f"{base}/healthz"),
                "readyz": await call(session, "GET", f"{base}/readyz"),
                "openapi": await call(session, "GET", f"{base}/openapi.json"),
                "metrics": await call(session, "GET", f"{base}/metrics"),
            }

    with caplog.at_level(logging.DEBUG):
        answers = run(scenario())
    assert answers["none"][0] == 401 and answers["none"][1]["reason"] == "unauthorized"
    assert answers["wrong"][0] == 401
    assert answers["omm none"] == (401, {"message": "missing or unknown bearer token"})
    assert answers["right"][0] == 200 and answers["right"][1]["decision"] == "kill"
    assert answers["healthz"] == (200, {"alive": True})
    assert answers["readyz"][0] == 200 and answers["readyz"][1]["ready"] is True
    assert answers["openapi"] == (200, DOCUMENT)
    metrics = answers["metrics"][1]
    assert (
        'streamguard_api_requests_total{client="platform-a",method="GET",route="/v1/match",'
        'status="200"}' in metrics
    )
    assert 'streamguard_api_refusals_total{reason="unauthorized"}' in metrics
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused: 401 unauthorized" in logged
    assert flagged not in logged and token not in logged  # neither hashes nor tokens


def test_a_list_not_loaded_yet_is_a_503_and_readyz_says_so():
    source = ListSource(sample_settings())
    source.status = lambda: {"source": "redis", "loaded": False}  # type: ignore[method-assign]

    async def scenario():
        async with (
            serving(sample_settings(), source=source) as base,
            aiohttp.ClientSession() as session,
        ):
            return (
                await call(session, "GET", f"{base}/v1/match?algo=dhash&hash={'1' * 16}"),
                await call(session, "GET", f"{base}/readyz"),
            )

    (status, answer), (ready_status, ready) = run(scenario())
    assert (status, answer["reason"]) == (503, "not_ready")
    assert ready_status == 503 and ready["ready"] is False


def test_the_openapi_document_is_valid_and_names_every_route():
    validate_spec(DOCUMENT)
    app = build_app(api_context(sample_settings(), Tokens({}), ListSource(sample_settings())))
    served = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
    }
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert served == documented


def test_a_body_that_does_not_arrive_in_time_is_a_408():
    """A client that sends its head and then trickles (or stops) holds nothing for long."""

    async def scenario():
        async with serving(sample_settings(request_timeout_s=0.5)) as base:
            port = int(base.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /v1/match HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                b"Content-Length: 100000\r\n\r\n" + FLAGGED.read_bytes()[:1000]
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await asyncio.wait_for(reader.readexactly(length), 10)
            writer.close()
            return head, body

    head, body = run(scenario())
    assert head.startswith(b"HTTP/1.1 408"), head
    assert json.loads(body)["reason"] == "timeout"


def flash_video(flash_start_s: float, flash_s: float, seconds: int = 12, fps: int = 25) -> bytes:
    """A still picture for ``seconds``, with the flagged picture flashed between keyframes
    (one keyframe every 10 s, no keyframe at the cut): what an uploader who reads the
    sampling rules would make."""
    control = np.asarray(picture(CONTROL).resize((640, 360)))
    flagged = np.asarray(picture(FLAGGED).resize((640, 360)))
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"g": str(10 * fps), "sc_threshold": "0", "bf": "0"}
        for number in range(seconds * fps):
            shown = flagged if flash_start_s <= number / fps < flash_start_s + flash_s else control
            for packet in stream.encode(av.VideoFrame.from_ndarray(shown, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


@pytest.mark.parametrize(("start_s", "flash_s"), [(3.1, 0.2), (7.3, 1.0)])
def test_a_flash_between_keyframes_is_seen(start_s, flash_s):
    """The flagged picture shown for a fraction of a second, far from any keyframe: the
    upload is sampled as `scan` samples files (guard: the cut is a sample)."""
    video = flash_video(start_s, flash_s)

    async def scenario():
        async with serving(sample_settings()) as base, aiohttp.ClientSession() as session:
            return await post(session, f"{base}/v1/match", video, "video/mp4")

    status, answer = run(scenario())
    assert status == 200 and answer["decision"] == "kill", answer
    assert all(start_s <= m["pts_s"] < start_s + flash_s for m in answer["matches"])


def test_hash_refuses_a_picture_over_the_limits_as_match_does():
    """An upload of no declared type that is a picture too large is refused as one, by
    both routes, not tried as a video (one rule: scans.read_still)."""
    wide = png(Image.new("RGB", (4000, 3000), "white"))

    async def scenario():
        settings = sample_settings(max_picture_pixels=10_000_000)
        async with serving(settings) as base, aiohttp.ClientSession() as session:
            hashed = await post_form(session, f"{base}/h/hash", "file", wide)
            matched = await post_form(session, f"{base}/v1/match", "file", wide)
            return hashed, matched

    (hash_status, hashed), (match_status, matched) = run(scenario())
    assert (match_status, matched["reason"]) == (413, "picture_too_large")
    assert hash_status == 413 and "more than 10,000,000 pixels" in hashed["message"]
