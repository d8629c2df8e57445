# Two commands on a fresh machine: `make run` serves the app, `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test lint bench train evaluate clean

# Each stamp file is newer than its requirements file once installed: a second call installs nothing.
$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-scale.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m streamlit run app.py --server.address localhost --server.port $(PORT)

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

test: $(VENV)/.dev lint
	$(PY) -m pytest

bench: $(VENV)/.runtime
	$(PY) bench/model.py
	$(PY) bench/review.py
	$(PY) bench/pages.py
	$(PY) bench/heatmap_lungs.py --data-dir $(DATA)
	$(PY) bench/serving_vs_densenet.py --data-dir $(DATA)

# Full training on the Kaggle layout (about 40 minutes on 2 CPU cores); not part of the tests.
DATA ?= ../shared/data/chest_xray
train: $(VENV)/.runtime
	$(PY) -m pneumonia.train --data-dir $(DATA) --out models

evaluate: $(VENV)/.runtime
	$(PY) -m pneumonia.evaluate --data-dir $(DATA) --split test --out metrics.json --predictions predictions.csv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
