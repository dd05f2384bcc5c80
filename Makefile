# Sealsync: `make dev` runs the local stack, `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-fast lint typecheck test-tools clean test-long

$(STAMP): requirements.txt requirements-dev.txt clients/requirements.txt clients/pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(BIN)/pip install -q --upgrade "pip<26.3"  # chalice 1.34 pins pip<26.3
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

# The data is kept in .sealsync-data/ across restarts (local/persist.py);
# `make dev DEV_ARGS=--ephemeral` keeps nothing, as before.
dev: $(STAMP)
	$(BIN)/python -m local.stack $(DEV_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) test-tools lint typecheck
	$(BIN)/pytest -q -n 2 -m "not long"

# The randomized tests at length (docs/TESTING.md): the commit state machine
# runs >= 10,000 steps (SEALSYNC_LONG_STEPS), the client state machine >= 2,000
# (SEALSYNC_CLIENT_LONG_STEPS) and schemathesis many more examples.
test-long: $(STAMP) test-tools
	SEALSYNC_HYPOTHESIS_PROFILE=long $(BIN)/pytest -q --timeout 5400 tests/property tests/fuzz \
	  tests/client_model
	$(BIN)/pytest -q -m long

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Deployable templates (SAM + Terraform) for STAGE into dist/, validated offline;
# `make cost` prices a million commits from the latest bench results.
.PHONY: package cost
STAGE ?= dev
package: $(STAMP)
	$(BIN)/python -m deploy.package --stage $(STAGE)
	$(BIN)/cfn-lint dist/$(STAGE)/sam/sam.yaml
	@if command -v terraform >/dev/null 2>&1; then \
	  cd dist/$(STAGE)/terraform && terraform providers >/dev/null 2>&1 && \
	  { terraform init -backend=false -input=false >/dev/null 2>&1 && terraform validate || \
	    echo "terraform: provider not installable here (offline?); terraform validate skipped"; }; \
	else echo "terraform not installed: terraform validate skipped (tests/deploy checks the JSON)"; fi

cost: $(STAMP)
	$(BIN)/python -m deploy.cost $(if $(RESULTS),--results $(RESULTS))

# Figures side by side with rclone and restic (installed with apt when root):
# benchmarks/results/latest.json + latest.md. QUICK=1: the < 3 minute profile.
.PHONY: bench
bench: $(STAMP) test-tools
	$(BIN)/python -m benchmarks.run $(if $(QUICK),--quick,)
