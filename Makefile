# custsync: `make dev` for a first look, `make test` for the whole suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
DOCS_PORT ?= 8001

.PHONY: help install install-test install-docs dev test unit lint fuzz docs docs-build services services-stop services-status clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# pip's output goes to a log, shown only if the install fails: a first `make dev` prints nothing
# before the service's own first line.
PIP_INSTALL = $(BIN)/python -m pip install --quiet --disable-pip-version-check
define quietly
	@$(1) > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; echo "make: the install failed (log above)"; exit 1; }
endef

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing custsync into $(VENV) (once)..."
	$(call quietly,$(PIP_INSTALL) -e .)
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	@echo "installing custsync and its test tools into $(VENV)..."
	$(call quietly,$(PIP_INSTALL) -e '.[test]')
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	@echo "installing custsync and the documentation tools into $(VENV)..."
	$(call quietly,$(PIP_INSTALL) -e '.[docs]')
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Create .venv and install custsync (what the service needs, nothing more)

install-test: $(VENV)/.installed-test ## ...and its test tools

install-docs: $(VENV)/.installed-docs ## ...and the documentation tools

dev: install ## Run API + worker + fake Stripe and Salesforce in one in-memory process on PORT (8000)
	@$(BIN)/custsync dev --port $(PORT)

lint: install-test ## The lint set and the formatter (ruff), the types (mypy), the dependency rule (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install-test lint services ## Install, start PostgreSQL, Kafka and a browser, run the whole suite
	eval "$$(scripts/services.sh env)" && $(BIN)/pytest

unit: install-test ## Only the fast tests (no services, no network)
	$(BIN)/pytest tests/unit tests/http tests/e2e -m "not network"

fuzz: install-test services ## schemathesis over the whole API on PostgreSQL, longer and with a new seed (FUZZ_EXAMPLES=200)
	eval "$$(scripts/services.sh env)" && SCHEMATHESIS_MAX_EXAMPLES=$${FUZZ_EXAMPLES:-200} SCHEMATHESIS_SEED= \
		$(BIN)/pytest tests/integration/test_schemathesis.py -s -p no:cacheprovider

docs: install-docs ## Serve the documentation site on http://127.0.0.1:DOCS_PORT (8001), rebuilt as you edit
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: install-docs ## Build the documentation site into site/, strictly: a broken link or a page left out fails
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

services: ## Install (first time) and start PostgreSQL, Kafka and stripe-mock on 127.0.0.1 (data in .services/), and a browser
	scripts/services.sh up

services-stop: ## Stop them
	scripts/services.sh down

services-status: ## Are they running?
	scripts/services.sh status

clean: ## Remove the virtualenv, caches and the built site
	rm -rf $(VENV) .pytest_cache .import_linter_cache site
