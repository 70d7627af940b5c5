# The two commands a newcomer needs: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Spectral, the OpenAPI linter of tests/app/test_openapi_lint.py (Node.js and npm; versions locked in tools/spectral).
SPECTRAL := tools/spectral
SPECTRAL_STAMP := $(SPECTRAL)/node_modules/.installed
export FLASK_APP := usetix

.PHONY: run test install bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the dependency list changes.
$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Reinstall when the lock file changes; no install scripts (Spectral needs none).
$(SPECTRAL_STAMP): $(SPECTRAL)/package.json $(SPECTRAL)/package-lock.json
	npm ci --prefix $(SPECTRAL) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(SPECTRAL_STAMP)

instance/config.py:
	@mkdir -p instance
	@# A per-machine secret key for the local server (instance/ is git-ignored).
	$(BIN)/python -c "import secrets; print('SECRET_KEY = %r' % secrets.token_hex(32))" > $@

run: $(STAMP) instance/config.py
	$(BIN)/usetix init-db
	$(BIN)/usetix seed-demo
	@echo "Serving on http://127.0.0.1:5000, with a webhook worker beside it (Ctrl-C stops both)"
	@# The worker delivers webhooks from the embedded queue (instance/webhook-queue.sqlite3);
	@# the trap ends it with the dev server.
	@$(BIN)/usetix worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/flask run --host 127.0.0.1 --port 5000

RUFF_PATHS := usetix tests bench wsgi.py gunicorn.conf.py

test: $(STAMP) $(SPECTRAL_STAMP)
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# Load benchmark of the JSON API beside the shared peer apps (bench/RESULTS.md); ARGS="--quick" for a smoke run;
# ARGS="--scale --postgres URL" for the scale bench (bench/scale.py) instead.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) $(SPECTRAL)/node_modules build dist *.egg-info
