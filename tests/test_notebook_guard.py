"""lbw_utils.runs.notebook.ParameterGuard: papermill's injected parameters must be ones the notebook declares."""

from __future__ import annotations

import pytest

from lbw_utils.runs.notebook import ParameterGuard, UnknownParameterError, literal_assignments

PARAMETERS_CELL = 'dataset = "fashion_mnist"\nepochs = 5\nlr = 0.1\nseeds = [0, 1, 2]\nresults_dir = None\n'


def run_cell(history: list[str], namespace: dict, source: str) -> None:
    """What the kernel does: append the cell to the input history, then execute it."""
    history.append(source)
    exec(source, namespace)


def start(cells_before: tuple[str, ...] = ("import lbw_utils",)) -> tuple[list[str], dict, ParameterGuard]:
    history = ["", *cells_before]  # IPython's In[0] is an empty string
    namespace: dict = {}
    guard_cell = "from lbw_utils.runs.notebook import ParameterGuard\nguard = ParameterGuard()"
    history.append(guard_cell)  # the guard's own cell is already in the history while it runs
    guard = ParameterGuard(history)
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
