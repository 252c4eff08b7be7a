"""lbw_utils.runner.profiles: a profile with a typo stops before anything runs, with a message naming the problem
and what is allowed; the shipped profiles load, and every step passes only parameters its notebook declares."""

from __future__ import annotations

import ast
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from lbw_utils.studies import baseline_search, training_length
from lbw_utils.runs.experiments import Settings, check_method
from lbw_utils.models.recurrent import name_model_parameters
from lbw_utils.runner import reproduce
from lbw_utils.runner.profiles import (
    PROFILE_KEYS,
    PROFILE_TABLE_END,
    PROFILE_TABLE_PAGES,
    PROFILE_TABLE_START,
    STUDY_KEYS,
    ProfileError,
    available_profiles,
    load_profile,
    notebook_parameters,
    profiles_table,
    write_profile_tables,
)

ROOT = Path(__file__).resolve().parent.parent

NOTEBOOKS = ["00_baseline_recipe", "01_baseline", "02_tpr_analysis", "03_static_weighting", "04_dynamic_weighting",
             "05_name_nationality_rnn", "06_paper_figures", "07_training_length", "08_tuning_seeds",
             "09_beyond_reweighting"]

VALID = {
    "description": "a tiny profile written by a test",
    "shared": {"seeds": [0, 1], "device": "cpu"},
    "studies": {
        "fm": {
            "parameters": {"dataset": "fashion_mnist", "epochs": 1},
            "notebooks": ["01_baseline", "02_tpr_analysis"],
            "overrides": {"02_tpr_analysis": {"top_pairs": 4}},
        },
    },
    "final": ["06_paper_figures"],
}


def write(tmp_path, content, name: str = "mine.yaml"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
    return path


def changed(**study_changes) -> dict:
    """VALID with the study's keys replaced (None deletes a key)."""
    study = {**VALID["studies"]["fm"], **study_changes}
    study = {key: value for key, value in study.items() if value is not None}
    return {**VALID, "studies": {"fm": study}}


def refused(path, *words) -> str:
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    assert isinstance(caught.value, ValueError)
    return message


def test_a_valid_profile_gives_one_step_per_notebook_with_its_own_parameters(tmp_path):
    content, steps = load_profile(write(tmp_path, VALID))
    assert content == VALID
    assert [(step.study, step.notebook) for step in steps] == [
        ("fm", "01_baseline"), ("fm", "02_tpr_analysis"), ("", "06_paper_figures")]
    first, second, final = (step.parameters for step in steps)
    assert first == {"seeds": [0, 1], "device": "cpu", "dataset": "fashion_mnist", "epochs": 1}
    assert second == {"dataset": "fashion_mnist", "top_pairs": 4}  # no seeds, epochs, device: 02 declares none
    assert final == {}
    assert steps[1].name == "fm__02_tpr_analysis" and steps[2].name == "06_paper_figures"


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, {**VALID, "studys": {}})
    refused(path, str(path), "unknown key(s) ['studys']", f"allowed: {sorted(PROFILE_KEYS)}")


def test_missing_studies(tmp_path):
    refused(write(tmp_path, {"description": "x"}), "missing key(s) ['studies']")


def test_unknown_study_key(tmp_path):
    refused(write(tmp_path, changed(notebook=["01_baseline"])), "study 'fm'", "unknown key(s) ['notebook']",
            f"allowed: {sorted(STUDY_KEYS)}")


def test_unknown_parameter(tmp_path):
    message = refused(write(tmp_path, changed(parameters={"dataset": "fashion_mnist", "epoch": 1})),
                      "study 'fm'", "parameter(s) ['epoch']", "['01_baseline', '02_tpr_analysis']", "they accept")
    assert "'epochs'" in message and "'top_pairs'" in message  # the allowed names, from both notebooks


def test_unknown_shared_parameter_is_not_dropped_silently(tmp_path):
    # `seed:` instead of `seeds:` would otherwise run every notebook with its default seeds.
    message = refused(write(tmp_path, {**VALID, "shared": {"seed": [0]}}), "shared parameter(s) ['seed']",
                      "they declare")
    assert "'seeds'" in message


def test_override_for_a_notebook_the_study_does_not_run(tmp_path):
    refused(write(tmp_path, changed(overrides={"04_dynamic_weighting": {"alphas": [0.1]}})),
            "overrides name notebooks ['04_dynamic_weighting']", "it runs ['01_baseline', '02_tpr_analysis']")


def test_override_with_a_key_the_notebook_does_not_declare(tmp_path):
    message = refused(write(tmp_path, changed(overrides={"02_tpr_analysis": {"epochs": 3}})),
                      "override(s) ['epochs'] are not parameters of 02_tpr_analysis", "it accepts")
    assert str(sorted(notebook_parameters("02_tpr_analysis"))) in message


def test_unknown_notebook(tmp_path):
    refused(write(tmp_path, changed(notebooks=["01_baseline", "02_tpr_analysis", "08_extra"])),
            "notebook '08_extra' does not exist", str(NOTEBOOKS))
    refused(write(tmp_path, {**VALID, "final": ["06_figures"]}), "'06_figures'", str(NOTEBOOKS))


def test_unknown_profile_name():
    with pytest.raises(ProfileError) as caught:
        load_profile("laptop")
    assert "'laptop'" in str(caught.value) and str(available_profiles()) in str(caught.value)
    assert available_profiles() == ["baseline", "cpu", "frontier", "gpu", "length", "names", "smoke"]


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nowhere.yaml")


def test_invalid_yaml(tmp_path):
    path = write(tmp_path, "studies: {fm: [unclosed\n")
    message = refused(path, str(path), "not valid YAML")
    assert "line" in message  # the parser's position comes along


@pytest.mark.parametrize("content, words", [
    ("", ["must be a mapping", "NoneType"]),
    ("- just\n- a list\n", ["must be a mapping", "list"]),
    ({**VALID, "studies": ["fm"]}, ["studies must be a mapping"]),
    ({**VALID, "shared": ["seeds"]}, ["shared must be a mapping"]),
    (changed(notebooks="01_baseline"), ["notebooks must be a non-empty list of notebook names", str(NOTEBOOKS)]),
    (changed(notebooks=[]), ["non-empty list"]),
    (changed(parameters=["dataset"]), ["parameters must be a mapping"]),
    (changed(overrides={"02_tpr_analysis": [4]}), ["overrides of 02_tpr_analysis must be a mapping"]),
    ({**VALID, "final": "06_paper_figures"}, ["final must be a list of notebook names"]),
    ({**VALID, "studies": {"fm": ["01_baseline"]}}, ["study 'fm' must be a mapping"]),
])
def test_sections_of_the_wrong_shape(tmp_path, content, words):
    refused(write(tmp_path, content), *words)


def test_profile_error_comes_before_any_output(tmp_path, monkeypatch):
    """reproduce() checks the whole profile before it creates the results folder or runs anything."""
    from lbw_utils.runner import reproduce, sequential

    def must_not_run(*args, **kwargs):
        raise AssertionError("a notebook ran although the profile is invalid")

    monkeypatch.setattr(sequential, "execute_step", must_not_run)
    path = write(tmp_path, changed(overrides={"02_tpr_analysis": {"top_pair": 4}}))
    with pytest.raises(ProfileError, match="top_pair"):
        reproduce.reproduce(str(path), tmp_path / "results")
    assert not (tmp_path / "results").exists()


# --- the shipped profiles ---------------------------------------------------------------------


@pytest.mark.parametrize("name, notebooks", [
    ("smoke", NOTEBOOKS),
    ("cpu", [n for n in NOTEBOOKS if n not in ("00_baseline_recipe", "07_training_length", "09_beyond_reweighting")]),
    ("gpu", NOTEBOOKS[1:]), ("baseline", ["00_baseline_recipe"]), ("length", ["07_training_length", "06_paper_figures"]),
    ("frontier", ["08_tuning_seeds", "09_beyond_reweighting"]), ("names", ["05_name_nationality_rnn"]),
])
def test_shipped_profile_loads_and_every_parameter_is_declared(name, notebooks):
    content, steps = load_profile(name)
    assert content["description"]
    assert {step.notebook for step in steps} == set(notebooks)
    if "06_paper_figures" in notebooks:
        assert steps[-1].notebook == "06_paper_figures" and steps[-1].study == ""
    for step in steps:
        declared = notebook_parameters(step.notebook)
        assert set(step.parameters) <= set(declared), f"{step.name}: {set(step.parameters) - set(declared)}"
        assert "results_dir" not in step.parameters  # the runner sets it


@pytest.mark.parametrize("name", ["smoke", "baseline", "cpu", "gpu", "length", "frontier", "names"])
def test_shipped_profile_values_make_valid_settings(name):
    """Every training step's parameters (over the notebook's defaults) pass the same checks the notebook
    makes first, so a bad value (epochs: 0, model_size: huge, seeds: []) fails here, not hours into a study."""
    _, steps = load_profile(name)
    checked = 0
    for step in steps:
        if "seeds" not in step.parameters:
            continue
        # papermill reports each default as its source text, e.g. '"fashion_mnist"' or '[0, 1, 2]'.
        defaults = {key: ast.literal_eval(text) for key, text in notebook_parameters(step.notebook).items()}
        params = {**defaults, **step.parameters}
        if step.notebook == "05_name_nationality_rnn":
            overrides = {key: params[key] for key in ("epochs", "batch_size", "lr", "weight_decay", "model_options")}
            params = {**params, "dataset": "names", **name_model_parameters(params["model_config"], overrides,
                                                                               params["classes"])}
            for method in params["methods"] or []:
                check_method(method)
        if step.notebook == "09_beyond_reweighting":
            for method in params["methods"]:
                check_method(method)
        if step.notebook == "00_baseline_recipe":  # the stages, the references and every candidate's compute
            baseline_search.check_tuning_seeds(params["seeds"], params["evaluated_seeds"])
            baseline_search.check_compute(baseline_search.check_stages(params["stages"]),
                                          baseline_search.regime_recipe(params), (1, 28, 28), 10)
            baseline_search.check_references(params["references"])
        settings = Settings.from_params(params)
        assert settings.seeds == list(step.parameters["seeds"])
        if step.notebook == "07_training_length":
            training_length.check_budgets(params["budgets"])
            training_length.check_arms(params["arms"])
        checked += 1
    assert checked >= {"length": 1, "frontier": 2, "names": 1, "baseline": 2}.get(name, 4)


def test_profile_text_in_the_module_docstring_is_a_valid_profile(tmp_path):
    """The example in lbw_utils.runner.profiles' docstring is what users copy: it must load."""
    import lbw_utils.runner.profiles as module

    example = module.__doc__.split("looks like::")[1].split("Every key is checked")[0]
    path = write(tmp_path, textwrap.dedent(example))
    _, steps = load_profile(path)
    assert [step.notebook for step in steps] == ["01_baseline", "02_tpr_analysis", "06_paper_figures"]


# --- every list of profiles a reader sees comes from the profile files -----------------------------------------

def shipped_descriptions() -> dict[str, str]:
    return {name: " ".join(load_profile(name)[0]["description"].split()) for name in available_profiles()}


@pytest.mark.parametrize("page", PROFILE_TABLE_PAGES)
def test_the_profile_table_of_each_page_is_the_one_the_profile_files_make(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    assert text.count(PROFILE_TABLE_START) == 1 and text.count(PROFILE_TABLE_END) == 1, page
    shown = text.split(PROFILE_TABLE_START, 1)[1].split(PROFILE_TABLE_END, 1)[0].strip()
    assert shown == profiles_table(), (f"{page}'s profile table differs from the profile files: rewrite it with "
                                       "`python -m lbw_utils.runner.profiles --write`")


def test_the_profile_table_has_a_row_per_profile_file_with_its_description_and_device():
    rows = profiles_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{name}`" for name in available_profiles()]
    for row, (name, description) in zip(rows, shipped_descriptions().items()):
        assert description in row, name
    assert rows[available_profiles().index("smoke")].endswith("| the CPU |")
    assert rows[available_profiles().index("gpu")].endswith("| a CUDA GPU |")


def test_writing_the_profile_tables_rewrites_only_between_the_markers(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(f"before\n{PROFILE_TABLE_START}\nstale\n{PROFILE_TABLE_END}\nafter\n")
    (tmp_path / "docs" / "reproducibility.md").write_text("a page without the markers\n")
    assert write_profile_tables(tmp_path) == [tmp_path / "README.md"]
    assert (tmp_path / "README.md").read_text() == (f"before\n{PROFILE_TABLE_START}\n{profiles_table()}\n"
                                                    f"{PROFILE_TABLE_END}\nafter\n")
    assert (tmp_path / "docs" / "reproducibility.md").read_text() == "a page without the markers\n"


def test_reproduce_help_names_every_profile_file(capsys):
    with pytest.raises(SystemExit):
        reproduce.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"one of {', '.join(available_profiles())}" in shown


MAKE = shutil.which("make")


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_help_lists_every_profile_with_its_description():
    shown = subprocess.run([MAKE, "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    listed = {line.split()[0]: line.split(None, 1)[1] for line in shown.split("profiles (", 1)[1].splitlines()[1:]}
    assert listed == shipped_descriptions()
    assert "make reproduce" in shown and "make test " in shown


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_reproduce_runs_one_study_for_one_seed():
    """`make reproduce PROFILE=cpu STUDIES=fashion_mnist SEEDS=0` reaches reproduce's --studies and --seeds (make -n
    prints the command without running it), and reproduce plans that study alone, for that seed."""
    planned = subprocess.run([MAKE, "-n", "--no-print-directory", "reproduce", "PROFILE=cpu", "STUDIES=fashion_mnist",
                              "SEEDS=0"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    command = next(line for line in planned.replace("\\\n", " ").splitlines() if "lbw_utils.runner.reproduce" in line)
    assert command.split()[-4:] == ["--studies", "fashion_mnist", "--seeds", "0"]
    assert "--profile cpu" in command
    unrestricted = subprocess.run([MAKE, "-n", "--no-print-directory", "reproduce", "PROFILE=cpu"], cwd=ROOT,
                                  capture_output=True, text=True, check=True).stdout
    assert "--studies" not in unrestricted and "--seeds" not in unrestricted
    steps = reproduce.select_steps(load_profile("cpu")[1], studies=["fashion_mnist"], seeds=[0])
    assert {step.study for step in steps if step.study} == {"fashion_mnist"}  # and the final notebooks, which read
    assert all(step.parameters["seeds"] == [0] for step in steps if "seeds" in step.parameters)
