# Everything a fresh machine needs: `make demo` and `make test` each create the virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out

.PHONY: venv demo pictures test lint check reliability recordings stores schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[vision,dev]"
	touch $(STAMP)

venv: $(STAMP)

# The whole store on this machine: MQTT broker, cloud API, edge worker and gate, a recording replayed
# through them; prints each receipt as it is sent and the score against the ground truth (Ctrl-C to stop).
# RECORDING=sample_data/recordings/demo-frames-3x1min-seed9.mcap: one with camera frames (the vision worker too).
demo: $(STAMP)
	$(VENV)/bin/store-edge demo --out $(OUT)/demo $(if $(RECORDING),--recording $(RECORDING))

# Simulate the scripted hard cases and a random session, draw them, and score the fusion engine offline.
pictures: $(STAMP)
	mkdir -p $(OUT)
	$(VENV)/bin/store-edge simulate --store sample_data/stores/demo.yaml \
	    --scenario sample_data/scenarios/demo-hard-cases.yaml --out $(OUT)/demo-hard-cases.mcap
	$(VENV)/bin/store-edge simulate --store sample_data/stores/demo.yaml \
	    --shoppers 12 --minutes 6 --seed 5 --out $(OUT)/demo-random.mcap
	$(VENV)/bin/store-edge plot $(OUT)/demo-hard-cases.mcap --out $(OUT)/demo-hard-cases
	$(VENV)/bin/store-edge eval $(OUT)/demo-random.mcap
	@echo "Pictures of the hard cases are in $(OUT)/demo-hard-cases/"

test: $(STAMP)
	$(PY) -m pytest -q

# The fault and attack suites in full (docs/reliability.md): the issue's durations (cloud down 120 s, network
# and broker down 30 s), every fuzz run; figures appended to $(OUT)/reliability.jsonl. Uses Mosquitto and
# PostgreSQL when MQTT_URL / DATABASE_URL name them (the database restart runs only on PostgreSQL).
reliability: $(STAMP)
	mkdir -p $(OUT)
	rm -f $(OUT)/reliability.jsonl
	RELIABILITY_FULL=1 NETWORK_DROP_S=30 RELIABILITY_REPORT=$(OUT)/reliability.jsonl $(PY) -m pytest -q -rxs -s \
	    tests/reliability tests/live/test_faults.py tests/live/test_network_drop.py tests/live/test_worker.py \
	    tests/protocol/test_fuzz.py tests/cloud_api/api/test_openapi.py tests/cloud_api/api/test_checkin.py \
	    tests/cloud_api/test_ratelimit.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

check: lint test

# Regenerate shipped data (deterministic; the tests check the committed files match).
stores: $(STAMP)
	$(PY) tools/generate_stores.py
recordings: $(STAMP)
	$(PY) tools/make_sample_recordings.py
schemas: $(STAMP)
	$(VENV)/bin/store-edge schemas --out docs/schemas

clean:
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache
