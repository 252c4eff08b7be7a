"""k-fold cross-fitting of the names task (lbw_utils.data.names, folds=k) and the pooled per-class TPR
(lbw_utils.studies.pooled): every name a test name exactly once, refusals of bad folds, the Wilson interval."""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter

import pytest

from lbw_utils.runs.experiments import DataOptions, Settings, run_study
from lbw_utils.data.names import NAMES_FILE, load_names
from lbw_utils.studies.pooled import pooled_summary, pooled_tpr, wilson_interval
from lbw_utils.train import TrainConfig

NATIONALITIES = ("alpha", "beta", "gamma")


@pytest.fixture()
def tiny_dir(tmp_path):
    names = {n: [f"{n[0] * (1 + i % 7)} {'abcdefghij'[i // 10]}{'abcdefghij'[i % 10]}" for i in range(30)]
             for n in NATIONALITIES}
    path = tmp_path / "data" / "names" / NAMES_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(names))
    return tmp_path / "data", hashlib.sha256(path.read_bytes()).hexdigest()


def load(tiny_dir, **kwargs):
    data_dir, checksum = tiny_dir
    kwargs.setdefault("tuning_share", None)  # the folds of all names here; tests/test_tuning_share.py: with a share
    return load_names("all", data_dir=data_dir, expected_sha256=checksum, device="cpu", **kwargs)


def test_test_folds_partition_every_class_and_each_fold_splits_the_rest(tiny_dir):
    tested = Counter()
    for fold in range(5):
        data = load(tiny_dir, folds=5, seed=fold)
        splits = {split: data.texts(split) for split in ("train", "val", "test")}
        assert not set(splits["test"]) & set(splits["train"]) and not set(splits["test"]) & set(splits["val"])
        assert not set(splits["val"]) & set(splits["train"])
        assert sum(map(len, splits.values())) == 90
        # stratified: 6 test names and 3 validation names (10 %) of every class
        assert Counter(data.labels("test").tolist()) == {0: 6, 1: 6, 2: 6}
        assert Counter(data.labels("val").tolist()) == {0: 3, 1: 3, 2: 3}
        assert data.describe()["folds"] == 5 and data.describe()["fold"] == fold
        tested.update(splits["test"])
    assert len(tested) == 90 and set(tested.values()) == {1}  # every name a test name exactly once


def test_the_partition_depends_on_the_partition_seed_only(tiny_dir):
    first = load(tiny_dir, folds=3, seed=1).texts("test")
    assert sorted(load(tiny_dir, folds=3, seed=1).texts("test")) == sorted(first)
    assert sorted(load(tiny_dir, folds=3, seed=1, partition_seed=7).texts("test")) != sorted(first)


@pytest.mark.parametrize("kwargs, message", [
    ({"folds": 1, "seed": 0}, r"folds=1 is not allowed: use an integer of at least 2"),
    ({"folds": 31, "seed": 0}, r"folds=31 is more than 'alpha' has names \(30\); allowed: 2\.\.30"),
    ({"folds": 5, "seed": 5}, r"fold index\(es\) \[5\] out of range: with folds=5 the seeds are fold indices 0\.\.4"),
    ({"folds": 5, "seed": 0, "per_class": 4}, r"folds=5 is more than 'alpha' has names \(4\)"),
])
def test_bad_folds_are_refused_by_value(tiny_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load(tiny_dir, **kwargs)


def test_a_study_with_a_fold_out_of_range_writes_nothing(tiny_dir, tmp_path):
    data_dir, _ = tiny_dir
    results = tmp_path / "results"
    with pytest.raises(ValueError, match=r"\[3\] out of range: with folds=3"):
        Settings.from_params({"dataset": "names", "folds": 3, "seeds": [0, 3], "results_dir": str(results)})
    with pytest.raises(ValueError, match=r"folds=0 is not allowed"):
        DataOptions("names", folds=0)
    with pytest.raises(ValueError, match=r"\[3\] out of range"):
        run_study([{"name": "baseline"}], [0, 3], DataOptions("names", data_dir=str(data_dir), folds=3, device="cpu"),
                  results, train=TrainConfig(epochs=1))
    assert not results.exists()


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0 and wilson_interval(10, 10)[1] == pytest.approx(1)


def record(label, fold, confusion, folds=2):
    return {"method_label": label, "seed": fold, "classes": ["a", "b"], "test": {"confusion_matrix": confusion},
            "parameters": {"data": {"folds": folds, "fold": fold}}}


def test_pooled_tpr_adds_the_folds_confusions_and_refuses_random_splits():
    records = [record("baseline", 0, [[3, 1], [0, 4]]), record("baseline", 1, [[2, 2], [1, 3]])]
    table = pooled_tpr(records, ["baseline"]).set_index("class")
    assert table.loc["a", "test names"] == 8 and table.loc["a", "correct"] == 5
    assert table.loc["b", "pooled TPR"] == pytest.approx(7 / 8) and table.loc["a", "folds"] == "2 of 2"
    summary = pooled_summary(pooled_tpr(records, ["baseline"]))
    assert summary.loc[0, "worst class"] == "a" and summary.loc[0, "pooled accuracy"] == pytest.approx(12 / 16)
    random = [{**records[0], "parameters": {"data": {}}}]
    with pytest.raises(ValueError, match="not fold-based"):
        pooled_tpr(random, ["baseline"])
    with pytest.raises(ValueError, match="repeat a fold"):
        pooled_tpr([records[0], records[0]], ["baseline"])


def test_fold_wording_says_folds_where_compare_says_seeds():
    from lbw_utils.reporting.sentences import fold_wording

    text = "ema (5 seeds): +1.0 points against the same seed's baseline (the baseline's seed-to-seed std)"
    assert fold_wording(text) == ("ema (5 folds): +1.0 points against the same fold's baseline (the baseline's "
                                  "fold-to-fold std)")
