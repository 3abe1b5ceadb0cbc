# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest packaging demo bench soak clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "syncd needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach dir,$(PLUGIN_DIRS),-e '$(dir)[test]')
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy syncd
	$(BIN)/mypy $(foreach dir,$(PLUGIN_DIRS),$(dir)/syncd_$(notdir $(dir)))

pytest: $(STAMP) browser
	$(BIN)/pytest -q

# Debian's chromium for the console's browser tests (tests/browser_support.py), if missing
.PHONY: browser
browser:
	sh contrib/install-browser.sh

# Dockerfile (hadolint) and the systemd unit (systemd-analyze), installing those tools if missing
packaging: $(STAMP)
	VENV=$(VENV) sh contrib/check-packaging.sh

test: lint typecheck packaging pytest

# The pytest suite with `stress-ng --cpu 2` beside it (Debian's stress-ng, installed if missing;
# stopped afterwards whatever happens): no test may depend on timing. PYTEST_ARGS go to pytest.
.PHONY: test-under-load
test-under-load: $(STAMP) browser
	VENV=$(VENV) sh contrib/test-under-load.sh $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python config/demo/run.py

bench: $(STAMP)
	$(BIN)/python bench/engine.py

# bench/listing.py's venv: syncd and the plugins as in .venv, plus the official xero-python SDK
# it compares the Xero connector with (a benchmark's reference only, never a dependency of syncd);
# syncd-xero with its sandbox extra, for `syncd sandbox xero`
BENCH_VENV ?= .venv-bench
.PHONY: bench-venv bench-listing
bench-venv: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . $(foreach dir,$(PLUGIN_DIRS),-e '$(dir)$(if $(filter plugins/xero,$(dir)),[sandbox])') 'xero-python>=15.2'
	@touch $@

bench-listing: bench-venv
	$(BENCH_VENV)/bin/python bench/listing.py

# the crash soak (not part of `make test`): >= 1,000 in-process kill points per pair of apps,
# 1,000 real SIGKILLs of syncd processes over the four pairs, then the state machine with crashes
# for 10,000+ steps
soak: $(STAMP)
	$(BIN)/python bench/soak.py --quiet
	$(BIN)/python bench/soak.py --quiet --sigkill --points 250
	SYNCD_HYPOTHESIS_PROFILE=soak $(BIN)/pytest -q -p no:cacheprovider tests/test_engine_stateful.py

# The container image and the systemd unit run for real (not part of `make test`): podman with
# runc on debootstrap bases (cached in ~/.cache/syncd-image), see docs/docker.md and docs/systemd.md
.PHONY: image-test
image-test: $(STAMP)
	VENV=$(VENV) sh contrib/image/test.sh $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
