import pytest

from streamguard.errors import SourceError
from streamguard.infra.redaction import redact
from streamguard.ingest.urls import check_allowed, local_path, scheme_of


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://live.example/app/sk_live_123", "rtmp://live.example/app/***"),
        ("rtmps://u:pw@live.example:443/app/key", "rtmps://u:***@live.example:443/app/***"),
        ("rtmp://live.example/app", "rtmp://live.example/app"),
        (
            "https://cdn.example/a/index.m3u8?token=abc&x=1&Signature=s",
            "https://cdn.example/a/index.m3u8?token=***&x=1&Signature=***",
        ),
        ("http://secret@cdn.example/live.m3u8", "http://***@cdn.example/live.m3u8"),
        ("/srv/media/clip.mp4", "/srv/media/clip.mp4"),
    ],
)
def test_redact_hides_keys_passwords_and_tokens(url, shown):
    assert redact(url) == shown


def test_schemes():
    assert scheme_of("clip.mp4") == "file"
    assert scheme_of("C:\\clips\\a.mp4") == "file"
    assert scheme_of("RTMP://host/app/key") == "rtmp"
    assert local_path("file:///tmp/a.mp4").as_posix() == "/tmp/a.mp4"
    assert local_path("https://host/a.m3u8") is None


def test_http_whitelist_excludes_local_files():
    assert "file" not in check_allowed("https://cdn.example/live.m3u8").split(",")
    assert check_allowed("rtmp://host/app/key") == "rtmp,tcp"


@pytest.mark.parametrize("url", ["ftp://host/a.mp4", "gopher://host/", "udp://239.0.0.1:1234"])
def test_unsupported_scheme_is_refused_without_leaking(url):
    with pytest.raises(SourceError, match="is not enabled"):
        check_allowed(url)


def test_disabled_scheme_is_refused():
    with pytest.raises(SourceError, match=r"rtmp://h/app/\*\*\*: URL scheme 'rtmp' is not enabled"):
        check_allowed("rtmp://h/app/key", frozenset({"https"}))


@pytest.mark.parametrize("url", ["rtmp://[", "rtmp://h]/app/key", "https://[zz]/a.m3u8"])
def test_a_url_urlsplit_refuses_is_refused(url):  # it raised ValueError (found by atheris)
    with pytest.raises(SourceError, match="not a valid URL"):
        check_allowed(url)
