"""The names task's tuning share (lbw_utils.data.names, ``tuning_share``): a fixed, stratified share of each
class's names set aside for tuning; evaluated splits (k-fold or random) never hold one of its names, the folds
partition exactly the rest, the share is the same whatever the fold and the partition, a tuning run validates on
it, bad shares are refused by value, and the data description (so the run fingerprint) carries the share."""

from __future__ import annotations

import hashlib
import math
import pickle
from collections import Counter

import pytest

from lbw_utils.data import dataset_registration
from lbw_utils.data.names import NAMES_FILE, load_names
from lbw_utils.data.names import files as names_files
from lbw_utils.data.names.dataset import TUNING_SHARE
from lbw_utils.runs.experiments import DataOptions, ModelOptions, run_fingerprint, run_study
from lbw_utils.train import TrainConfig

NATIONALITIES = ("alpha", "beta", "gamma")
PER_CLASS = 40
SPLITS = ("train", "val", "test")


def tiny_names() -> dict[str, list[str]]:
    """3 nationalities x 40 names, distinct within and across classes."""
    return {n: [f"{n[0] * (1 + i % 7)} {'abcdefghij'[i // 10]}{'abcdefghij'[i % 10]}" for i in range(PER_CLASS)]
            for n in NATIONALITIES}


def write(tmp_path, names):
    path = tmp_path / "data" / "names" / NAMES_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(names))
    return tmp_path / "data", hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def tiny_dir(tmp_path):
    return write(tmp_path, tiny_names())


def load(tiny_dir, **kwargs):
    data_dir, checksum = tiny_dir
    return load_names("all", data_dir=data_dir, expected_sha256=checksum, device="cpu", **kwargs)


def tuning_names(tiny_dir, **kwargs) -> set[str]:
    return set(load(tiny_dir, tuning=True, **kwargs).texts("val"))


def every_name() -> set[str]:
    return {name for names in tiny_names().values() for name in names}


@pytest.mark.parametrize("share", [0.1, 0.25])
def test_the_folds_partition_exactly_the_non_tuning_names_and_no_split_holds_a_tuning_name(tiny_dir, share):
    tuning = tuning_names(tiny_dir, tuning_share=share)
    rest = every_name() - tuning
    for partition_seed in (0, 1):
        tested = Counter()
        for fold in range(5):
            data = load(tiny_dir, folds=5, seed=fold, partition_seed=partition_seed, tuning_share=share)
            splits = {split: data.texts(split) for split in SPLITS}
            for split in SPLITS:
                assert not set(splits[split]) & tuning, f"a tuning name in fold {fold}'s {split} split"
            assert Counter(name for split in SPLITS for name in splits[split]) == Counter(rest)  # each once
            tested.update(splits["test"])
        assert set(tested) == rest and set(tested.values()) == {1}  # every non-tuning name tested exactly once


def test_the_share_is_fixed_stratified_and_the_same_for_every_fold_partition_and_seed(tiny_dir):
    share = load(tiny_dir, tuning=True).texts("val")
    expected = math.floor(PER_CLASS * TUNING_SHARE + 0.5)
    assert Counter(name[0] for name in share) == {n[0]: expected for n in NATIONALITIES}  # stratified: 4 a class
    for kwargs in ({"seed": 3}, {"seed": 1, "per_class": 10}):
        assert set(load(tiny_dir, tuning=True, **kwargs).texts("val")) == set(share)
    for folds, fold, partition_seed in ((5, 0, 0), (5, 4, 0), (5, 2, 7), (3, 1, 1)):
        data = load(tiny_dir, folds=folds, seed=fold, partition_seed=partition_seed)
        outside = every_name() - {name for split in SPLITS for name in data.texts(split)}
        assert outside == set(share)  # what the evaluated run never sees is exactly the share
    random = load(tiny_dir, seed=5)  # random splits (folds=None) cut the rest too
    assert every_name() - {name for split in SPLITS for name in random.texts(split)} == set(share)
    assert tuning_names(tiny_dir, tuning_share=0.1) < tuning_names(tiny_dir, tuning_share=0.3)  # nested


def test_a_class_s_share_does_not_depend_on_the_other_classes(tiny_dir):
    data_dir, checksum = tiny_dir
    pair = load_names(["alpha", "beta"], data_dir=data_dir, expected_sha256=checksum, device="cpu",
                      tuning=True).texts("val")
    assert {name for name in pair if name.startswith("a")} == {
        name for name in tuning_names(tiny_dir) if name.startswith("a")}


def test_a_tuning_run_trains_on_the_rest_validates_on_the_share_and_has_no_test_names(tiny_dir):
    data = load(tiny_dir, tuning=True, seed=2)
    share = set(data.texts("val"))
    assert data.size("test") == 0 and set(data.texts("train")) == every_name() - share
    assert Counter(data.labels("train").tolist()) == {c: PER_CLASS - 4 for c in range(3)}
    small = load(tiny_dir, tuning=True, seed=2, per_class=20)
    assert Counter(small.labels("train").tolist()) == {c: 20 for c in range(3)}
    assert not set(small.texts("train")) & share
    assert set(small.texts("train")) != set(load(tiny_dir, tuning=True, seed=3, per_class=20).texts("train"))
    assert data.describe()["tuning"] is True and data.describe()["tuning_share"] == TUNING_SHARE


def test_every_copy_of_a_name_repeated_within_a_class_goes_the_same_way(tmp_path):
    names = tiny_names()
    names["alpha"] = names["alpha"] + names["alpha"][:10]  # ten names twice
    tiny_dir = write(tmp_path, names)
    share = tuning_names(tiny_dir, tuning_share=0.3)
    for fold in range(4):
        data = load(tiny_dir, folds=4, seed=fold, tuning_share=0.3)
        assert not {name for split in SPLITS for name in data.texts(split)} & share


@pytest.mark.parametrize("share", [0, 0.0, -0.1, 0.51, 1, 2.5, float("nan"), True, "0.1"])
def test_a_share_outside_the_allowed_range_is_refused_by_value(tiny_dir, share):
    with pytest.raises(ValueError) as caught:
        load(tiny_dir, folds=5, seed=0, tuning_share=share)
    assert f"tuning_share={share!r} is not allowed" in str(caught.value) and "(0, 0.5]" in str(caught.value)


@pytest.mark.parametrize("kwargs, words", [
    # 40 names, half of them set aside: 20 left, too few for 21 folds
    ({"tuning_share": 0.5, "folds": 21, "seed": 0},
     ["folds=21 is more than 'alpha' has names (20)", "tuning_share=0.5 sets 20 of 40 aside"]),
    ({"tuning_share": 0.01, "folds": 5, "seed": 0}, ["tuning_share=0.01 sets no name of 'alpha'", "0.5]"]),
    ({"tuning_share": 0.5, "per_class": 30}, ["per_class=30, but 'alpha' has only 20 names", "tuning_share=0.5"]),
    ({"tuning": True, "folds": 5, "seed": 0}, ["tuning=True", "folds=5", "folds=None"]),
    ({"tuning": True, "tuning_share": None}, ["tuning=True with tuning_share=None", "(0, 0.5]"]),
])
def test_a_share_that_leaves_a_split_without_a_name_is_refused(tiny_dir, kwargs, words):
    with pytest.raises(ValueError) as caught:
        load(tiny_dir, **kwargs)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_a_study_with_a_bad_share_writes_nothing(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(names_files, "NAMES_SHA256", tiny_dir[1])  # a study reads the published checksum
    results = tmp_path / "results"
    for share in (0.7, 0.5):  # out of range; in range, but 20 names cannot fill 21 folds
        options = DataOptions("names", data_dir=str(tiny_dir[0]), classes="all", folds=21, tuning_share=share,
                              device="cpu")
        with pytest.raises(ValueError, match=f"tuning_share={share}"):
            run_study([{"name": "baseline"}], [0], options, results, train=TrainConfig(epochs=1))
    assert not results.exists()


def test_the_share_is_a_names_option_in_the_description_and_the_fingerprint(tiny_dir):
    assert dataset_registration("names").defaults()["tuning_share"] == TUNING_SHARE == 0.1
    assert DataOptions("names").tuning_share == TUNING_SHARE
    with pytest.raises(ValueError, match="tuning_share=0.1 does not apply to dataset='fashion_mnist'"):
        DataOptions("fashion_mnist", tuning_share=0.1)
    first, second = (load(tiny_dir, folds=5, seed=0, tuning_share=share) for share in (0.1, 0.2))
    assert first.describe()["tuning_share"] == 0.1 and second.describe()["tuning_share"] == 0.2
    fingerprints = [run_fingerprint({"name": "baseline"}, data, TrainConfig(epochs=1), ModelOptions("name_rnn"))
                    for data in (first, second)]
    assert fingerprints[0]["data"]["tuning_share"] == 0.1 and fingerprints[0] != fingerprints[1]
    # without a share (records made before it existed) the description has no such key
    assert "tuning_share" not in load(tiny_dir, folds=5, seed=0, tuning_share=None).describe()
