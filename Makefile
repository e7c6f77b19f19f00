# Two targets a fresh machine needs: `make run` (install, then run the default scenario) and
# `make test` (install, type-check the harness packages, run the test suite). Everything
# installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test clean

$(BIN)/emul: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,farm]'
	touch $(BIN)/emul

install: $(BIN)/emul

run: install
	$(BIN)/emul run

test: install
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis

# `make arm64-check` (README, "Checking aarch64"): the fast tests and the default scenario as
# aarch64 code, in a Debian arm64 root under qemu-user; needs root. Not part of `make test`.
.PHONY: arm64-check
arm64-check:
	$(PYTHON) scripts/arm64_check.py
