# Two set-up commands: `make demo` and `make test`. Each creates .venv on a fresh machine.
# torch is installed first at a pinned CPU-friendly release (a bare `torch` requirement could
# pull a multi-GB CUDA build); the project itself only asks for torch>=2.3, so an existing
# torch in the environment is kept.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH_VERSION ?= 2.13.0
STORE ?= batchlab-runs/runs.db
REPORT_DIR ?= batchlab-report

.PHONY: demo test venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==$(TORCH_VERSION)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e ".[test,ray]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/batchlab lecture --store $(STORE) --out $(REPORT_DIR)

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) batchlab-runs $(REPORT_DIR)
