# Two commands on a fresh Debian 12 machine: `make demo` and `make test`.
# Each sets itself up: a venv with the package, and (as root) the Debian
# packages the tests and benchmarks use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEBIAN_PACKAGES := ffmpeg nginx libnginx-mod-rtmp redis-server mosquitto mosquitto-clients prometheus wrk
# Recipes run in bash with pipefail: a failing command before a pipe fails its line.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

# deploy/, checked by each format's own validator (docs/deploy.md, "How this was checked").
HADOLINT := $(BIN)/hadolint --failure-threshold style
# The Dockerfile of compose's nginx-rtmp service (build.dockerfile_inline).
INLINE_DOCKERFILE := $(BIN)/python -c 'import yaml; compose = yaml.safe_load(open("deploy/docker-compose.yml")); print(compose["services"]["nginx-rtmp"]["build"]["dockerfile_inline"], end="")'
# The oldest Kubernetes the manifests are for, and the newest the pinned kubernetes-validate
# has the schemas of (it ships them: no network needed).
KUBERNETES_VERSIONS := 1.30.0 1.37.0
# kustomization.yaml is kustomize's file and podmonitor.yaml a Prometheus Operator custom
# resource: no Kubernetes API schema covers them (tests/unit/test_deploy.py checks both).
K8S_MANIFESTS := $(filter-out %/kustomization.yaml %/podmonitor.yaml,$(wildcard deploy/k8s/*.yaml))

.PHONY: demo test lint bench soak debian-packages

$(BIN)/streamguard: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/streamguard
	$(BIN)/streamguard demo

debian-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "missing Debian packages: $$missing (as root: apt-get install $$missing)"; exit 1; \
		fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

lint: $(BIN)/streamguard debian-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(HADOLINT) deploy/Dockerfile
	$(INLINE_DOCKERFILE) | $(HADOLINT) -
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml
	@# --quiet prints failures and warnings only; a warning is a manifest that no schema
	@# checked (an apiVersion or kind the Kubernetes version has not), so it fails too.
	out=$$($(BIN)/kubernetes-validate --strict --quiet $(KUBERNETES_VERSIONS:%=-k %) $(K8S_MANIFESTS)) \
		&& [ -z "$$out" ] || { echo "$$out"; exit 1; }
	promtool check config --lint=all --lint-fatal deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/streamguard.rules.test.yml

test: $(BIN)/streamguard debian-packages lint
	$(BIN)/pytest -n auto --dist loadgroup

bench: $(BIN)/streamguard debian-packages
	$(BIN)/python -m bench.bench_index
	$(BIN)/python -m bench.bench_scan
	$(BIN)/python -m bench.bench_hash
	$(BIN)/python -m bench.bench_pictures
	$(BIN)/python -m bench.bench_live
	$(BIN)/python -m bench.bench_blocklist
	$(BIN)/python -m bench.bench_events
	$(BIN)/python -m bench.bench_broker
	$(BIN)/python -m bench.bench_cluster
	$(BIN)/python -m bench.bench_incident
	$(BIN)/python -m bench.bench_reupload
	$(BIN)/python -m bench.bench_vpdq
	$(BIN)/python -m bench.bench_known_video
	$(BIN)/python -m bench.bench_api

# The soak (issues 9 and 19): by default 120 streams for 20 minutes, about 24 minutes in
# all; longer with `make soak SOAK_MINUTES=120 SOAK_STREAMS=200` (plus a 3-minute warm-up),
# other options of bench/bench_soak.py in SOAK_OPTIONS (docs/reliability.md#soak).
SOAK_MINUTES ?= 20
SOAK_STREAMS ?= 120
SOAK_PLOT ?= docs/img/soak.png
SOAK_OPTIONS ?=
soak: $(BIN)/streamguard debian-packages
	$(BIN)/python -m bench.bench_soak --minutes $(SOAK_MINUTES) --streams $(SOAK_STREAMS) \
		--plot $(SOAK_PLOT) $(SOAK_OPTIONS)
