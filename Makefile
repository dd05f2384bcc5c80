# Sealsync: `make dev` runs the local stack, `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-fast lint typecheck redis-server clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

# A real redis-server for integration tests; installed with apt when we are root.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server with apt-get"; \
	    (apt-get install -y -q redis-server >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null)); \
	  else echo "WARNING: redis-server not installed and cannot install it (not root or no apt);" \
	       "integration tests that need it will be skipped"; fi; }

dev: $(STAMP)
	$(BIN)/python -m local.stack

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) redis-server lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
