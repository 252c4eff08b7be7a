"""Every notebook runs end to end through papermill (smoke profile), and is committed clean."""

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from lbw_utils.notebook import literal_assignments
from lbw_utils.profiles import NOTEBOOK_DIR, load_profile
from lbw_utils.reproduce import KERNEL, reproduce

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_baseline", "02_tpr_analysis", "03_static_weighting", "04_dynamic_weighting",
            "05_name_nationality_rnn", "06_paper_figures", "07_training_length"]


def test_the_seven_notebooks_exist():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} has outputs in a cell"
            assert cell.execution_count is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_literal_assignments(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert literal_assignments(tagged[0].source), "the parameters cell must hold literal assignments only"
    assert "results_dir" in literal_assignments(tagged[0].source)


def test_unknown_parameter_fails_the_run(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter"):
        papermill.execute_notebook(str(NOTEBOOK_DIR / "06_paper_figures.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"results_dirr": str(tmp_path)}, kernel_name=KERNEL,
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    summary = reproduce("smoke", root, log=lambda message: None)
    return summary.parent


def test_smoke_profile_runs_every_notebook(smoke_results):
    _, steps = load_profile("smoke")
    for step in steps:
        executed = nbformat.read(smoke_results / "notebooks" / f"{step.name}.ipynb", as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{step.name} raised: {errors}"
    assert {step.notebook for step in steps} == set(EXPECTED)


def test_smoke_profile_writes_records_tables_figures_and_summary(smoke_results):
    records = sorted((smoke_results / "records").glob("*/*.json"))
    datasets = {path.parent.name for path in records}
    assert datasets == {"fashion_mnist", "names5"}
    for path in records:
        record = json.loads(path.read_text())
        assert 0.0 <= record["test"]["accuracy"] <= 1.0
        assert len(record["test"]["tpr"]) == len(record["classes"])
    for dataset in datasets:
        for suffix in ("md", "csv", "tex"):
            assert (smoke_results / "tables" / dataset / f"methods.{suffix}").stat().st_size > 0
    figures = {path.name for path in (smoke_results / "figures").glob("*/*")}
    assert {"fig1_tpr_bars.png", "fig1_tpr_bars.pdf", "fig2_tpr_bars.png", "pareto.png",
            "confusion_matrix.png"} <= figures
    summary = (smoke_results / "summary.md").read_text()
    assert "06_paper_figures" in summary and "| baseline |" in summary


def test_rerun_reuses_finished_records(smoke_results):
    before = {p: p.stat().st_mtime_ns for p in (smoke_results / "records").glob("*/*.json")}
    reproduce("smoke", smoke_results.parent, log=lambda message: None)
    after = {p: p.stat().st_mtime_ns for p in (smoke_results / "records").glob("*/*.json")}
    assert before == after
