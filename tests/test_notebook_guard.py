"""lbw_utils.runs.notebook.ParameterGuard: papermill's injected parameters must be ones the notebook declares, or,
for a notebook that trains, a setting of the study (every TrainConfig, DataOptions and ModelOptions field), which
its `parameters` cell then does not repeat."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lbw_utils.runs.experiments import (DATA_PARAMETERS, SETTINGS_PARAMETERS, TRAIN_PARAMETERS, DataOptions, Settings,
                                        TrainConfig)
from lbw_utils.runs.notebook import ParameterGuard, UnknownParameterError, literal_assignments, settings_parameters_of

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TRAINING_NOTEBOOKS = ["00_baseline_recipe", "01_baseline", "03_static_weighting", "04_dynamic_weighting", "05_name_nationality_rnn",
                      "07_training_length", "08_tuning_seeds", "09_beyond_reweighting"]

PARAMETERS_CELL = 'dataset = "fashion_mnist"\nepochs = 5\nlr = 0.1\nseeds = [0, 1, 2]\nresults_dir = None\n'


def run_cell(history: list[str], namespace: dict, source: str) -> None:
    """What the kernel does: append the cell to the input history, then execute it."""
    history.append(source)
    exec(source, namespace)


def start(cells_before: tuple[str, ...] = ("import lbw_utils",), settings: bool = False
          ) -> tuple[list[str], dict, ParameterGuard]:
    history = ["", *cells_before]  # IPython's In[0] is an empty string
    namespace: dict = {}
    guard_cell = f"from lbw_utils.runs.notebook import ParameterGuard\nguard = ParameterGuard(settings={settings})"
    history.append(guard_cell)  # the guard's own cell is already in the history while it runs
    guard = ParameterGuard(history, settings=settings)
    return history, namespace, guard


def test_declared_parameters_are_returned():
    history, namespace, guard = start()
    run_cell(history, namespace, PARAMETERS_CELL)
    history.append("params = guard.check(globals())")
    assert guard.check(namespace) == {"dataset": "fashion_mnist", "epochs": 5, "lr": 0.1, "seeds": [0, 1, 2],
                                      "results_dir": None}


def test_injected_values_override_declared_ones():
    history, namespace, guard = start()
    run_cell(history, namespace, PARAMETERS_CELL)
    run_cell(history, namespace, "# Parameters\nepochs = 1\nseeds = [7]\n")  # papermill's injected cell
    params = guard.check(namespace)
    assert params["epochs"] == 1 and params["seeds"] == [7] and params["lr"] == 0.1


def test_unknown_injected_name_raises_listing_the_allowed_names():
    history, namespace, guard = start()
    run_cell(history, namespace, PARAMETERS_CELL)
    run_cell(history, namespace, "# Parameters\nepoch = 1\nlr = 0.01\nbatchsize = 64\n")
    with pytest.raises(UnknownParameterError) as caught:
        guard.check(namespace)
    message = str(caught.value)
    assert "['batchsize', 'epoch']" in message
    assert "['dataset', 'epochs', 'lr', 'results_dir', 'seeds']" in message
    assert isinstance(caught.value, NameError)


def test_rerunning_the_parameters_cell_is_fine():
    history, namespace, guard = start()
    run_cell(history, namespace, PARAMETERS_CELL)
    run_cell(history, namespace, PARAMETERS_CELL)
    run_cell(history, namespace, "epochs = 3")  # a user editing one value and re-running
    assert guard.check(namespace)["epochs"] == 3


def test_non_literal_cells_are_ignored():
    history, namespace, guard = start()
    run_cell(history, namespace, "import math")
    run_cell(history, namespace, PARAMETERS_CELL)
    for cell in ("total = epochs * 2", "print(epochs)", "step = math.pi", "a = b = 1", "x: int = 3",
                 "name = dataset.upper()", "", "# just a comment", "def f():\n    return 1",
                 "pairs = {(1, 2): 3}\nfull = f'{dataset}'", "odd = {[]: 1} if False else 0",
                 "broken = (", "bad_set = {1, [2]}"):
        history.append(cell)  # executed or not, the guard only reads the source
    assert set(guard.check(namespace)) == {"dataset", "epochs", "lr", "seeds", "results_dir"}


def test_cells_before_the_guard_do_not_count():
    history, namespace, guard = start(cells_before=("unrelated = 1", "other = 'x'"))
    run_cell(history, namespace, PARAMETERS_CELL)
    assert "unrelated" not in guard.check(namespace)


def test_check_without_a_parameters_cell_raises():
    history, namespace, guard = start()
    history.append("x = compute()")
    with pytest.raises(RuntimeError, match="parameters"):
        guard.check(namespace)


def test_literal_assignments():
    assert literal_assignments("a = 1\nb = 'x'\nc = [1, (2, 3)]\nd = -1e-3\ne = {'k': None}") == list("abcde")
    for source in ("a = b", "a = 1\nprint(a)", "a, b = 1, 2", "a += 1", "", "a = ", "a = {[]: 1}",
                   "a = {{}}", "a = 2 * 3"):
        assert literal_assignments(source) is None, source


def test_outside_a_notebook_the_guard_says_so():
    with pytest.raises(RuntimeError, match="notebook"):
        ParameterGuard()


# --- the study's settings, taken by name ---------------------------------------------------------------------

OWN_CELL = 'dataset = "fashion_mnist"\nseeds = [0, 1, 2]\nresults_dir = None\n'


def test_a_settings_guard_takes_every_setting_by_name_and_only_those_passed():
    history, namespace, guard = start(settings=True)
    run_cell(history, namespace, OWN_CELL)
    run_cell(history, namespace, "# Parameters\nepochs = 3\nmomentum = 0.8\nper_class = 40\nmodel_size = 'tiny'\n")
    params = guard.check(namespace)
    assert params == {"dataset": "fashion_mnist", "seeds": [0, 1, 2], "results_dir": None, "epochs": 3,
                      "momentum": 0.8, "per_class": 40, "model_size": "tiny"}
    settings = Settings.from_params(params)
    assert (settings.train.epochs, settings.train.momentum, settings.data.per_class, settings.model.size) == (
        3, 0.8, 40, "tiny")
    assert settings.train.lr == TrainConfig.lr  # not passed: the dataclass's default


def test_a_settings_guard_still_refuses_a_typo_and_names_what_it_takes():
    history, namespace, guard = start(settings=True)
    run_cell(history, namespace, OWN_CELL)
    run_cell(history, namespace, "# Parameters\nepoch = 3\n")
    with pytest.raises(UnknownParameterError) as caught:
        guard.check(namespace)
    message = str(caught.value)
    assert "['epoch']" in message and "['dataset', 'results_dir', 'seeds']" in message and "'epochs'" in message


def test_without_settings_a_training_parameter_is_unknown():
    history, namespace, guard = start()
    run_cell(history, namespace, OWN_CELL)
    run_cell(history, namespace, "# Parameters\nepochs = 3\n")
    with pytest.raises(UnknownParameterError, match=r"unknown parameter\(s\) \['epochs'\]"):
        guard.check(namespace)


def test_the_settings_parameters_are_the_dataclasses_fields():
    assert TRAIN_PARAMETERS == tuple(field.name for field in dataclasses.fields(TrainConfig))
    assert set(DATA_PARAMETERS) == {field.name for field in dataclasses.fields(DataOptions)} - {"dataset"}
    assert set(TRAIN_PARAMETERS) | set(DATA_PARAMETERS) | {"model", "model_size", "model_options"} == set(
        SETTINGS_PARAMETERS)


def parameters_cell(notebook: str) -> str:
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return "".join(cell["source"])


@pytest.mark.parametrize("notebook", sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")))
def test_a_training_notebook_takes_the_settings_and_its_cell_does_not_repeat_them(notebook):
    cell = parameters_cell(notebook)
    assert not set(literal_assignments(cell)) & set(SETTINGS_PARAMETERS), "a setting's one home is its dataclass"
    if notebook in TRAINING_NOTEBOOKS:
        assert settings_parameters_of(NOTEBOOKS / f"{notebook}.ipynb") == SETTINGS_PARAMETERS
        said = [line for line in cell.splitlines() if "TrainConfig, DataOptions or ModelOptions field" in line]
        assert len(said) == 1 and said[0].startswith("# ")  # one comment line says any of them may be set
    else:
        assert settings_parameters_of(NOTEBOOKS / f"{notebook}.ipynb") == ()


@pytest.mark.parametrize("guard, takes", [
    ("guard = ParameterGuard(settings=True)", True), ("guard = notebook.ParameterGuard(settings=True)", True),
    ("guard = ParameterGuard()", False), ("guard = ParameterGuard(settings=False)", False),
    ("guard = ParameterGuard(settings=flag)", False),
    ("%matplotlib inline\nguard = ParameterGuard(settings=True)", False),  # a cell Python cannot read
])
def test_only_a_literal_settings_guard_makes_a_notebook_take_the_settings(tmp_path, guard, takes):
    path = tmp_path / "notebook.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# title"]},
                                          {"cell_type": "code", "source": [guard]}]}), encoding="utf-8")
    assert settings_parameters_of(path) == (SETTINGS_PARAMETERS if takes else ())
