"""The gpu profile end to end at tiny scale, on the CPU, through ``lbw_utils.runner.reproduce``.

The profile that runs is derived from ``lbw_utils/runner/profiles/gpu.yaml`` as it is: the same studies,
notebooks and overrides, with only the sizes shrunk (epochs, budgets, batch size, model size, subsets,
seeds) and the device set to the CPU, so a change to gpu.yaml is exercised here automatically. A
parameter of gpu.yaml this module does not know fails the test until it is told to shrink or keep it:
nothing the gpu profile asks for runs here at full size by accident.

CIFAR-10 is a few hundred images that the test writes in the torchvision python-pickle layout
(``test_data.write_cifar10``), each class a colour and a band, so that a two-epoch tiny network
recognises every class (the Q&A question's formula refuses a class with TPR 0). The one deviation from gpu.yaml is
the 42-class names study's method list (``ALL_NAMES``): no tiny network recalls each of 42 classes. The notebooks run in their own
kernels, which verify CIFAR-10 against its published MD5s: a ``sitecustomize`` module on the kernels'
PYTHONPATH pins those MD5s to the test's files, as the ``cifar_root`` fixture does in this process.
Fashion-MNIST and the names come from the real data (``$LBW_DATA_DIR``), as in the smoke profile.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import yaml

from lbw_utils import records
from lbw_utils.runner.profiles import load_profile, profile_path
from lbw_utils.runner.reproduce import reproduce
from lbw_utils.speed import autocast_precision
from test_data import write_cifar10

pytestmark = pytest.mark.profile_run  # minutes of training: `make test-profiles` and CI, not `make test`

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SEEDS = [0, 1]
# How each sized parameter of gpu.yaml shrinks; the parameters in KEPT are taken as they are. The values were
# chosen so that every tiny baseline recalls every class at least once on validation (the Q&A question's formula and
# the static margins refuse a class with TPR 0): more epochs than one, and a learning rate for batch 32.
SHRUNK = {
    "epochs": lambda value: 2,
    "budgets": lambda value: [2, 3],  # two rungs of the ladder
    "batch_size": lambda value: 32,
    "lr": lambda value: 0.05,
    "model_size": lambda value: "tiny",
    "per_class": lambda value: None,  # replaced by the dataset's own subset below
    "val_size": lambda value: 0.25,
    # a study's own seeds (the tuning seeds of notebook 08): its first two, so tuning seeds stay apart from the
    # evaluated ones (notebook 08 refuses an overlap)
    "seeds": lambda value: list(value)[:2],
}
KEPT = {"dataset", "classes", "augment", "track_train_tpr", "extra_methods", "gammas", "cdb_taus", "folds", "grid",
        "methods"}
# Per dataset, the subset and sizes of the tiny run (the names model: the smoke profile's small network, with
# the steps it needs to recall each of 5 classes; the bag family keeps its own tiny recipe).
TINY_DATA = {
    "cifar10": {"per_class": None, "val_size": 0.25},  # all of the test's 400 + 40 images
    "fashion_mnist": {"per_class": 100, "val_size": 0.25},
    "names": {"per_class": 100, "epochs": 10, "batch_size": 32, "lr": 0.01,
              "model_options": {"embedding_dim": 16, "hidden_size": 16, "ngram_buckets": 1024},
              "bag_options": {"dim": 16, "buckets": 4096}, "bag_training": {"epochs": 6, "batch_size": 32, "lr": 0.03}},
}
# The one deviation from gpu.yaml: a tiny network cannot recall each of 42 nationalities, so the 42-class
# study runs the smoke profile's recipe (class-difficulty weights, no static margins), as small as smoke's.
ALL_NAMES = {
    "parameters": {"per_class": 20, "epochs": 1},
    "overrides": {"05_name_nationality_rnn": {
        "static_scheme": "cdb",
        "methods": [{"name": "static", "scheme": "cdb", "tau": 2}, {"name": "ema", "alpha": 0.01, "normalize": True},
                    {"name": "cdb", "tau": "dynamic"}, {"name": "minrecall", "eta": 1.0, "form": "logit-adjusted"},
                    {"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.01}]}},
}


def shrink(values: dict, where: str) -> dict:
    unknown = sorted(set(values) - set(SHRUNK) - KEPT)
    if unknown:
        raise AssertionError(f"gpu.yaml {where} has parameter(s) {unknown} that tests/test_gpu_profile.py does not "
                             f"know: add each to SHRUNK (with its tiny value) or to KEPT")
    return {key: SHRUNK[key](value) if key in SHRUNK else value for key, value in values.items()}


def tiny_gpu_profile(gpu: dict, cifar_dir) -> dict:
    """gpu.yaml's studies, notebooks and overrides, with every size shrunk and the device the CPU."""
    tiny = copy.deepcopy(gpu)
    shared = tiny.get("shared") or {}
    assert set(shared) <= {"seeds", "device"}, f"gpu.yaml shared has {sorted(shared)}: teach the tiny profile"
    tiny["shared"] = {**shared, "seeds": SEEDS, "device": "cpu"}
    tiny["description"] = f"gpu.yaml at tiny scale on the CPU (test): {gpu.get('description', '')}"
    for name, study in tiny["studies"].items():
        given = study.get("parameters") or {}
        parameters = shrink(given, f"study {name}")
        dataset = parameters.get("dataset", "names")  # notebook 05 takes no dataset: it is the names task
        parameters.update(TINY_DATA[dataset])
        if dataset == "cifar10":
            parameters["data_dir"] = str(cifar_dir)
        overrides = {notebook: shrink(values or {}, f"study {name}, overrides of {notebook}")
                     for notebook, values in (study.get("overrides") or {}).items()}
        if dataset == "names" and parameters.get("classes") == "all":
            assert not overrides, f"gpu.yaml study {name} has overrides now: merge them with ALL_NAMES's"
            parameters.update(ALL_NAMES["parameters"])
            overrides = copy.deepcopy(ALL_NAMES["overrides"])
        study["parameters"] = {key: value for key, value in parameters.items()
                               if value is not None or key in given}
        study["overrides"] = overrides
    return tiny


def colour_and_band_rows(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[N, 3072] CIFAR rows: class c is a colour of its own with a bright band at rows 3c..3c+2, plus noise."""
    rng = np.random.default_rng(int(ids[0]) + 7)
    palette = np.array([[(c * 97 + k * 61) % 200 + 20 for k in range(3)] for c in range(10)], dtype=np.float64)
    images = palette[labels][:, :, None, None] + rng.normal(0, 12, size=(len(ids), 3, 32, 32))
    for row, label in enumerate(labels):
        images[row, :, 3 * label:3 * label + 3, :] = 250
    return images.clip(0, 255).astype(np.uint8).reshape(len(ids), 3072)


@pytest.fixture(scope="module")
def tiny_gpu_run(tmp_path_factory):
    """(the results folder, the tiny profile, the terminal's lines) of the tiny gpu profile, run once."""
    root = tmp_path_factory.mktemp("gpu-tiny")
    digests = write_cifar10(root / "data", CIFAR_CLASSES, per_class_per_batch=8, test_per_class=4,
                            rows=colour_and_band_rows)
    site = root / "kernel-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "# written by tests/test_gpu_profile.py: CIFAR-10's MD5s pinned to the test's small files\n"
        f"import lbw_utils.data.images\nlbw_utils.data.images.CIFAR10_MD5 = {json.dumps(digests)}\n")
    profile = tiny_gpu_profile(yaml.safe_load(profile_path("gpu").read_text()), root / "data")
    path = root / "gpu_tiny.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
        patch.delenv("LBW_RESULTS_DIR", raising=False)
        summary = reproduce(str(path), root / "results", log=lines.append, workers=1)
    return summary.parent, path, lines


def test_the_tiny_profile_has_the_gpu_profiles_studies_notebooks_and_overrides(tiny_gpu_run):
    _, path, _ = tiny_gpu_run
    gpu_content, gpu_steps = load_profile("gpu")
    tiny_content, tiny_steps = load_profile(path)
    assert [(s.study, s.notebook) for s in tiny_steps] == [(s.study, s.notebook) for s in gpu_steps]
    for study, spec in gpu_content["studies"].items():
        if spec["parameters"].get("classes") == "all":
            continue  # the one deviation (ALL_NAMES)
        tiny_overrides = tiny_content["studies"][study].get("overrides") or {}
        assert {nb: set(values) for nb, values in (spec.get("overrides") or {}).items()} == \
               {nb: set(values) for nb, values in tiny_overrides.items()}
    for step in tiny_steps:
        seeds = step.parameters.get("seeds", SEEDS)
        assert (seeds == SEEDS or len(seeds) == 2 and min(seeds) >= 100) and step.parameters.get("device", "cpu") == "cpu"


def test_every_notebook_of_the_gpu_profile_runs_and_ends_with_the_summary(tiny_gpu_run):
    folder, path, lines = tiny_gpu_run
    _, steps = load_profile(path)
    for step in steps:
        executed = nbformat.read(folder / "notebooks" / f"{step.name}.ipynb", as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{step.name} raised: {errors}"
    assert lines[-1].startswith("read first: ") and lines[-1].endswith("summary.md")
    summary = (folder / "summary.md").read_text()
    for study in load_profile("gpu")[0]["studies"]:
        assert f"{study}__" in summary, f"the summary lists no step of study {study}"
    for table in ("### cifar10: methods", "### fashion_mnist: methods", "### names5: methods",
                  "### names42: methods", "### fashion_mnist: length"):
        assert table in summary
    assert "06_paper_figures" in summary and (folder / "complete.json").exists()


def test_cifar10_runs_trained_on_the_test_files_for_each_seed_with_the_recorded_precision(tiny_gpu_run):
    folder, _, _ = tiny_gpu_run
    cifar = records.load_records(folder, "cifar10")
    trained = [r for r in cifar if r["history"] is not None]
    assert {r["seed"] for r in trained} == set(SEEDS)
    assert {"baseline", "static-mean-ratio-gamma8", "static-cdb-tau2"} <= {r["method_label"] for r in cifar}
    for record in trained:
        assert record["classes"] == CIFAR_CLASSES and record["device"] == "cpu"
        assert record["parameters"]["train"]["epochs"] == 2
        assert record["autocast"] == autocast_precision(torch.device("cpu"), True)
        assert min(record["val"]["tpr"]) >= 0.0 and 0.0 <= record["test"]["accuracy"] <= 1.0


def test_gpu_checks_run_count_matches_what_the_profile_trained(tiny_gpu_run):
    """benchmarks/gpu_check.py extrapolates from a count of the runs each study trains: that count must be
    what the notebooks really trained (a notebook that changes its method list changes it)."""
    import sys

    from lbw_utils.config import REPO_ROOT
    from lbw_utils.methods import METHODS
    from lbw_utils.studies.training_length import load_ladder

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import gpu_check

    folder, path, _ = tiny_gpu_run
    # notebook 05's second model family, notebook 08's tuning runs, notebook 09's runs: each in its own folder
    nested = [r for sub in ("ngram-bag", "tuning", "beyond") for r in records.load_records(Path(folder) / sub)]
    trained = [r for r in records.load_records(folder) + load_ladder(folder) + nested
               if METHODS[r["method"]["name"]].kind.trains_with_loop]
    planned = {study: gpu_check.planned_runs(steps) for study, steps in gpu_check.study_steps(str(path)).items()}
    assert sum(len(runs) for runs in planned.values()) * len(SEEDS) == len(trained)
    cifar = [r for r in trained if r["dataset"] == "cifar10"]
    assert len(planned["cifar10"]) * len(SEEDS) == len(cifar)
    assert sorted({r["method_label"] for r in cifar}) == sorted(r["label"] for r in planned["cifar10"])
