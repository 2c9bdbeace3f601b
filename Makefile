# Two commands matter: `make run` (service with demo data on SQLite at
# http://127.0.0.1:8000) and `make test` (every test, SQLite and PostgreSQL).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test fuzz lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "error: Python 3.11 is required (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ledger init
	$(BIN)/ledger demo --if-empty
	$(BIN)/ledger serve

test: $(STAMP)
	bash scripts/ensure-test-deps.sh
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n 4

# schemathesis over the whole OpenAPI for FUZZ_SECONDS (the suite runs it for 30 s).
fuzz: $(STAMP)
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} $(BIN)/pytest -q tests/test_fuzz.py -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/append.py
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/rate_limits.py
	$(BIN)/python bench/attestation.py
	$(BIN)/python bench/http_answers.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
