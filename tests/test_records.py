"""lbw_utils.records: run records are complete or absent, and corrupt ones say which file; a finished record
is reused only under the same fingerprint, of the same version."""

from __future__ import annotations

import json
import math
import os

import pytest

from lbw_utils.methods.kinds import FINGERPRINT_VERSION, NOT_IN_FINGERPRINT
from lbw_utils import records
from lbw_utils.runs.experiments import BASELINE, TRAIN_PARAMETERS, ModelOptions, run, run_fingerprint
from lbw_utils.records import (
    SCHEMA_VERSION,
    CorruptRecordError,
    environment,
    is_finished,
    load_records,
    read_record,
    record_path,
    write_record,
)
from lbw_utils.train import TrainConfig


def make_record(method_label: str = "baseline", seed: int = 0, dataset: str = "fashion_mnist") -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "method": {"name": method_label},
        "method_label": method_label,
        "seed": seed,
        "test": {"accuracy": 0.9, "tpr": [0.98, 0.71, math.nan]},
        "val": {"accuracy": 0.91, "tpr": [0.97, 0.72, 0.85]},
        "parameters": {"train": {"epochs": 2, "lr": 0.1}, "model": None},
    }


def files_in(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_round_trip(tmp_path):
    record = make_record()
    path = record_path(tmp_path, "fashion_mnist", "baseline", 3)
    assert path == tmp_path / "records" / "fashion_mnist" / "baseline__seed3.json"
    assert write_record(path, record) == path
    back = read_record(path)
    assert back["test"]["tpr"][:2] == [0.98, 0.71] and math.isnan(back["test"]["tpr"][2])
    back["test"]["tpr"][2] = record["test"]["tpr"][2] = None
    assert back == record
    assert is_finished(path)
    assert files_in(path.parent) == ["baseline__seed3.json"]  # no temporary file left behind


def test_overwrite_is_complete(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, make_record(seed=1))
    write_record(path, make_record(seed=2))
    assert read_record(path)["seed"] == 2
    assert files_in(tmp_path) == ["r.json"]


def test_incomplete_record_is_not_written(tmp_path):
    record = make_record()
    del record["val"]
    path = tmp_path / "r.json"
    with pytest.raises(ValueError, match="val"):
        write_record(path, record)
    assert not path.exists()


def test_failure_mid_write_leaves_no_target_and_no_temporary_file(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    path = tmp_path / "records" / "d" / "m__seed0.json"
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_record(path, make_record())
    assert not path.exists()
    assert files_in(path.parent) == []
    assert not is_finished(path)


def test_failure_mid_rewrite_keeps_the_old_record(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_record(path, make_record(seed=1))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_record(path, make_record(seed=2))
    assert read_record(path)["seed"] == 1
    assert files_in(tmp_path) == ["r.json"]


@pytest.mark.parametrize("content, words", [
    ('{"schema_version": 1, "dataset": "x", "method', ["corrupt"]),
    ("", ["corrupt"]),
    ("[1, 2, 3]", ["list", "not a JSON object"]),
    ('"a string"', ["str"]),
    (json.dumps({key: 0 for key in records.RECORD_KEYS if key not in ("test", "seed")}), ["'seed'", "'test'"]),
    (json.dumps({**make_record(), "schema_version": SCHEMA_VERSION + 1}), ["schema version", str(SCHEMA_VERSION + 1)]),
])
def test_corrupt_records_raise_naming_the_file(tmp_path, content, words):
    path = tmp_path / "records" / "d" / "broken__seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(CorruptRecordError) as caught:
        read_record(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)
    assert is_finished(path) is False
    assert isinstance(caught.value, ValueError)


def test_binary_garbage_is_corrupt(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CorruptRecordError, match="r.json"):
        read_record(path)
    assert not is_finished(path)


def test_missing_record_is_not_finished_and_not_corrupt(tmp_path):
    path = tmp_path / "nope.json"
    assert is_finished(path) is False
    with pytest.raises(FileNotFoundError):
        read_record(path)


def test_load_records_sorted_filtered_and_strict(tmp_path):
    for dataset, label, seed in [("cifar10", "baseline", 1), ("fashion_mnist", "static", 0),
                                 ("fashion_mnist", "baseline", 0), ("fashion_mnist", "baseline", 1)]:
        write_record(record_path(tmp_path, dataset, label, seed), make_record(label, seed, dataset))
    every = load_records(tmp_path)
    assert [(r["dataset"], r["method_label"], r["seed"]) for r in every] == [
        ("cifar10", "baseline", 1), ("fashion_mnist", "baseline", 0), ("fashion_mnist", "baseline", 1),
        ("fashion_mnist", "static", 0)]
    assert {r["dataset"] for r in load_records(tmp_path, "cifar10")} == {"cifar10"}
    assert len(load_records(tmp_path, "fashion_mnist")) == 3
    assert load_records(tmp_path / "elsewhere") == []

    corrupt = record_path(tmp_path, "fashion_mnist", "ema", 0)
    corrupt.write_text("{not json")
    with pytest.raises(CorruptRecordError) as caught:
        load_records(tmp_path)
    assert str(corrupt) in str(caught.value)
    assert len(load_records(tmp_path, "cifar10")) == 1  # another dataset's corrupt file does not matter


def test_environment_describes_the_software():
    info = environment()
    for key in ("python", "torch", "torchvision", "numpy", "platform", "cpu_count", "git_revision"):
        assert key in info
    import numpy
    import torch

    assert info["torch"] == torch.__version__ and info["numpy"] == numpy.__version__
    assert info["git_revision"] is None or len(info["git_revision"].split("-")[0]) == 40
    json.dumps(info)  # it goes into a JSON record


def test_git_revision_outside_git_is_none(monkeypatch, tmp_path):
    monkeypatch.setattr(records, "REPO_ROOT", tmp_path)
    assert records.git_revision() is None


# --- reuse: the same fingerprint, of the same version ----------------------------------------------------------

QUICK = {"train": TrainConfig(epochs=1, batch_size=32), "model": ModelOptions(size="tiny"), "progress": False}


@pytest.mark.parametrize("stored_version, said", [(FINGERPRINT_VERSION - 1, FINGERPRINT_VERSION - 1), (None, 1)])
def test_a_record_of_another_fingerprint_version_is_refused_and_redo_replaces_it(tiny_data, tmp_path, stored_version,
                                                                                  said):
    data = tiny_data(seed=0)
    first = run(BASELINE, data, 0, tmp_path, **QUICK)
    assert first["fingerprint"]["version"] == FINGERPRINT_VERSION
    assert run(BASELINE, data, 0, tmp_path, **QUICK) == first  # the same version and settings: read back
    path = record_path(tmp_path, data.name, "baseline", 0)
    older = json.loads(path.read_text())
    if stored_version is None:  # the first fingerprints had no version
        del older["fingerprint"]["version"]
    else:
        older["fingerprint"]["version"] = stored_version
    path.write_text(json.dumps(older))
    with pytest.raises(ValueError, match=rf"fingerprint version {said}, and this code's is {FINGERPRINT_VERSION} "
                                         r"\(what determines a run has changed since\); rerun with redo=True"):
        run(BASELINE, data, 0, tmp_path, **QUICK)
    redone = run(BASELINE, data, 0, tmp_path, redo=True, **QUICK)
    assert redone["fingerprint"]["version"] == FINGERPRINT_VERSION and read_record(path) == redone


def test_the_fingerprint_names_every_option_that_shapes_a_run(tiny_data):
    data = tiny_data(seed=0)
    trained = run_fingerprint(BASELINE, data, TrainConfig(), ModelOptions())
    assert set(trained["train"]) == set(TRAIN_PARAMETERS) - set(NOT_IN_FINGERPRINT) | {"float16_autocast"}
    assert trained["train"]["average_weights"] == 0.0 and trained["train"]["compile"] is False
    adjusted = run_fingerprint({"name": "posthoc", "objective": "worst"}, data, TrainConfig(), ModelOptions())
    assert adjusted["version"] == trained["version"] == FINGERPRINT_VERSION and "train" not in adjusted
