"""docs/extending.md's worked examples run as written: a new dataset and a new method, trained in a tiny study;
a new dataset is one file and its row in docs/package.md, a new method one file: written alone into a copy of
the package, each is found and trains.

The page's Python blocks are run in order as one script, in a fresh process, in a folder that holds a copy of
the package (the registrations they make stay out of this process, and the method file they add stays out of
the repository); a block whose first line is ``# file: PATH`` is saved at that path of the folder instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "extending.md"
TESTS = Path(__file__).resolve().parent
FILE_MARKER = re.compile(r"#\s*file:\s*(\S+)")
METHOD_FILE = "lbw_utils/methods/recall_gap.py"
DATASET_FILE = "lbw_utils/data/brightness.py"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def file_blocks() -> dict[str, str]:
    """The page's ``# file: PATH`` blocks by path."""
    return {marker.group(1): block for block in python_blocks(DOC.read_text(encoding="utf-8"))
            if (marker := FILE_MARKER.match(block))}


def copy_of_the_package(folder: Path) -> Path:
    """``folder/lbw_utils``: the package as it is in this tree, without compiled files."""
    return Path(shutil.copytree(ROOT / "lbw_utils", folder / "lbw_utils",
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc")))


def contents(package: Path) -> dict[str, str]:
    """Every file of a package folder (compiled files aside) and the hash of its bytes, by relative path."""
    return {path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(package.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


def run_python(script: str, folder: Path) -> subprocess.CompletedProcess:
    """``script`` in a fresh process in ``folder``, which is the only entry of its PYTHONPATH (its copy of the
    package is imported, not this tree's or an installed one)."""
    (folder / "example.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(folder)}
    env.pop("LBW_EVENTS", None)
    return subprocess.run([sys.executable, "example.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_page_has_its_worked_examples():
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    # the new dataset is one file, in the data package; the new method one file, in the methods package
    assert list(file_blocks()) == [DATASET_FILE, METHOD_FILE]
    text = DOC.read_text(encoding="utf-8")
    assert "## Add a dataset" in text and "## Add a method" in text


def test_the_worked_examples_train_and_write_their_records(tmp_path):
    copy_of_the_package(tmp_path)
    script = []
    for block in python_blocks(DOC.read_text(encoding="utf-8")):
        marker = FILE_MARKER.match(block)
        if marker:
            (tmp_path / marker.group(1)).write_text(block, encoding="utf-8")
        else:
            script.append(block)
    done = run_python("\n\n".join(script), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recall-gap-beta2.0+posthoc-worst" in done.stdout
    folder = tmp_path / "results" / "extending" / "records" / "brightness"
    written = sorted(path.name for path in folder.glob("*.json"))
    assert written == ["baseline__seed0.json", "recall-gap-beta2.0+posthoc-worst__seed0.json",
                       "recall-gap-beta2.0__seed0.json"]
    record = json.loads((folder / "recall-gap-beta2.0__seed0.json").read_text())
    assert record["method"] == {"name": "recall-gap", "beta": 2.0} and record["dataset"] == "brightness"
    assert record["classes"] == ["dark", "mid", "bright"] and record["history"]["train_loss"]
    assert (tmp_path / "results" / "extending" / "artifacts" / "brightness" / "recall-gap-beta2.0__seed0.pt").exists()


# Run in the copy: the new method is collected from its file alone, checked, and trained by run_study on the tests'
# tiny synthetic images (conftest.build_image_data), beside the baseline it reads.
NEW_METHOD_STUDY = """
import sys

sys.path.append({tests!r})  # after the copy: conftest's ``lbw_utils`` imports resolve to the copy
import torch

torch.set_num_threads(1)
import lbw_utils
from conftest import build_image_data
from lbw_utils.data.images import register_image_dataset
from lbw_utils.methods import METHODS, check_method, method_label
from lbw_utils.runs.experiments import DataOptions, ModelOptions, run_study
from lbw_utils.train import TrainConfig

assert lbw_utils.__file__.startswith({copy!r}), lbw_utils.__file__
spec = METHODS["recall-gap"]
assert spec.build.__module__ == "lbw_utils.methods.recall_gap" and spec.kind.name == "train"
check_method({{"name": "recall-gap", "beta": 0.5}})
try:
    check_method({{"name": "recall-gap", "gamma": 1}})
    raise AssertionError("an unknown key was accepted")
except ValueError as error:
    assert "allowed keys are ('beta',)" in str(error), error


def read_tiny(root, download):
    data = build_image_data(per_class={{"train": 40, "test": 20}}, image_noise=25.0)  # "train": the pool to split
    return data.images["train"], data.targets["train"], data.images["test"], data.targets["test"], data.classes, {{}}


register_image_dataset("tiny", read_tiny)
methods = [{{"name": "baseline"}}, {{"name": "recall-gap", "beta": 2.0}}]
study = run_study(methods, seeds=[0], data_options=DataOptions("tiny", val_size=0.25, device="cpu"),
                  results_dir="results", train=TrainConfig(epochs=1, batch_size=20), model=ModelOptions(size="tiny"),
                  progress=False)
print([record["method_label"] for record in study], study[1]["weights"]["weights"])
assert [record["method_label"] for record in study] == [method_label(m) for m in methods]
assert len(study[1]["weights"]["weights"]) == 3 and study[1]["history"]["train_loss"]
"""


def test_a_new_method_is_one_file_in_the_methods_package(tmp_path):
    package = copy_of_the_package(tmp_path)
    before = contents(package)
    (package / "methods" / "recall_gap.py").write_text(file_blocks()[METHOD_FILE], encoding="utf-8")
    with_the_method = contents(package)
    done = run_python(NEW_METHOD_STUDY.format(tests=str(TESTS), copy=str(package)), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'recall-gap-beta2.0'" in done.stdout
    # the copy differs from the package by the one new file, before the study and after it
    assert with_the_method == {**before, "methods/recall_gap.py": with_the_method["methods/recall_gap.py"]}
    assert contents(package) == with_the_method
    assert sorted(path.name for path in (tmp_path / "results" / "records" / "tiny").glob("*.json")) == [
        "baseline__seed0.json", "recall-gap-beta2.0__seed0.json"]


def dataset_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Add a dataset"):text.index("## Add a method")]


# Run in the copy holding only the new dataset's file: no import names it, the first lookup finds it; a study
# trains on it with the CNN, its registration's network, and an option it does not take is refused.
NEW_DATASET_STUDY = """
import torch

torch.set_num_threads(1)
import lbw_utils
from lbw_utils.runs.experiments import BASELINE, DataOptions, Settings

assert lbw_utils.__file__.startswith({copy!r}), lbw_utils.__file__
settings = Settings.from_params({{"dataset": "brightness", "seeds": [0], "val_size": 0.25, "device": "cpu",
                                  "epochs": 1, "batch_size": 32, "model_size": "tiny", "results_dir": "results"}})
assert settings.model.name == "cnn"
(record,) = settings.run_study([BASELINE], progress=False)
assert record["classes"] == ["dark", "mid", "bright"] and record["parameters"]["data"]["sizes"]["test"] == 120
try:
    DataOptions("brightness", folds=5)
    raise AssertionError("folds were accepted by an image dataset")
except ValueError as error:
    assert "folds=5 does not apply to dataset='brightness'" in str(error) and "per_class" in str(error), error
print("trained", record["method_label"], "on", record["dataset"])
"""


def test_a_new_dataset_is_one_file_in_the_data_package_and_its_row(tmp_path):
    package = copy_of_the_package(tmp_path)
    before = contents(package)
    (package / "data" / "brightness.py").write_text(file_blocks()[DATASET_FILE], encoding="utf-8")
    with_the_dataset = contents(package)
    done = run_python(NEW_DATASET_STUDY.format(copy=str(package)), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained baseline on brightness" in done.stdout
    # the copy differs from the package by the one new file, before the study and after it
    assert with_the_dataset == {**before, "data/brightness.py": with_the_dataset["data/brightness.py"]}
    assert contents(package) == with_the_dataset
    # the one other file: the page gives the row docs/package.md needs for the new module (test_readme's naming)
    rows = re.findall(r"^\| `([^`]+)` \|", dataset_section(), flags=re.MULTILINE)
    assert rows == [Path(DATASET_FILE).relative_to("lbw_utils").with_suffix("").as_posix()] == ["data/brightness"]
