# custsync: `make dev` for a first look, `make test` for the whole suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: help install dev test unit lint fuzz services services-stop services-status clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed ## Create .venv and install custsync with its test tools

dev: install ## Run API + worker + fake Stripe in one in-memory process on PORT (8000)
	$(BIN)/custsync dev --port $(PORT)

lint: install ## Pyflakes (ruff) and the dependency rule (import-linter)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: install lint services ## Install, start PostgreSQL and Kafka, run the whole suite
	eval "$$(scripts/services.sh env)" && $(BIN)/pytest

unit: install ## Only the fast tests (no services)
	$(BIN)/pytest tests/unit tests/http tests/e2e

fuzz: install services ## schemathesis over the whole API on PostgreSQL, longer and with a new seed (FUZZ_EXAMPLES=200)
	eval "$$(scripts/services.sh env)" && SCHEMATHESIS_MAX_EXAMPLES=$${FUZZ_EXAMPLES:-200} SCHEMATHESIS_SEED= \
		$(BIN)/pytest tests/integration/test_schemathesis.py -s -p no:cacheprovider

services: ## Install (first time) and start PostgreSQL and Kafka on 127.0.0.1, data in .services/
	scripts/services.sh up

services-stop: ## Stop them
	scripts/services.sh down

services-status: ## Are they running?
	scripts/services.sh status

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .import_linter_cache
