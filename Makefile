# The two commands a new user needs: `make demo` and `make test`. Both set up what they need.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: setup system-packages demo test lint bench scenarios chaos lock clean

setup: system-packages $(VENV)/.installed

system-packages:
	@./scripts/install-system-packages.sh

# The virtualenv, from the lock file; rebuilt when the lock or the project changes.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: setup
	$(BIN)/sluice demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	@./scripts/install-system-packages.sh chromium
	$(BIN)/pytest

# The release scenario suite (scenarios/): 24 scenarios through the real stack under each policy in
# scenarios/policies; writes docs/scenarios.md. About 13 minutes. The fast subset runs in `make test`.
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

# Re-resolve the lock file (needs the package registry).
lock:
	$(BIN)/pip install -q uv && $(BIN)/uv pip compile pyproject.toml --extra dev -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
