import re

import pytest

from streamguard import config
from streamguard.config import ConfigError


def write(tmp_path, text):
    path = tmp_path / "streamguard.toml"
    path.write_text(text)
    return path


def test_full_file(tmp_path):
    path = write(
        tmp_path,
        """
http = "0.0.0.0:9400"
processes = 2
worker_id = "edge-1"

[blocklist]
files = ["lists/ncmec.csv"]
max_distance = { pdq = 28 }
allow_degenerate = true

[ingest]
read_timeout_s = 3
max_lag_s = 6.5
allowed_schemes = ["rtmps", "https"]

[detect]
dihedral = false

[cluster]
enabled = true
capacity = 50

[[streams]]
id = "cam-1"
url = "rtmps://live.example/app/key1"

[[streams]]
id = "cam-2"
url = "https://cdn.example/cam2.m3u8"
sample = "interval:1"
""",
    )
    settings = config.load_file(path)
    assert [s.id for s in settings.streams] == ["cam-1", "cam-2"]
    assert settings.streams[1].sample.interval_s == 1.0
    assert settings.blocklists == (tmp_path / "lists/ncmec.csv",)
    assert settings.max_distance == {"pdq": 28} and settings.allow_degenerate
    assert (settings.http_host, settings.http_port, settings.processes) == ("0.0.0.0", 9400, 2)
    assert settings.ingest.read_timeout_s == 3.0 and settings.ingest.max_lag_s == 6.5
    assert settings.ingest.allowed_schemes == ("rtmps", "https")
    assert settings.ingest.open_timeout_s == 10.0  # default kept
    assert (settings.detect.borders, settings.detect.dihedral) == (True, False)
    assert (settings.cluster.enabled, settings.cluster.capacity) == (True, 50)
    assert settings.cluster.lease_ttl_s == 8.0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[streams]]\nid = 'a b'\nurl = 'rtmp://h/a/b'\n", "stream id 'a b' must be"),
        ("[[streams]]\nid = 'a'\n", "stream 'a' needs a 'url'"),
        ("[[streams]]\nid='a'\nurl='rtmp://h/x'\nsample='every'\n", "expected 'guard'"),
        ("[ingest]\nread_timeout_s = -1\n", "ingest.read_timeout_s: expected a positive number"),
        ("[ingest]\nspeed = 1\n", "ingest: unknown key(s) speed"),
        ("colour = 'red'\n", "unknown key(s) colour"),
        ("http = 'localhost'\n", "http: expected HOST:PORT"),
        ("processes = -2\n", "processes: expected a whole number"),
        ("[blocklist]\nmax_distance = { md5 = 3 }\n", "blocklist.max_distance.md5"),
        ("[blocklist]\nmax_distance = { dhash = 33 }\n", "dhash distance 33 is out of range"),
        ("[blocklist]\nallow_degenerate = 1\n", "blocklist.allow_degenerate: expected true"),
        ("this is not toml\n", "not valid TOML"),
        ("[detect]\nborders = 'yes'\n", "detect.borders: expected true or false"),
        ("[cluster]\nlease_ttl_s = 0\n", "cluster.lease_ttl_s: expected a positive number"),
        ("[ingest]\nopen_timeout_s = nan\n", "ingest.open_timeout_s: expected a positive number"),
        ("[policy]\nincident_gap_s = nan\n", "policy.incident_gap_s: expected a positive number"),
        ("[policy.csam]\nwindow_s = inf\n", "policy.csam.window_s: expected a positive number"),
        ("[control]\nsecret = 'x'\n", "control: unknown key(s) secret"),
    ],
)
def test_bad_files_name_the_setting(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load_file(path)
    assert str(caught.value).startswith(str(path))
    assert problem in str(caught.value)


def test_stream_flag_and_duplicates():
    stream = config.parse_stream_flag("cam=rtmp://h/live/key")
    assert (stream.id, stream.url) == ("cam", "rtmp://h/live/key")
    with pytest.raises(ConfigError, match="expected ID=URL"):
        config.parse_stream_flag("rtmp://h/live/key")
    with pytest.raises(ConfigError, match="configured twice"):
        config.check_streams((stream, stream))


def test_environment_overrides():
    settings = config.from_environment(
        config.Settings(), {"STREAMGUARD_HTTP": "127.0.0.1:9999", "STREAMGUARD_PROCESSES": "3"}
    )
    assert (settings.http_port, settings.processes) == (9999, 3)
    with pytest.raises(ConfigError, match="STREAMGUARD_PROCESSES"):
        config.from_environment(config.Settings(), {"STREAMGUARD_PROCESSES": "many"})


def test_redis_table_and_environment(tmp_path):
    path = write(
        tmp_path,
        """
[redis]
url = "rediss://redis.internal:6380/1"
prefix = "edge:"
password_file = "secrets/redis"
ca_file = "ca.pem"
max_changes = 500
timeout_s = 2
""",
    )
    redis = config.load_file(path).redis
    assert (redis.url, redis.prefix, redis.max_changes, redis.timeout_s) == (
        "rediss://redis.internal:6380/1",
        "edge:",
        500,
        2.0,
    )
    assert (
        redis.password_file == tmp_path / "secrets/redis" and redis.ca_file == tmp_path / "ca.pem"
    )
    environ = {"STREAMGUARD_REDIS_URL": "redis://other:6379/0", "STREAMGUARD_REDIS_PREFIX": "x:"}
    redis = config.from_environment(config.load_file(path), environ).redis
    assert (redis.url, redis.prefix, redis.ca_file) == (
        "redis://other:6379/0",
        "x:",
        tmp_path / "ca.pem",
    )


def test_http_ports_listen_on_loopback_by_default(tmp_path):
    from streamguard.config.model import EnforceSettings

    settings = config.load_file(write(tmp_path, ""))
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 9310)
    assert EnforceSettings().listen_address == ("127.0.0.1", 9311)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[redis]\nurl = 6379\n", "redis.url: expected a string"),
        ('[redis]\nhostname = "x"\n', "unknown key(s) hostname"),
        ('[redis]\npassword_file = ""\n', "redis.password_file: expected a file path"),
        ("[redis]\ntimeout_s = 0\n", "redis.timeout_s: expected a positive number"),
        ("[mqtt]\nkeepalive_s = 0\n", "mqtt.keepalive_s: expected a whole number >= 1, got 0"),
        ("[ingest]\nallowed_schemes = [1]\n", "ingest.allowed_schemes: expected a list of names"),
        ("[enforce]\ndeny_for_s = -1\n", "enforce.deny_for_s: expected a positive number"),
        ("[enforce]\napi_token = 'x'\n", "enforce: unknown key(s) api_token"),
        ("blocklist = 3\n", "blocklist: expected a table"),
    ],
)
def test_every_table_is_checked_by_the_one_rule_per_value_type(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load_file(write(tmp_path, text))


def test_enforce_reads_its_table_from_the_same_load_with_flags_over_the_environment(tmp_path):
    path = write(tmp_path, '[enforce]\nadapter = "srs"\nstate_file = "deny.db"\n')
    environ = {"STREAMGUARD_MQTT_URL": "mqtt://env:1883"}
    flags = {"enforce.adapter": "mediamtx", "enforce.listen": None, "mqtt.url": None}
    settings = config.resolve(path, flags, environ)
    assert settings.enforce.adapter == "mediamtx"  # the flag wins over the file
    assert settings.enforce.state_file == tmp_path / "deny.db"
    assert settings.enforce.listen == "127.0.0.1:9311"  # a flag not given changes nothing
    assert settings.mqtt.url == "mqtt://env:1883"
    assert config.resolve(path, {"mqtt.url": "mqtt://flag:1883"}, environ).mqtt.url == (
        "mqtt://flag:1883"
    )


def test_api_table(tmp_path):
    path = write(
        tmp_path,
        """
[api]
listen = "[::]:9400"
token_files = ["tokens/platform-a", "/run/secrets/platform-b"]
max_video_s = 120
max_lookup_hashes = 50
""",
    )
    api = config.load_file(path).api
    assert api.listen_address == ("::", 9400)
    assert api.token_files == (tmp_path / "tokens/platform-a", tmp_path / "/run/secrets/platform-b")
    assert (api.max_video_s, api.max_lookup_hashes, api.request_timeout_s) == (120.0, 50, 60.0)
    for text, problem in [
        ('[api]\nlisten = "9312"', "expected HOST:PORT"),
        ("[api]\ntoken_files = 'one'", "expected a list of file paths"),
        ("[api]\nmax_body_bytes = 0", "expected a whole number >= 1"),
        ("[api]\ntokens = []", "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(problem)):
            config.load_file(write(tmp_path, text))
