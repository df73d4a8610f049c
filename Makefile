# flowsync — the two commands a user needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES := klaviyo_api_key,klaviyoapikey,service_role_key,servicerolekey,servicekey,admin_job_secret,adminjobsecret,hash_key,hashkey
export FLOWSYNC_HOME ?= $(CURDIR)/.flowsync

.PHONY: venv airflow-setup demo test test-fast bench lint clean services
.PHONY: cluster-test backfill-test

# The provider (with its dev extra) and dev/ (flowsync-dev: sandbox, test servers, harness; not shipped).
$(VENV)/.installed: pyproject.toml dev/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" -e dev/
	touch $@

venv: $(VENV)/.installed

airflow-setup: venv
	@mkdir -p $(AIRFLOW_HOME) $(FLOWSYNC_HOME)
	$(VENV)/bin/airflow db migrate >/dev/null
	$(VENV)/bin/airflow pools import pools.json >/dev/null

services:
	@bash scripts/ensure_services.sh

demo: airflow-setup
	$(PY) scripts/demo.py

test: airflow-setup services
	$(VENV)/bin/python -m pytest tests

# The fast inner loop (well under a minute): the unit suites by explicit path. No DAG runs (tests/e2e),
# no sandbox pacing or multi-process limiter tests, no compose or scale-out harnesses. `make test`
# runs all of these too: nothing is skipped there.
FAST_TESTS := tests/core tests/klaviyo/test_klaviyo_client_unit.py tests/hooks tests/operators \
	tests/triggers tests/syncs tests/storage $(wildcard tests/test_*.py)

test-fast: $(AIRFLOW_HOME)/.setup-done services
	$(VENV)/bin/python -m pytest $(FAST_TESTS) -q

# airflow-setup once per venv install / pools.json change (the migrate costs ~10 s per call);
# `make clean` removes the stamp with .airflow.
$(AIRFLOW_HOME)/.setup-done: $(VENV)/.installed pools.json
	$(MAKE) --no-print-directory airflow-setup
	touch $@

bench: airflow-setup
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check plugins dev dags tests bench scripts

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) $(FLOWSYNC_HOME)

# Scale-out harnesses (real processes, bounded; see docs/scale-out.md).
cluster-test: venv services
	$(PY) scripts/cluster_test.py

backfill-test: venv services
	$(PY) scripts/backfill_test.py
