# Two commands do all the set-up on a fresh machine (see README):
#   make run    virtual environment if missing, install, run the synthetic pipeline
#   make test   virtual environment if missing, install with test extras, run the tests
PYTHON ?= python3
VENV := .venv
WORKDIR ?= runs/synthetic

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

.PHONY: run test slow bench
run: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e .
	$(VENV)/bin/python -m launch.synthetic --workdir=$(WORKDIR)

test: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	$(VENV)/bin/python -m pytest -q -n auto --maxprocesses=4

slow: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	$(VENV)/bin/python -m pytest -q -m slow -s

bench: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e .
	$(VENV)/bin/python -m launch.bench --output=bench.json
