# The two commands a new user needs: `make demo` and `make test`. Both set up what they need.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: setup system-packages demo test lint bench scenarios chaos lock audit clean

setup: system-packages $(VENV)/.installed

system-packages:
	@./scripts/install-system-packages.sh

# The virtualenv, from the lock files (runtime + development, every file checked against its hash);
# rebuilt when a lock or the project changes. The image (Dockerfile) installs requirements.lock only.
$(VENV)/.installed: requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: setup
	$(BIN)/sluice demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Test processes: one per core. One more (3 on 2 cores) ran the suite in 16 minutes instead of 24, but
# the extra CPU contention slowed a demo version at 100% enough for its slow-vs-stable comparison to
# fail it (a good version rolled back): the judge was right about what it saw. TEST_PROCESSES=3 to try.
TEST_PROCESSES ?= auto

test: lint
	@./scripts/install-system-packages.sh chromium debootstrap buildah podman
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile --durations=30

# The release scenario suite (scenarios/): 34 scenarios through the real stack under each policy in
# scenarios/policies, in batches of at most 700 req/s (one load generator keeps up with that), stable
# serving 3 minutes alone before each batch; writes docs/scenarios.md. About 50 minutes (48 minutes
# alone on 2 cores). The fast subset runs in `make test`.
scenarios: setup
	$(BIN)/python -m scenarios

# The chaos suite (chaos/): real releases through the real stack while workers and gunicorn are
# SIGKILLed (20 releases at once among them), Redis restarts, goes away, freezes or fails over
# (Sentinel), Prometheus stops, HAProxy reloads, notifications storm in (through every intake path),
# slow clients hold connections, four workers share releases under kills, and 5,000 fuzzed requests;
# then 1,000 releases on four workers under kills (chaos/swarm.py); writes docs/reliability.md.
# About 18 minutes plus the 1,000 releases (5 minutes or more). The HAProxy reload fault runs in
# `make test` (tests/e2e/test_chaos.py), and the several-workers proof with 60 releases
# (tests/e2e/test_several_workers.py).
chaos: setup
	$(BIN)/python -m chaos

bench: setup
	./scripts/install-system-packages.sh hey nginx-light
	$(BIN)/python -m benchmarks

# Re-resolve the lock files (needs the package registry); versions already pinned are kept unless
# pyproject.toml excludes them. requirements.lock: [project] dependencies, what the image installs;
# requirements-dev.lock: the dev extra too, constrained to the runtime lock's versions. --universal
# keeps each dependency's markers (Debian bookworm's Python 3.11.2 needs async-timeout, 3.11.3+ not).
lock:
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile -q pyproject.toml --universal --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --universal --generate-hashes -c requirements.lock -o requirements-dev.lock

# Known vulnerabilities in what the image installs (requirements.lock), from PyPI's per-version JSON
# API. --strict: a package that could not be looked up fails the audit instead of passing unchecked.
# Not part of `make test`: it needs that API, which the machines the tests run on cannot reach.
audit: setup
	$(BIN)/pip install -q --disable-pip-version-check pip-audit==2.10.1
	$(BIN)/pip-audit --strict --progress-spinner off --disable-pip --require-hashes -r requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
