# The two commands of README: `make run` (main job on the built-in defaults) and `make test`.
# Each installs the locked environment first when it is missing or stale (scripts/install.sh).
PYTHON ?= python3
TASK ?= cyber
METHODS ?= bm25,frozen
ARGS ?=

.PHONY: install run table test lock

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

run: install
	$(PYTHON) -m harness run --task $(TASK) --methods $(METHODS) $(ARGS)

table: install
	$(PYTHON) -m harness table $(ARGS)

test: install
	$(PYTHON) -m pytest -q $(ARGS)

# Regenerate requirements.lock after changing a dependency in pyproject.toml or requirements-nodeps.in.
lock:
	PYTHON=$(PYTHON) bash scripts/lock.sh
