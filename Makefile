# The two commands of the README: `make test` and `make reproduce`.
# Both create the virtual environment in .venv and install the package on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= $(shell $(BIN)/python -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)

.PHONY: test reproduce publish lab benchmark clean-results

# Installs once (and again only when pyproject.toml changes); later calls print nothing for it.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing lbw_utils and its dependencies into $(VENV) (first use only)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lbw_utils)" >/dev/null
	@touch $(STAMP)

## Unit tests and every notebook executed through papermill with the smoke profile.
test: $(STAMP)
	@$(BIN)/python -m pytest

## Every notebook of a profile, under the profile for this hardware (PROFILE=smoke|cpu|gpu|length to override).
## Writes only under results/<profile>/.
reproduce: $(STAMP)
	@$(BIN)/python -m lbw_utils.reproduce --profile $(PROFILE)

## Maintainers: copy a finished profile's key tables and figures to docs/results/ and the README.
publish: $(STAMP)
	@$(BIN)/python -m lbw_utils.publish --profile $(PROFILE)

## JupyterLab with the project's kernel.
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	$(BIN)/jupyter lab notebooks/

## Speed benchmarks (scripts, not tests); tables and JSON go to results/benchmarks/.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean-results:
	rm -rf results/
