"""Every notebook runs end to end through papermill (smoke profile), and is committed clean.

The smoke profile runs once per test session, as a user runs it: ``python -m lbw_utils.runner.reproduce``
in a fresh copy of this checkout (its own git repository), so the tests can check what the
terminal shows and that nothing outside ``results/`` changed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from lbw_utils.config import REPO_ROOT
from lbw_utils.runs.notebook import literal_assignments
from lbw_utils.runner.profiles import NOTEBOOK_DIR, load_profile
from lbw_utils.runner.execution import KERNEL
from lbw_utils.runner.reproduce import reproduce

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["00_baseline_recipe", "01_baseline", "02_tpr_analysis", "03_static_weighting", "04_dynamic_weighting",
            "05_name_nationality_rnn", "06_paper_figures", "07_training_length", "08_tuning_seeds",
            "09_beyond_reweighting"]


def test_the_ten_notebooks_exist():
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


def copy_of_checkout(target: Path) -> Path:
    """The checkout's files (tracked, and untracked but not ignored) in ``target``, committed as one git repo."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy of the checkout"]):
        subprocess.run(git + command, cwd=target, check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """(the copy's results/smoke folder, what the terminal showed) for `reproduce --profile smoke`."""
    checkout = copy_of_checkout(tmp_path_factory.mktemp("checkout"))
    env = {key: value for key, value in os.environ.items() if key != "LBW_RESULTS_DIR"}
    env["PYTHONPATH"] = str(checkout)  # the copy's package, in this process's kernel too
    shown = subprocess.run([sys.executable, "-m", "lbw_utils.runner.reproduce", "--profile", "smoke"], cwd=checkout,
                           env=env, capture_output=True, text=True, timeout=1200)
    terminal = shown.stdout + shown.stderr
    assert shown.returncode == 0, terminal[-5000:]
    return checkout, terminal


@pytest.fixture(scope="module")
def smoke_results(smoke_run):
    return smoke_run[0] / "results" / "smoke"


def test_reproduce_leaves_the_checkout_as_it_was(smoke_run):
    checkout, _ = smoke_run
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=checkout,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"reproduce changed the checkout outside results/:\n{status}"
    assert (checkout / "results" / "smoke" / "complete.json").exists()


def test_reproduce_shows_progress_and_ends_with_the_summary_pointer(smoke_run):
    _, terminal = smoke_run
    lines = terminal.splitlines()
    assert any(line.startswith("==> [step 1/") for line in lines)
    assert any("[run ] fashion_mnist / baseline / seed 0" in line for line in lines)
    done = [line for line in lines if "[done] fashion_mnist / baseline / seed 0: test acc" in line]
    assert done and "worst-class TPR" in done[0] and done[0].endswith(" s")
    assert any(line.lstrip().startswith("epoch   1/1") for line in lines)  # the training loop's line per epoch
    assert any(line.startswith("[progress] step ") and "trained" in line and "elapsed" in line for line in lines)
    assert "Kernel is running over TCP" not in terminal and "\r" not in terminal
    assert lines[-1].startswith("read first: ") and lines[-1].endswith("summary.md")
    assert "runs trained" in lines[-2] and "reused" in lines[-2]


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
    # notebook 05: the ensemble of recurrent networks and its student, each against the n-gram bag
    against_bag = (smoke_results / "tables" / "names5" / "against_bag.md").read_text()
    assert against_bag.count("against the n-gram bag (paired by fold, 2 folds)") == 2
    # notebook 09: its runs in their own folder, its tables beside the others with the prefix beyond_
    assert sorted((smoke_results / "beyond" / "records" / "fashion_mnist").glob("augment-confused__seed*.json"))
    for name in ("beyond_paired.md", "beyond_frontier.md", "beyond_posthoc_vs_posthoc.md", "beyond_budget_overshoot.md",
                 "beyond_compute.md", "beyond_answer.md"):
        assert (smoke_results / "tables" / "fashion_mnist" / name).stat().st_size > 0
    figures = {path.name for path in (smoke_results / "figures").glob("*/*")}
    assert {"fig1_tpr_bars.png", "fig1_tpr_bars.pdf", "fig2_tpr_bars.png", "pareto.png",
            "confusion_matrix.png"} <= figures
    summary = (smoke_results / "summary.md").read_text()
    assert "06_paper_figures" in summary and re.search(r"\| baseline +\|", summary)
    assert "### fashion_mnist: paired" in summary and "### fashion_mnist: goal" in summary
    assert "### fashion_mnist: length" in summary  # the training-length study's table
    assert "### fashion_mnist: findings" in summary and "### fashion_mnist: tuning" in summary
    # the tuning seeds' runs have their own records folder: no table of the evaluated seeds reads them
    assert not any(json.loads(p.read_text())["seed"] >= 100 for p in records)
    search = (smoke_results / "tables" / "fashion_mnist" / "baseline_search_smoke.md").read_text()
    assert "Chosen on the validation splits of tuning seeds [100, 101]" in search and "**chosen**" in search
    assert "Reference twice the epochs (2.00x the compute)" in search
    assert json.loads((smoke_results / "tables" / "fashion_mnist" / "baseline_recipe_smoke.json").read_text())["recipe"]
    tuned = list((smoke_results / "tuning" / "records").glob("*/*.json"))
    assert tuned and {json.loads(p.read_text())["seed"] for p in tuned} == {100, 101}
    choice = json.loads((smoke_results / "tables" / "fashion_mnist" / "tuning.json").read_text())
    assert set(choice["chosen"]) == {"dro", "minrecall"} and choice["seeds"] == [100, 101]
    findings = (smoke_results / "tables" / "fashion_mnist" / "findings.md").read_text()
    assert "Selected on validation" in findings and "dro: " in findings and "minrecall: " in findings
    paired = (smoke_results / "tables" / "fashion_mnist" / "paired.md").read_text()
    assert "ceiling (offsets fitted on test) - not a method" in paired and "p Holm" in paired


def test_rerun_reuses_finished_records(smoke_results):
    # one study of one notebook (the training-length ladder: 34 runs in one folder per rung): every one of its
    # runs is read back, none is written again
    def record_times():
        return {p: p.stat().st_mtime_ns for p in smoke_results.glob("length/*/records/*/*.json")}

    before, lines = record_times(), []
    reproduce("smoke", smoke_results.parent, log=lines.append, studies=["length"], final=False)
    assert len(before) > 30 and record_times() == before
    assert "0 runs trained" in "\n".join(lines) and any("[reused]" in line for line in lines)
