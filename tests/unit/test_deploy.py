"""deploy/: the image, docker-compose.yml and the Kubernetes manifests, checked statically.

There is no Docker engine or Kubernetes cluster here. `make lint` checks each file against
its format (hadolint, the Compose Specification's schema, the Kubernetes API schemas,
promtool); these tests check what no schema knows: every streamguard command line is one
the CLI accepts, the settings load, ports, probe paths, secrets, environment variables and
mounts agree with each other and with the code. nginx-rtmp.conf is also run for real
(Debian nginx with the RTMP module, when installed): `nginx -t`, and its publish-hook chain
against stand-ins for enforce's hook and run's control webhook.
"""

import ast
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from streamguard import config
from streamguard.api import service as api_service
from streamguard.cli.main import build_parser
from streamguard.enforce import hook
from streamguard.enforce import settings as enforce_settings
from streamguard.runtime import process, supervisor

from ..support.nginx import RTMP_MODULE
from ..support.ports import free_port, wait_for_ports
from ..support.processes import stop

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
TOML = DEPLOY / "streamguard.toml"
NGINX_CONF = DEPLOY / "nginx-rtmp.conf"
MOSQUITTO_CONF = DEPLOY / "mosquitto.conf"
MOSQUITTO_ACL = DEPLOY / "mosquitto.acl"
SECRETS = DEPLOY / "secrets"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
RULES = DEPLOY / "prometheus" / "streamguard.rules.yml"
CONFIG_PATH = "/etc/streamguard/streamguard.toml"  # where compose and k8s put the file
SECRET_DIR = "/run/secrets"
STREAMGUARD_IMAGE = "streamguard:local"
# The files of this part of deploy/ (prometheus/ and grafana/ have their own tests).
OWN_FILES = [
    DOCKERFILE,
    COMPOSE_FILE,
    TOML,
    NGINX_CONF,
    MOSQUITTO_CONF,
    MOSQUITTO_ACL,
    *sorted(K8S.glob("*.yaml")),
]


# -- loading ------------------------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def streamguard_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("image") == STREAMGUARD_IMAGE}


def subcommand_services(subcommand: str) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in streamguard_services().items()
        if (s.get("command") or dockerfile_cmd())[0] == subcommand
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def secret_targets(service: dict[str, Any]) -> set[str]:
    """Paths under /run/secrets the service gets."""
    targets = set()
    for secret in service.get("secrets", []):
        if isinstance(secret, str):
            targets.add(f"{SECRET_DIR}/{secret}")
        else:
            target = secret.get("target", secret["source"])
            targets.add(target if target.startswith("/") else f"{SECRET_DIR}/{target}")
    return targets


def binds(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/) of the bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def published_container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


@functools.cache
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in documents if d.get("kind") != "Kustomization"]


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def container_port(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return number


@pytest.fixture(scope="module")
def k8s_config(tmp_path_factory) -> Path:
    """The ConfigMap's streamguard.toml as a file."""
    path = tmp_path_factory.mktemp("k8s-config") / "streamguard.toml"
    path.write_text(manifest("ConfigMap", "streamguard-config")["data"]["streamguard.toml"])
    return path


@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last:]


def dockerfile_json(op: str) -> list[str]:
    (value,) = [args for name, args in final_stage() if name == op]
    return yaml.safe_load(value)  # JSON (exec) form


def dockerfile_cmd() -> list[str]:
    return dockerfile_json("CMD")


def string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


@functools.cache
def variables_the_code_reads() -> set[str]:
    names = set()
    for path in (ROOT / "streamguard").rglob("*.py"):
        names |= {s for s in string_constants(path) if re.fullmatch(r"STREAMGUARD_[A-Z0-9_]+", s)}
    return names


def port_of(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def option(argv: list[str], name: str) -> str:
    """The value of ``name`` in a command line."""
    (value,) = [argv[i + 1] for i, arg in enumerate(argv) if arg == name]
    return value


def parse_cli(argv: list[str]) -> Any:
    """Parse like `streamguard ARGV`; a usage error fails the test instead of exiting."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`streamguard {shlex.join(argv)}` is not a valid command line ({exc})")


# -- every file ---------------------------------------------------------------------------


def test_streamguard_environment_variables_are_ones_the_code_reads():
    known = variables_the_code_reads()
    assert {"STREAMGUARD_WORKER_ID", "STREAMGUARD_LOG_FORMAT", "STREAMGUARD_MQTT_URL"} <= known
    for path in [*OWN_FILES, DEPLOY_DOC]:
        for name in re.findall(r"STREAMGUARD_[A-Z0-9_]+", path.read_text()):
            assert name in known, f"{path.name}: {name} is read nowhere in streamguard/"
    named = set()
    for service in services().values():
        named |= {k for k in environment(service) if k.startswith("STREAMGUARD_")}
    for document in manifests():
        if document["kind"] == "Deployment":
            named |= {e["name"] for e in container(document).get("env", [])}
    assert named and named <= known


# -- the image ----------------------------------------------------------------------------


def test_dockerfile_builds_from_python_slim_and_runs_as_a_non_root_user():
    instructions = dockerfile()
    args = {a.split("=")[0]: a.split("=", 1)[1] for op, a in instructions if op == "ARG"}
    assert args["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    assert all(a.split()[0] == "${PYTHON_IMAGE}" for op, a in instructions if op == "FROM")
    final = final_stage()
    (user,) = [a for op, a in final if op == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    (deployment_uid,) = {
        d["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        for d in manifests()
        if d["kind"] == "Deployment"
    }
    assert int(uid) == deployment_uid == 10001
    assert any(op == "RUN" and "pip install" in a for op, a in final)


def test_dockerfile_port_volume_healthcheck_and_command_match_the_settings():
    settings = config.load_file(TOML)
    final = final_stage()
    assert [a for op, a in final if op == "EXPOSE"] == [str(settings.http_port)] == ["9310"]
    (workdir,) = [a for op, a in final if op == "WORKDIR"]
    assert dockerfile_json("VOLUME") == [workdir]
    assert Path(workdir) == settings.state_dir
    (check,) = [a for op, a in final if op == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{settings.http_port}/healthz" in check
    assert "/healthz" in probe_paths_run()
    assert dockerfile_json("ENTRYPOINT") == ["streamguard"]
    assert (
        "streamguard" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    )
    assert dockerfile_cmd() == ["run", "--config", CONFIG_PATH]
    assert parse_cli(dockerfile_cmd()).command == "run"


def test_dockerfile_copies_only_what_dockerignore_lets_through():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".git", ".venv", "bench/out", "deploy/secrets", "streamguard-state"):
        assert needed in patterns, f".dockerignore must exclude {needed}"
    copied = [a.split()[:-1] for op, a in dockerfile() if op == "COPY" and "--from" not in a]
    sources = [s for args in copied for s in args]
    assert sources == ["pyproject.toml", "README.md", "streamguard"]
    for source in sources:
        assert (ROOT / source).exists()
        excluded = [p for p in patterns if fnmatch(source, p) or source.startswith(f"{p}/")]
        assert not excluded, f"{source} is excluded from the build context by {excluded}"


# -- the settings -------------------------------------------------------------------------


def probe_paths_run() -> set[str]:
    return set(supervisor._routes(lambda: [], lambda: (True, [])))


def probe_paths_enforce() -> set[str]:
    return string_constants(ROOT / "streamguard" / "enforce" / "service.py")


def control_webhook_paths() -> set[str]:
    paths = string_constants(ROOT / "streamguard" / "runtime" / "control.py")
    return {p for p in paths if p.startswith("/control/")}


def test_example_config_loads_for_run_and_enforce():
    settings = config.load_file(TOML)
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 9310)
    assert settings.cluster.enabled and settings.redis.url
    assert settings.control.secret_file == Path(SECRET_DIR, "control-secret")
    assert settings.processes == 1
    enforce = config.load_file(TOML).enforce
    enforce_settings.check(enforce)
    assert enforce.adapter == "nginx-rtmp"
    assert str(enforce.state_file).startswith(str(settings.state_dir))


def test_kubernetes_config_loads_and_has_the_same_settings_as_the_compose_one(k8s_config):
    ours, theirs = tomllib.loads(TOML.read_text()), tomllib.loads(k8s_config.read_text())
    assert ours.keys() == theirs.keys()
    for table, values in ours.items():
        if isinstance(values, dict):
            assert values.keys() <= theirs[table].keys(), table
    settings = config.load_file(k8s_config)
    compose_settings = config.load_file(TOML)
    for name in ("http_host", "http_port", "processes", "hash_threads", "state_dir"):
        assert getattr(settings, name) == getattr(compose_settings, name), name
    assert settings.cluster == compose_settings.cluster
    assert settings.control.secret_file == compose_settings.control.secret_file
    enforce_settings.check(config.load_file(k8s_config).enforce)


# -- docker-compose.yml -------------------------------------------------------------------


def test_compose_has_every_component():
    names = set(services())
    assert {"redis", "mosquitto", "nginx-rtmp", "prometheus", "grafana"} <= names
    assert len(subcommand_services("run")) >= 2
    assert len(subcommand_services("enforce")) == 1
    assert len(subcommand_services("api")) == 1
    assert "--appendonly" in services()["redis"]["command"]


def test_compose_streamguard_commands_are_valid_command_lines():
    assert streamguard_services()
    for name, service in streamguard_services().items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        argv = service.get("command") or dockerfile_cmd()
        args = parse_cli(argv)
        assert args.command in ("run", "enforce", "api"), name
        assert args.config == Path(CONFIG_PATH)
        assert binds(service)[CONFIG_PATH] == "./streamguard.toml"


def test_compose_run_services_have_distinct_worker_ids_and_host_names():
    runs = subcommand_services("run")
    ids = [environment(s)["STREAMGUARD_WORKER_ID"] for s in runs.values()]
    assert ids == list(runs) and len(set(ids)) == len(ids)
    hostnames = [s["hostname"] for s in runs.values()]
    assert len(set(hostnames)) == len(hostnames)
    states = [
        s for run in runs.values() for s in run["volumes"] if s.endswith(":/var/lib/streamguard")
    ]
    assert len(set(states)) == len(runs), "each run container needs its own outbox volume"


def test_compose_ports_and_healthchecks_match_the_settings():
    settings = config.load_file(TOML)
    enforce = config.load_file(TOML).enforce
    for service in subcommand_services("run").values():
        assert published_container_ports(service) == {settings.http_port}
        assert f"127.0.0.1:{settings.http_port}/healthz" in healthcheck_text(service)
    for service in subcommand_services("enforce").values():
        assert published_container_ports(service) == {port_of(enforce.listen)}
        assert f"127.0.0.1:{port_of(enforce.listen)}/healthz" in healthcheck_text(service)
    assert "/healthz" in probe_paths_enforce()


def api_stop_s() -> float:
    """How long `streamguard api` may take to stop on SIGTERM."""
    return api_service.SHUTDOWN_GRACE_S + api_service.SYNC_STOP_TIMEOUT_S


def test_compose_api_listens_where_it_is_published_checked_and_given_its_tokens():
    settings = config.load_file(TOML)
    api = settings.api
    (service,) = subcommand_services("api").values()
    argv = service["command"]
    assert option(argv, "--listen") == api.listen
    assert published_container_ports(service) == {api.listen_address[1]}
    assert f"127.0.0.1:{api.listen_address[1]}/healthz" in healthcheck_text(service)
    assert api.token_files and {str(f) for f in api.token_files} <= secret_targets(service)
    # The blocklist is the file's Redis, which compose starts first.
    assert "--redis" not in argv and "--blocklist" not in argv and not settings.blocklists
    assert urlsplit(settings.redis.url).hostname in service["depends_on"]
    assert int(service["stop_grace_period"].removesuffix("s")) > api_stop_s()


def test_compose_depends_on_services_that_exist_and_are_checked():
    for name, service in services().items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services()[dependency], f"{dependency} has no healthcheck"
    for name in ("redis", "mosquitto", "nginx-rtmp", "prometheus"):
        assert "healthcheck" in services()[name], name


def test_compose_secrets_are_declared_and_cover_the_files_the_settings_name():
    declared = compose()["secrets"]
    for name, secret in declared.items():
        assert secret["file"] == f"./secrets/{name}"
        assert (SECRETS / f"{name}.example").is_file(), f"deploy/secrets/{name}.example"
    for service in services().values():
        for secret in service.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in declared
    settings = config.load_file(TOML)
    enforce = config.load_file(TOML).enforce
    for service in subcommand_services("run").values():
        needed = {str(settings.control.secret_file), str(settings.mqtt.password_file)}
        assert needed <= secret_targets(service)
    for service in subcommand_services("enforce").values():
        needed = {str(enforce.hook_secret_file), str(settings.mqtt.password_file)}
        assert needed <= secret_targets(service)
        user = urlsplit(environment(service)["STREAMGUARD_MQTT_URL"]).username
        assert user == "enforce"
    ignored = {line for line in (SECRETS / ".gitignore").read_text().splitlines()}
    assert ignored - {line for line in ignored if line.startswith("#")} == {
        "*",
        "!.gitignore",
        "!*.example",
    }


def test_compose_bind_mounts_exist_in_the_repository():
    for name, service in services().items():
        for target, source in binds(service).items():
            assert (DEPLOY / source).exists(), f"{name}: {source} (for {target}) does not exist"
    named = set(compose()["volumes"])
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named


def test_the_shipped_broker_saves_within_streamguards_resend_window():
    """Mosquitto acks before it saves: what a kill -9 loses must be re-sent by streamguard,
    which re-sends resend_after_reconnect_s (tests/faults/test_broker_unsaved.py)."""
    conf = dict(
        line.split(None, 1)
        for line in MOSQUITTO_CONF.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert conf["persistence"] == "true" and conf.get("autosave_on_changes", "false") == "false"
    # saved when a whole second more than autosave_interval has passed: up to interval + 1
    saved_within_s = int(conf["autosave_interval"]) + 1
    assert 2 * saved_within_s <= config.MqttSettings().resend_after_reconnect_s


def test_compose_mosquitto_users_passwords_and_acl_agree():
    mosquitto = services()["mosquitto"]
    conf = dict(
        line.split(None, 1)
        for line in MOSQUITTO_CONF.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert conf["allow_anonymous"] == "false"
    assert binds(mosquitto)[conf["acl_file"]] == "./mosquitto.acl"
    assert binds(mosquitto)["/mosquitto/config/mosquitto.conf"] == "./mosquitto.conf"
    script = "\n".join(mosquitto["command"])
    assert conf["password_file"] in script
    users = re.findall(r"^user (\S+)", MOSQUITTO_ACL.read_text(), re.MULTILINE)
    assert set(users) == {"streamguard", "enforce", "platform", "consumer"}
    for user in users:
        assert f"{SECRET_DIR}/mqtt-{user}-password" in secret_targets(mosquitto)
    assert re.search(r"for user in ([^;]+);", script).group(1).split() == users
    settings = config.load_file(TOML)
    assert urlsplit(settings.mqtt.url).username == "streamguard"
    acl = MOSQUITTO_ACL.read_text()
    prefix = settings.mqtt.prefix
    assert f"user streamguard\ntopic write {prefix}/v1/kill/+" in acl
    assert f"user enforce\ntopic read {prefix}/v1/kill/+" in acl


def test_compose_prometheus_scrapes_every_streamguard_container_with_the_rules_mounted():
    prometheus = services()["prometheus"]
    (config_ref,) = prometheus["configs"]
    content = yaml.safe_load(compose()["configs"][config_ref["source"]]["content"])
    assert config_ref["target"] == "/etc/prometheus/prometheus.yml"
    jobs = {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in content["scrape_configs"]
    }
    settings = config.load_file(TOML)
    enforce = config.load_file(TOML).enforce
    assert jobs == {
        "streamguard": {f"{name}:{settings.http_port}" for name in subcommand_services("run")},
        "streamguard-enforce": {
            f"{name}:{port_of(enforce.listen)}" for name in subcommand_services("enforce")
        },
        "streamguard-api": {
            f"{name}:{settings.api.listen_address[1]}" for name in subcommand_services("api")
        },
    }
    rules = RULES.read_text()
    for job in jobs:
        assert f'job="{job}"' in rules, job
    mounts = binds(prometheus)
    for rule_file in content["rule_files"]:
        directory, _, file = rule_file.rpartition("/")
        assert (DEPLOY / mounts[directory] / file).is_file(), rule_file


def test_compose_prometheus_config_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: install the Debian package prometheus", pytrace=False)
    content = compose()["configs"]["prometheus-config"]["content"]
    content = content.replace("/etc/prometheus/streamguard/", f"{DEPLOY / 'prometheus'}/")
    path = tmp_path / "prometheus.yml"
    path.write_text(content)
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_mounts_provisioning_and_dashboards():
    grafana = services()["grafana"]
    mounts = binds(grafana)
    provisioning = DEPLOY / mounts["/etc/grafana/provisioning"]
    assert (provisioning / "datasources").is_dir() and (provisioning / "dashboards").is_dir()
    dashboards = DEPLOY / mounts["/var/lib/grafana/dashboards"]
    assert list(dashboards.glob("*.json"))
    for path in (provisioning / "dashboards").glob("*.y*ml"):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            assert provider["options"]["path"] in mounts
    for path in (provisioning / "datasources").glob("*.y*ml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            url = urlsplit(source["url"])
            assert url.hostname in services() and url.port == 9090


# -- nginx-rtmp.conf ----------------------------------------------------------------------


def nginx_text() -> str:
    """nginx-rtmp.conf without its comments."""
    return re.sub(r"(^|\s)#.*", "", NGINX_CONF.read_text())


def blocks(text: str, header: str) -> list[str]:
    """The bodies of every `header { ... }` block (balanced braces)."""
    bodies = []
    for match in re.finditer(re.escape(header) + r"\s*\{", text):
        depth, position = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            position += 1
        bodies.append(text[match.end() : position - 1])
    return bodies


def nginx_block(text: str, header: str) -> str:
    (body,) = blocks(text, header)
    return body


def server_listening(text: str, listen: str) -> str:
    (body,) = [b for b in blocks(text, "server") if directive(b, "listen")[:1] == [listen]]
    return body


def directive(block: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", block, re.MULTILINE)


def test_nginx_publish_hooks_go_through_the_chain_to_the_control_webhook_and_enforce():
    text = nginx_text()
    settings = config.load_file(TOML)
    enforce = config.load_file(TOML).enforce
    live = nginx_block(text, "application live")
    assert directive(live, "notify_method") == ["get"]
    (on_publish,) = directive(live, "on_publish")
    (on_publish_done,) = directive(live, "on_publish_done")
    hooks = server_listening(nginx_block(text, "http"), "127.0.0.1:8081")
    for url in (on_publish, on_publish_done):
        assert url.startswith("http://127.0.0.1:8081/hooks/")
    publish = nginx_block(hooks, f"location = {urlsplit(on_publish).path}")
    done = nginx_block(hooks, f"location = {urlsplit(on_publish_done).path}")
    (auth,) = directive(publish, "auth_request")
    enforce_location = nginx_block(hooks, f"location = {auth}")
    aliases = {
        alias
        for s in subcommand_services("run").values()
        for alias in s["networks"]["default"]["aliases"]
    }
    for block in (publish, done):
        (target,) = directive(block, "proxy_pass")
        url = urlsplit(target)
        assert url.hostname in aliases and url.port == settings.http_port
        assert url.path in control_webhook_paths() and url.path == "/control/nginx-rtmp"
        assert url.query == "secret=$control_secret"
    (target,) = directive(enforce_location, "proxy_pass")
    url = urlsplit(target)
    assert url.hostname in subcommand_services("enforce") and url.port == port_of(enforce.listen)
    assert url.path == hook.HOOK_PATH and url.query == "secret=$hook_secret"
    static = nginx_block(text, "application static")
    assert directive(static, "on_publish") == [f"http://127.0.0.1:8081{auth}"]
    assert directive(static, "notify_method") == ["get"]


def test_nginx_ports_match_the_stream_urls_and_the_enforce_api():
    text = nginx_text()
    settings = config.load_file(TOML)
    enforce = config.load_file(TOML).enforce
    rtmp = nginx_block(text, "rtmp")
    (listen,) = directive(rtmp, "listen")
    applications = set(re.findall(r"application (\w+) \{", rtmp))
    pull = urlsplit(settings.control.pull_url)
    assert pull.hostname == "nginx-rtmp" in services() and pull.port == int(listen)
    assert pull.path == "/{app}/{name}"
    for stream in settings.streams:
        url = urlsplit(stream.url)
        assert url.hostname == "nginx-rtmp" and url.port == int(listen)
        assert url.path.split("/")[1] == "static" in applications
    api = urlsplit(enforce.api_url)
    assert api.hostname == "nginx-rtmp"
    control_server = server_listening(nginx_block(text, "http"), str(api.port))
    assert "rtmp_control all;" in nginx_block(control_server, f"location {api.path}")
    assert f"{listen}:{listen}" in services()["nginx-rtmp"]["ports"][0]
    assert directive(nginx_block(text, "rtmp"), "listen") == ["1935"]


def test_nginx_template_gets_both_secrets_from_the_compose_service():
    text = nginx_text()
    assert text.count("@CONTROL_SECRET@") == 1 and text.count("@HOOK_SECRET@") == 1
    nginx = services()["nginx-rtmp"]
    script = "\n".join(nginx["command"])
    (template,) = [t for t, s in binds(nginx).items() if s == "./nginx-rtmp.conf"]
    assert template in script
    for placeholder, secret in (("@CONTROL_SECRET@", "control"), ("@HOOK_SECRET@", "hook")):
        assert f"s/{placeholder}/$${secret}/" in script
        assert f"{SECRET_DIR}/{secret}-secret" in secret_targets(nginx)
    settings = config.load_file(TOML)
    enforce = config.load_file(TOML).enforce
    assert settings.control.secret_file.name == "control-secret"
    assert enforce.hook_secret_file.name == "hook-secret"
    assert directive(text, "load_module") == [str(RTMP_MODULE)]


def local_nginx_conf(root: Path, ports: dict[str, int]) -> str:
    """nginx-rtmp.conf with test secrets, loopback ports and local paths."""
    text = nginx_text()
    replacements = {
        "@CONTROL_SECRET@": "testcontrolsecret",
        "@HOOK_SECRET@": "testhooksecret",
        "listen 1935;": f"listen 127.0.0.1:{ports['rtmp']};",
        "listen 8080;": f"listen 127.0.0.1:{ports['control']};",
        "127.0.0.1:8081": f"127.0.0.1:{ports['hooks']}",
        "http://streamguard:9310/": f"http://127.0.0.1:{ports['streamguard']}/",
        "http://enforce:9311/": f"http://127.0.0.1:{ports['enforce']}/",
        "user www-data;": "user root;" if os.geteuid() == 0 else "",
        "http {\n": "http {\n"
        + "".join(
            f"    {kind}_temp_path {root}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
    }
    for old, new in replacements.items():
        assert old in text, f"nginx-rtmp.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text + f"pid {root}/nginx.pid;\n"


def nginx_binary() -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        pytest.fail("install the Debian packages nginx and libnginx-mod-rtmp", pytrace=False)
    return nginx


def test_nginx_accepts_the_config(tmp_path):
    nginx = nginx_binary()
    ports = {name: free_port() for name in ("rtmp", "control", "hooks", "streamguard", "enforce")}
    conf = tmp_path / "nginx.conf"
    conf.write_text(local_nginx_conf(tmp_path, ports))
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


class StandIn(BaseHTTPRequestHandler):
    """enforce's hook or run's webhook: records each call; answers ``server.answer(form)``."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        url = urlsplit(self.path)
        call = {"path": url.path, "query": parse_qs(url.query), "body": body}
        call["type"] = self.headers.get("Content-Type")
        self.server.calls.append(call)
        status = self.server.answer(parse_qs(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_ins() -> Iterator[dict[str, ThreadingHTTPServer]]:
    servers = {}
    for name in ("streamguard", "enforce"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
        server.calls, server.answer = [], lambda form: 200
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_nginx_hook_chain_asks_enforce_then_registers_with_streamguard(tmp_path, stand_ins):
    """nginx-rtmp (with `notify_method get`) calls the hook server with its form as the
    query string; this test makes those calls itself, as nginx-rtmp would."""
    nginx = nginx_binary()
    streamguard, enforce = stand_ins["streamguard"], stand_ins["enforce"]
    enforce.answer = lambda form: 403 if form["name"] == ["killed"] else 200
    ports = {"rtmp": free_port(), "control": free_port(), "hooks": free_port()}
    ports |= {"streamguard": streamguard.server_port, "enforce": enforce.server_port}
    conf = tmp_path / "nginx.conf"
    conf.write_text(local_nginx_conf(tmp_path, ports))
    command = [nginx, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
    command += ["-g", "daemon off;"]  # else the master outlives the test, unstoppable
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ports(ports["hooks"], ports["rtmp"], alive=lambda: process.poll() is None)

        def notify(path: str, call: str, app: str, name: str) -> int:
            form = f"app={app}&flashver=FMLE/3.0&tcurl=rtmp://x/{app}&addr=10.0.0.9"
            form += f"&clientid=7&call={call}&name={name}&type=live&token=a%26b"
            url = f"http://127.0.0.1:{ports['hooks']}{path}?{form}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        # Allowed by enforce, registered with streamguard: both get the same form.
        assert notify("/hooks/publish", "publish", "live", "cam1") == 200
        ((asked,), (registered,)) = enforce.calls, streamguard.calls
        assert asked["path"] == hook.HOOK_PATH and asked["query"] == {"secret": ["testhooksecret"]}
        assert registered["path"] == "/control/nginx-rtmp"
        assert registered["query"] == {"secret": ["testcontrolsecret"]}
        assert registered["body"] == asked["body"]
        assert registered["type"] == "application/x-www-form-urlencoded"
        form = parse_qs(registered["body"])
        assert (form["call"], form["app"], form["name"], form["token"]) == (
            ["publish"],
            ["live"],
            ["cam1"],
            ["a&b"],
        )
        # A killed key: refused, and streamguard is not asked to watch it.
        assert notify("/hooks/publish", "publish", "live", "killed") == 403
        assert len(enforce.calls) == 2 and len(streamguard.calls) == 1
        # streamguard cannot register it (Redis down, say): refused.
        streamguard.answer = lambda form: 503
        assert notify("/hooks/publish", "publish", "live", "cam2") >= 300
        streamguard.answer = lambda form: 200
        # The end of a publish goes to streamguard only.
        assert notify("/hooks/publish_done", "publish_done", "live", "cam1") == 200
        assert parse_qs(streamguard.calls[-1]["body"])["call"] == ["publish_done"]
        assert len(enforce.calls) == 3
        # Application `static`: only enforce decides.
        assert notify("/hooks/enforce", "publish", "static", "demo") == 200
        assert notify("/hooks/enforce", "publish", "static", "killed") == 403
        assert len(streamguard.calls) == 3
        # enforce unreachable: every publish is refused (fails closed).
        enforce.shutdown()
        enforce.server_close()
        assert notify("/hooks/publish", "publish", "live", "cam3") >= 300
        assert len(streamguard.calls) == 3
    finally:
        stop(process, signal.SIGQUIT, 5)


# -- Kubernetes ---------------------------------------------------------------------------


def test_kubernetes_manifests_are_namespaced_and_listed_in_the_kustomization():
    namespaced = [d for d in manifests() if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"streamguard"}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file()
    listed = set(kustomization["resources"]) | {"kustomization.yaml", "podmonitor.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} == listed


def test_kubernetes_run_deployment_probes_resources_and_security():
    settings = config.load_file(TOML)
    deployment = manifest("Deployment", "streamguard")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert parse_cli(c["args"]).command == "run"
    assert [p["containerPort"] for p in c["ports"]] == [settings.http_port]
    paths = probe_paths_run()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    assert c["startupProbe"]["httpGet"]["path"] in paths
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container_port(c, c[probe]["httpGet"]["port"]) == settings.http_port
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert requests["cpu"] and requests["memory"] and limits["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > (
        process.DRAIN_TIMEOUT_S + supervisor.CHILD_STOP_TIMEOUT_S
    )
    (worker_id,) = [e for e in c["env"] if e["name"] == "STREAMGUARD_WORKER_ID"]
    assert worker_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.http_port)
    assert annotations["prometheus.io/path"] == "/metrics" in paths
    assert "replicas" not in deployment["spec"], "hpa.yaml owns the number of replicas"


def mounted_files(deployment: dict[str, Any]) -> dict[str, str]:
    """Mount path (or file path, for projected secrets) -> volume kind."""
    c = container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    files = {}
    for mount in c["volumeMounts"]:
        volume = volumes[mount["name"]]
        kind = next(k for k in volume if k != "name")
        files[mount["mountPath"]] = kind
        if kind == "projected":
            for source in volume["projected"]["sources"]:
                for item in source["secret"]["items"]:
                    files[f"{mount['mountPath']}/{item['path']}"] = "secret"
        if kind == "configMap":
            for key in manifest("ConfigMap", volume["configMap"]["name"])["data"]:
                files[f"{mount['mountPath']}/{key}"] = "configMap"
    return files


def test_kubernetes_pods_get_their_config_secrets_and_state(k8s_config):
    settings = config.load_file(k8s_config)
    enforce = config.load_file(k8s_config).enforce
    run = mounted_files(manifest("Deployment", "streamguard"))
    assert run[CONFIG_PATH] == "configMap"
    assert (
        run[str(settings.control.secret_file)] == run[str(settings.mqtt.password_file)] == "secret"
    )
    assert run[str(settings.state_dir)] == "emptyDir" and run["/tmp"] == "emptyDir"
    deployment = manifest("Deployment", "streamguard-enforce")
    files = mounted_files(deployment)
    assert files[CONFIG_PATH] == "configMap"
    assert (
        files[str(enforce.hook_secret_file)] == files[str(settings.mqtt.password_file)] == "secret"
    )
    assert files[str(enforce.state_file.parent)] == "persistentVolumeClaim"
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    manifest("PersistentVolumeClaim", claim)


def test_kubernetes_enforce_deployment_is_one_pod_on_its_port(k8s_config):
    enforce = config.load_file(k8s_config).enforce
    deployment = manifest("Deployment", "streamguard-enforce")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    c = container(deployment)
    assert parse_cli(c["args"]).command == "enforce"
    assert [p["containerPort"] for p in c["ports"]] == [port_of(enforce.listen)]
    paths = probe_paths_enforce()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container_port(c, c[probe]["httpGet"]["port"]) == port_of(enforce.listen)
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert urlsplit(env["STREAMGUARD_MQTT_URL"]).username == "enforce"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port_of(enforce.listen))


def test_kubernetes_api_deployment_probes_resources_tokens_and_security(k8s_config):
    settings = config.load_file(k8s_config)
    api = settings.api
    deployment = manifest("Deployment", "streamguard-api")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    argv = c["args"]
    assert parse_cli(argv).command == "api"
    assert option(argv, "--config") == CONFIG_PATH
    assert option(argv, "--listen") == api.listen
    assert "--redis" not in argv and settings.redis.url and not settings.blocklists
    port = api.listen_address[1]
    assert [p["containerPort"] for p in c["ports"]] == [port] == [9312]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container_port(c, c[probe]["httpGet"]["port"]) == port
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert requests["cpu"] and requests["memory"] and limits["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    (pre_stop_s,) = [int(s) for s in c["lifecycle"]["preStop"]["exec"]["command"][1:]]
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + api_stop_s()
    files = mounted_files(deployment)
    assert files[CONFIG_PATH] == "configMap" and files["/tmp"] == "emptyDir"
    assert api.token_files and all(files[str(path)] == "secret" for path in api.token_files)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert "replicas" not in deployment["spec"], "hpa.yaml owns the number of replicas"


def test_kubernetes_hpa_scales_the_api_on_cpu():
    hpa = manifest("HorizontalPodAutoscaler", "streamguard-api")
    target = hpa["spec"]["scaleTargetRef"]
    assert target["name"] == "streamguard-api"
    deployment = manifest(target["kind"], target["name"])
    assert container(deployment)["resources"]["requests"]["cpu"], "utilization needs a request"
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] < 100


def selects(selector: dict[str, str], deployment: dict[str, Any]) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


def test_kubernetes_services_select_the_pods_and_reach_their_port():
    deployments = [d for d in manifests() if d["kind"] == "Deployment"]
    for name, port in (
        ("streamguard", 9310),
        ("streamguard-enforce", 9311),
        ("streamguard-api", 9312),
    ):
        service = manifest("Service", name)
        (target,) = [d for d in deployments if selects(service["spec"]["selector"], d)]
        assert target["metadata"]["name"] == name
        (service_port,) = service["spec"]["ports"]
        assert service_port["port"] == port
        assert container_port(container(target), service_port["targetPort"]) == port


def test_kubernetes_hpa_scales_run_on_streams_per_worker():
    hpa = manifest("HorizontalPodAutoscaler", "streamguard")
    target = hpa["spec"]["scaleTargetRef"]
    manifest(target["kind"], target["name"])
    assert target["name"] == "streamguard"
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "streamguard_streams_per_worker"
    capacity = config.load_file(TOML).cluster.capacity
    assert 0 < int(metric["pods"]["target"]["averageValue"]) < capacity
    doc = DEPLOY_DOC.read_text()
    assert 'as: "streamguard_streams_per_worker"' in doc and 'state="watching"' in doc


def test_kubernetes_pdbs_and_pod_monitors_cover_the_pods():
    for name in ("streamguard", "streamguard-api"):
        pdb = manifest("PodDisruptionBudget", name)
        assert pdb["spec"]["maxUnavailable"] == 1
        assert selects(pdb["spec"]["selector"]["matchLabels"], manifest("Deployment", name))
    rules = RULES.read_text()
    for name in ("streamguard", "streamguard-enforce", "streamguard-api"):
        monitor = manifest("PodMonitor", name)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        deployment = manifest("Deployment", name)
        assert selects(monitor["spec"]["selector"]["matchLabels"], deployment)
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        container_port(container(deployment), endpoint["port"])
        (job,) = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
        assert job == name and f'job="{job}"' in rules


# -- docs ---------------------------------------------------------------------------------


def test_deploy_doc_says_the_deployment_is_checked_statically():
    doc = DEPLOY_DOC.read_text()
    assert "no Docker engine" in doc
    for name in ("docker-compose.yml", "deploy/k8s", "create secret generic", "on_publish"):
        assert name in doc, name
