"""The API's bearer tokens: one per file, named by it; and where an open API may listen."""

import pytest

from streamguard.api.service import check_exposure
from streamguard.api.tokens import Tokens
from streamguard.config import ConfigError


def token_file(directory, name: str, token: str):
    path = directory / name
    path.write_text(token + "\n")
    return path


def test_each_file_is_a_token_named_by_the_file(tmp_path):
    tokens = Tokens.from_files(
        [
            token_file(tmp_path, "platform-a.token", "a" * 32),
            token_file(tmp_path, "platform-b", "b" * 16),
        ]
    )
    assert len(tokens) == 2
    assert tokens.client("Bearer " + "a" * 32) == "platform-a"
    assert tokens.client("bearer " + "b" * 16) == "platform-b"
    assert tokens.client("Bearer " + "a" * 31) is None
    assert tokens.client("Basic " + "a" * 32) is None
    assert tokens.client("Bearer") is None
    assert tokens.client(None) is None
    assert not Tokens.from_files([])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("short", "at least 16 characters"),
        ("two words in one token file", "one word"),
        ("", "is empty"),
    ],
)
def test_weak_or_empty_tokens_are_refused_naming_the_file(tmp_path, content, message):
    path = token_file(tmp_path, "client", content)
    with pytest.raises(ConfigError, match=message) as raised:
        Tokens.from_files([path])
    assert str(path) in str(raised.value)
    assert content not in str(raised.value) or not content


def test_two_files_of_one_name_are_refused(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = token_file(tmp_path / "one", "client", "x" * 20)
    second = token_file(tmp_path / "two", "client", "y" * 20)
    with pytest.raises(ConfigError, match="a second token named 'client'"):
        Tokens.from_files([first, second])


def test_a_missing_token_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the API token"):
        Tokens.from_files([tmp_path / "absent"])


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_an_open_api_may_listen_on_loopback(host):
    check_exposure(host, Tokens({}))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "api.example"])
def test_an_open_api_may_not_listen_beyond_loopback(host):
    with pytest.raises(ConfigError, match="without tokens"):
        check_exposure(host, Tokens({}))
    check_exposure(host, Tokens({"platform": b"digest"}))
