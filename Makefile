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

.PHONY: venv airflow-setup demo test bench lint clean services
.PHONY: cluster-test backfill-test

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
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

bench: airflow-setup
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check plugins dags tests bench scripts

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) $(FLOWSYNC_HOME)

# Scale-out harnesses (real processes, bounded; see README.md "Scale-out").
cluster-test: venv services
	$(PY) scripts/cluster_test.py

backfill-test: venv services
	$(PY) scripts/backfill_test.py
