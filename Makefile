# Two commands on a fresh Debian 12 machine: `make demo` and `make test`.
# Each sets itself up: a venv with the package, and (as root) the Debian
# packages the tests and benchmarks use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEBIAN_PACKAGES := ffmpeg nginx libnginx-mod-rtmp redis-server mosquitto mosquitto-clients prometheus

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

lint: $(BIN)/streamguard
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(BIN)/streamguard debian-packages lint
	$(BIN)/pytest

bench: $(BIN)/streamguard debian-packages
	$(BIN)/python -m bench.bench_index
	$(BIN)/python -m bench.bench_scan
	$(BIN)/python -m bench.bench_hash
	$(BIN)/python -m bench.bench_live
	$(BIN)/python -m bench.bench_blocklist
	$(BIN)/python -m bench.bench_events
	$(BIN)/python -m bench.bench_cluster

# The bounded soak (issue 9): 120 streams for 20 minutes, about 24 minutes in all.
soak: $(BIN)/streamguard debian-packages
	$(BIN)/python -m bench.bench_soak --plot docs/img/soak.png
