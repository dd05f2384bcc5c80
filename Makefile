# Sealsync: `make dev` runs the local stack, `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-fast lint typecheck test-tools clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

# A real redis-server for integration tests, and curl + jq for the tested
# walk-through; installed with apt when we are root.
TEST_TOOLS := redis-server curl jq
test-tools:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "WARNING:$$missing not installed and cannot install (not root or no apt);" \
	       "the tests that need them will be skipped"; fi; fi

dev: $(STAMP)
	$(BIN)/python -m local.stack

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) test-tools lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Figures side by side with rclone and restic (installed with apt when root):
# benchmarks/results/latest.json + latest.md. QUICK=1: the < 3 minute profile.
.PHONY: bench
bench: $(STAMP) test-tools
	$(BIN)/python -m benchmarks.run $(if $(QUICK),--quick,)
