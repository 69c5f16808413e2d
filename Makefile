# Two set-up commands (see README): `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS ?= $(abspath $(or $(COUNTER_MODELS_DIR),../shared/models))
FACES ?= $(abspath $(or $(COUNTER_DEMO_FACES_DIR),../shared/faces))

.PHONY: run test venv test-deps lint typecheck pytest clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e '.[ocr]'
	$(BIN)/pip install -q --no-deps rapidocr-onnxruntime==1.4.4

run: venv
	COUNTER_MODELS_DIR=$(MODELS) $(if $(wildcard $(FACES)),COUNTER_DEMO_FACES_DIR=$(FACES)) $(BIN)/counter serve

test-deps: venv
	$(BIN)/pip install -q -e '.[ocr,test]'
	@command -v chromium >/dev/null && command -v ffmpeg >/dev/null && command -v turnserver >/dev/null \
	  && command -v haproxy >/dev/null && fc-list | grep -qi 'Noto Sans CJK' \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium ffmpeg coturn haproxy fonts-noto-cjk >/dev/null)
	@command -v go >/dev/null && test -d /usr/share/gocode/src/golang.org/x/mod/sumdb/note \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      golang-go golang-golang-x-mod-dev >/dev/null)
	@bash scripts/ensure-services.sh

lint:
	$(BIN)/ruff check storage counter signaling identity web tests bench

typecheck:
	$(BIN)/mypy

pytest:
	COUNTER_MODELS_DIR=$(MODELS) $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: test-deps lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
