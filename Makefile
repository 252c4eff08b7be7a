# The two commands of the README: `make test` and `make reproduce`.
# Both create the virtual environment in .venv and install the package on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_STAMP := $(VENV)/.lab-installed
PROFILE ?= $(shell $(BIN)/python -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
# Processes that train a study's runs in parallel: auto (from the hardware: one one-thread process per
# CPU core, or one per GPU on a multi-GPU machine; one for the smoke profile), or N (1: one process, in order).
WORKERS ?= auto
# Some studies of the profile (comma-separated), for some seeds (comma-separated); empty: all.
STUDIES ?=
SEEDS ?=

.PHONY: help test test-profiles reproduce publish lab benchmark gpu-check clean-results

# Installs print one line; pip's and the build backend's own output (warnings included) goes to
# .venv/install.log, shown only when an install fails.
PIP := PIP_ROOT_USER_ACTION=ignore $(BIN)/python -m pip --disable-pip-version-check --no-input

# Installs once (and again only when pyproject.toml changes); later calls print nothing for it.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing lbw_utils and its dependencies into $(VENV) (first use, or pyproject.toml changed)"
	@$(PIP) install --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(PIP) install -e ".[test]" >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lbw_utils)" >/dev/null
	@touch $(STAMP)

## This list: every target with the comment above it, and the profiles PROFILE= takes, each with its description,
## both read from their files (this Makefile, lbw_utils/runner/profiles/*.yaml); installs nothing.
help:
	@awk '/^## /{text = text substr($$0, 4) " "; next} /^[a-z][a-z-]*:/ && text {sub(/:.*/, ""); \
	  printf "make %-14s %s\n", $$0, text} {text = ""}' Makefile
	@echo "profiles (PROFILE=<name>, or the path of your own YAML file):"
	@for file in lbw_utils/runner/profiles/*.yaml; do \
	  printf '  %-9s %s\n' "$$(basename $$file .yaml)" "$$(sed -n 's/^description: //p' $$file)"; done

## Unit tests and every notebook executed through papermill with the smoke profile; the test files spread over
## the cores (at most 3 processes: the smoke profile is the long pole), each file whole on one process.
test: $(STAMP)
	@$(BIN)/python -m pytest -m "not profile_run" -n auto --maxprocesses 3 --dist loadfile --no-loadscope-reorder

## The tests that run whole profiles beyond the smoke one (the gpu profile at tiny scale on the CPU, two real
## workers against one process); CI runs them after `make test`.
test-profiles: $(STAMP)
	@$(BIN)/python -m pytest -m profile_run -n auto --maxprocesses 2 --dist loadfile

## Every notebook of a profile, under the profile for this hardware (PROFILE=<a file name of
## lbw_utils/runner/profiles/ without .yaml, as `make help` lists them, or a YAML path> to override), its runs trained by WORKERS parallel
## processes (WORKERS=N to override). STUDIES=a,b and SEEDS=0,1 run some studies of it, for some seeds
## (e.g. make reproduce PROFILE=cpu STUDIES=fashion_mnist SEEDS=0). Writes only under results/<profile>/.
reproduce: $(STAMP)
	@$(BIN)/python -m lbw_utils.runner.reproduce --profile $(PROFILE) --workers $(WORKERS) \
	  $(if $(STUDIES),--studies $(STUDIES)) $(if $(SEEDS),--seeds $(SEEDS))

## Maintainers: copy a finished profile's key tables and figures to docs/results/ and the README.
publish: $(STAMP)
	@$(BIN)/python -m lbw_utils.runner.publish --profile $(PROFILE)

## JupyterLab with the project's kernel (and ipywidgets, for the studies' progress bars). Installs the git
## pre-commit hook of .pre-commit-config.yaml first (outputs stripped from notebooks, ruff), which needs no
## network; where it cannot be installed, says why and opens JupyterLab all the same.
lab: $(LAB_STAMP)
	@out=$$($(BIN)/pre-commit install 2>&1) && echo "$$out (strips notebook outputs at commit)" \
	  || echo "pre-commit hook not installed, so notebooks saved with outputs are not stripped at commit: $$out"
	$(BIN)/jupyter lab notebooks/

$(LAB_STAMP): $(STAMP)
	@echo "installing JupyterLab, ipywidgets, pre-commit, nbstripout and ruff into $(VENV) (first use only)"
	@$(PIP) install -e ".[lab]" >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@touch $(LAB_STAMP)

## Speed benchmarks (scripts, not tests); tables and JSON go to results/benchmarks/.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

## On a CUDA machine: the CIFAR-10 time-to-94 % recipe and each gpu-profile study's time, measured briefly and
## extrapolated (docs/gpu.md); results/benchmarks/gpu_check.{json,md}. Without CUDA it says so and exits 0.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean-results:
	rm -rf results/
