"""Reliability: bad input gets a clear error naming the problem and what is allowed, and leaves nothing
half-written; tampered or missing data is refused; a corrupt results folder is named; the same seed and
parameters give identical records; a record holds what is needed to rerun it.

Killing a study mid-run is tested with a real subprocess in ``test_interruption.py``; profiles in
``test_profiles.py``. Bad input that other test files already cover (each asserts the message):

- training options (epochs / batch size <= 0, non-integer, unknown optimizer or schedule, unknown option
  names): ``test_train.py::test_train_config_rejects_bad_values_naming_the_key``, ``::test_train_config_from_dict``
- unknown notebook parameter: ``test_notebook_guard.py``, and through papermill ``test_notebooks.py``
- static weights (unknown scheme; TPR vector of the wrong length, with NaN / inf, 0, outside [0, 1];
  weights that overflow): ``test_losses.py::test_static_weights_reject_bad_input_with_a_clear_message``;
  unknown loss method / key: ``::test_make_loss_rejects_bad_methods``; EMA with absent classes and a
  single-class batch: ``::test_ema_absent_classes_keep_their_importance``, ``::test_ema_single_class_batch_*``
- validation size larger than the training pool, per-class subset larger than a class, unknown dataset,
  missing / tampered CIFAR-10 files, a CIFAR-10 pickle referring to code: ``test_data.py``
- names: unknown nationality, per_class too large, download with a wrong checksum (nothing written), no
  network (names the file, the folder and the source), a pickle of anything but dicts / lists / strings
  (refused without running it): ``test_names.py``
- corrupt, half-written, non-object, incomplete and future-schema run records: ``test_records.py``; a
  corrupt record in a study is rerun: ``test_train.py::test_corrupt_record_is_rerun``; a finished record
  made with other settings is refused: ``test_train.py::test_finished_record_with_other_settings_*``
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import random
import re
import urllib.error
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch

from lbw_utils.data import images as data_module
from lbw_utils.runs import experiments
from lbw_utils import records
from lbw_utils.data.images import FASHION_MNIST_SHA256, DataNotFoundError, load_image_dataset
from lbw_utils.runs.experiments import (
    BASELINE,
    METHOD_NAMES,
    DataOptions,
    ModelOptions,
    Settings,
    method_label,
    run,
    run_fingerprint,
    run_study,
)
from lbw_utils.files import DataIntegrityError
from lbw_utils.methods import CDBLoss, make_loss
from lbw_utils.models import CNN_SIZES, MODELS
from lbw_utils.data.names import NAMES_FILE, NamesFileContentError, load_names
from lbw_utils.data.names import files as names_files
from lbw_utils.runner.profiles import NOTEBOOK_DIR
from lbw_utils.runner.execution import KERNEL
from lbw_utils.speed import bf16_pays
from lbw_utils.train import TrainConfig

CONFIG = TrainConfig(epochs=2, batch_size=16, lr=0.05, eval_batch_size=64)
TINY = ModelOptions(name="cnn", size="tiny")


@pytest.fixture
def data(tiny_data):
    return tiny_data(image_noise=25.0, seed=0)


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


def same(first, second) -> bool:
    """Exactly equal, NaN included (a never-predicted class has NaN precision, and NaN != NaN)."""
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


# --- methods, models, devices, seeds: refused before anything is loaded, trained or written ------------


@pytest.mark.parametrize("method, words", [
    ({"name": "mixup"}, ["'mixup' is unknown", str(METHOD_NAMES)]),
    ("baseline", ["method='baseline'", "a dict", str(METHOD_NAMES)]),
    ({"gamma": 2}, ["'name'", str(METHOD_NAMES)]),
    ({"name": "ema", "beta": 0.1}, ["unknown key(s) ['beta']", "('alpha', 'normalize')"]),
    ({"name": "ema", "alpha": 5}, ["alpha=5", "(0, 1]"]),
    ({"name": "static", "scheme": "sqrt"}, ["scheme='sqrt'", "('mean-ratio', 'inverse', 'cdb', 'fnr')"]),
    ({"name": "static", "gamma": -1}, ["gamma=-1", ">= 0"]),
    ({"name": "focal", "gamma": float("nan")}, ["gamma=nan", "finite"]),
    ({"name": "cdb", "tau": "auto"}, ["tau='auto'", "'dynamic'"]),
    ({"name": "dro", "eta": -0.1}, ["eta=-0.1", ">= 0"]),
    ({"name": "posthoc", "objective": "best"}, ["objective='best'", "('worst', 'budget', 'equalize')"]),
    ({"name": "posthoc", "objectiv": "worst"}, ["unknown key(s) ['objectiv']", "'objective'"]),
    ({"name": "posthoc", "objective": "budget", "max_accuracy_drop": 2}, ["max_accuracy_drop=2", "[0, 1]"]),
    ({"name": "posthoc", "of": {"name": "static", "scheme": "sqrt"}}, ["scheme='sqrt'"]),
    ({"name": "posthoc", "of": {"name": "posthoc"}}, ["another posthoc"]),
])
def test_a_bad_method_is_refused_before_anything_runs(data, tmp_path, method, words):
    # Checked first, so a static or post-hoc method with a typo is not reported as "run the baseline first".
    with pytest.raises(ValueError) as caught:
        run(method, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert files_under(tmp_path) == []


def test_a_bad_last_method_stops_the_study_before_the_first_one_trains(tmp_path, monkeypatch):
    def must_not_load(*args, **kwargs):
        raise AssertionError("data were loaded although a method is invalid")

    monkeypatch.setattr(experiments, "load_data", must_not_load)
    methods = [BASELINE, {"name": "ema", "alpha": 0.01}, {"name": "static", "scheme": "peifr"}]
    with pytest.raises(ValueError, match="scheme='peifr'"):
        run_study(methods, [0, 1], DataOptions("fashion_mnist"), tmp_path, train=CONFIG, model=TINY, progress=False)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("seeds, words", [
    ([], ["seeds=[]", "non-empty list of non-negative integers"]),
    ([0, -1], ["seeds=[0, -1]", "non-negative integers"]),
    ([0, 1.5], ["seeds=[0, 1.5]"]),
    ([0, True], ["seeds=[0, True]"]),
    ([1, 1], ["repeats a seed"]),
    ("0,1", ["seeds='0,1'"]),
    (3, ["seeds=3", "list"]),
])
def test_bad_seeds_are_refused(tmp_path, seeds, words):
    for call in (lambda: run_study([BASELINE], seeds, DataOptions("fashion_mnist"), tmp_path, train=CONFIG),
                 lambda: Settings.from_params({"dataset": "fashion_mnist", "seeds": seeds})):
        with pytest.raises(ValueError) as caught:
            call()
        for word in words:
            assert word in str(caught.value), str(caught.value)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("params, words", [
    # What a notebook user sees: each notebook turns its parameters into Settings before it does anything.
    ({"dataset": "mnist"}, ["dataset='mnist'", "('fashion_mnist', 'cifar10', 'names')"]),
    ({"model": "resnet"}, ["model='resnet'", str(MODELS)]),
    ({"model_size": "huge"}, ["model_size='huge'", str(tuple(CNN_SIZES))]),
    ({"device": "tpu"}, ["device='tpu'", "'cpu'", "'cuda'"]),
    ({"epochs": 0}, ["epochs=0", "positive integer"]),
    ({"epochs": -3}, ["epochs=-3", "positive integer"]),
    ({"batch_size": 0}, ["batch_size=0", "positive integer"]),
    ({"batch_size": -16}, ["batch_size=-16", "positive integer"]),
    ({"optimizer": "adam"}, ["optimizer='adam'", "('sgd', 'adamw')"]),
    ({"lr": -1}, ["lr=-1", "positive"]),
    ({"label_smoothing": 1.0}, ["label_smoothing=1.0", "[0, 1)"]),
])
def test_bad_notebook_settings_name_the_parameter_and_the_allowed_values(params, words):
    with pytest.raises(ValueError) as caught:
        Settings.from_params({"dataset": "fashion_mnist", "seeds": [0], **params})
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_the_names_model_takes_any_size_and_valid_settings_pass(tmp_path):
    settings = Settings.from_params({"dataset": "names", "model": "name_rnn", "seeds": [0, 2],
                                     "results_dir": str(tmp_path)})
    assert settings.model.name == "name_rnn" and settings.seeds == [0, 2]
    assert files_under(tmp_path) == []  # building settings writes nothing


def test_a_zero_validation_tpr_stops_a_static_run_and_writes_nothing(data, tmp_path):
    run(BASELINE, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    path = records.record_path(tmp_path, data.name, "baseline", 0)
    baseline = records.read_record(path)
    baseline["val"]["tpr"] = [0.9, 0.0, 0.8]  # a baseline that never recalled class 1
    records.write_record(path, baseline)
    before = files_under(tmp_path)
    with pytest.raises(ValueError) as caught:
        run({"name": "static", "scheme": "mean-ratio", "gamma": 2}, data, 0, tmp_path, train=CONFIG, model=TINY,
            progress=False)
    assert "class index 1 has TPR 0" in str(caught.value) and "scheme='cdb' or 'fnr'" in str(caught.value)
    assert files_under(tmp_path) == before
    # The scheme the message suggests works with the same baseline.
    record = run({"name": "static", "scheme": "cdb", "tau": 1}, data, 0, tmp_path, train=CONFIG, model=TINY,
                 progress=False)
    assert all(math.isfinite(w) and w > 0 for w in record["weights"]["weights"])


# --- weights: wrong length, NaN / inf, zero, negative -------------------------------------------------


@pytest.mark.parametrize("weights, words", [
    ([1.0, float("nan"), 1.0], ["finite", "class index 1", "nan"]),
    ([1.0, 1.0, float("inf")], ["finite", "class index 2", "inf"]),
    ([1.0, 0.0, 1.0], ["> 0", "class index 1"]),
    ([[1.0, 1.0, 1.0]], ["1-D", "(1, 3)"]),
    ([], ["non-empty"]),
    (["a", "b", "c"], ["weights=", "numbers"]),
])
@pytest.mark.parametrize("loss_class", ["WeightedCrossEntropy", "FocalLoss"])
def test_bad_weight_vectors_are_refused(loss_class, weights, words):
    from lbw_utils import methods

    with pytest.raises(ValueError) as caught:
        getattr(methods, loss_class)(weights=weights)
    for word in words:
        assert word in str(caught.value), str(caught.value)


@pytest.mark.parametrize("loss_class", ["WeightedCrossEntropy", "FocalLoss"])
def test_weights_of_the_wrong_length_are_refused_at_the_first_batch(loss_class):
    from lbw_utils import methods

    loss = getattr(methods, loss_class)(weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="logits have 3 classes .* built for 2 classes"):
        loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))


# --- dynamic losses: batches with absent classes and batches of one class ------------------------------

LOSS_METHODS = [
    {"name": "baseline"}, {"name": "static", "gamma": 2}, {"name": "ema", "alpha": 0.5},
    {"name": "ema", "alpha": 1.0, "normalize": True}, {"name": "focal", "gamma": 2}, {"name": "cdb", "tau": 1.0},
    {"name": "dro", "eta": 1.0}, {"name": "dro", "eta": 1.0, "form": "group"},
    {"name": "cdb", "variant": "imagenet"}, {"name": "minrecall", "form": "weighted"},
    {"name": "minrecall", "form": "logit-adjusted"}, {"name": "margin", "source": "static"},
    {"name": "margin", "source": "dynamic", "alpha": 0.5},
]
NUM_CLASSES = 5


def batches_with_missing_classes():
    generator = torch.Generator().manual_seed(0)
    confident = torch.full((6, NUM_CLASSES), -30.0)
    confident[:, 3] = 30.0
    yield "two classes of five", torch.randn(12, NUM_CLASSES, generator=generator) * 3, torch.tensor([0, 2] * 6)
    yield "one class, all right", confident, torch.full((6,), 3)
    yield "one class, all wrong", -confident, torch.full((6,), 3)
    yield "one sample", torch.randn(1, NUM_CLASSES, generator=generator), torch.tensor([4])


def state_of(loss) -> torch.Tensor | None:
    for name in ("importance", "q", "recall"):
        if hasattr(loss, name):
            return getattr(loss, name).clone()
    return None


@pytest.mark.parametrize("method", LOSS_METHODS, ids=method_label)
def test_losses_stay_finite_and_keep_the_state_of_absent_classes(method):
    loss = make_loss(method, NUM_CLASSES, tpr=[0.9, 0.5, 0.7, 0.8, 0.6]).train()
    for description, logits, targets in batches_with_missing_classes():
        logits = logits.clone().requires_grad_(True)
        before = state_of(loss)
        value = loss(logits, targets)
        value.backward()
        assert torch.isfinite(value), f"{description}: loss {value}"
        assert torch.isfinite(logits.grad).all(), f"{description}: gradient not finite"
        after = state_of(loss)
        if after is None:
            continue
        assert torch.isfinite(after).all(), description
        absent = [c for c in range(NUM_CLASSES) if c not in targets.tolist()]
        if hasattr(loss, "importance") or hasattr(loss, "recall"):  # EMA: an absent class's state is untouched
            assert torch.equal(after[absent], before[absent]), description
        else:  # DRO: q is renormalised, but the absent classes keep their ratios to one another
            ratios = lambda q: (q[absent].log() - q[absent[0]].log())
            assert torch.allclose(ratios(after), ratios(before), atol=1e-6), description
            assert after.sum().item() == pytest.approx(1.0, abs=1e-6)
    json.dumps(loss.record())  # the record stays JSON


def test_cdb_gives_a_class_missing_from_validation_the_mean_accuracy_of_the_others():
    loss = CDBLoss(3, tau=1.0)
    logits = torch.tensor([[5.0, 0, 0]] * 4 + [[0, 5.0, 0], [5.0, 0, 0]])  # class 0: 4/4, class 1: 1/2
    loss.on_epoch_end(0, logits, torch.tensor([0, 0, 0, 0, 1, 1]))  # class 2 is absent
    raw = np.array([0.0, 0.5, 1 - 0.75])  # 1 - 1.0 (no floor, as the official code), 1 - 0.5, 1 - mean(1.0, 0.5)
    np.testing.assert_allclose(loss.weights.numpy(), raw / raw.mean(), rtol=1e-5)


@pytest.mark.parametrize("method", [{"name": "ema", "alpha": 0.5, "normalize": True}, {"name": "dro", "eta": 0.5}],
                         ids=method_label)
def test_training_with_one_sample_per_batch_stays_finite(data, tmp_path, method):
    """batch_size=2 with 3 classes: every batch lacks a class, many hold a single class, for a whole epoch.
    (Not 1: with 8x8 images the tiny CNN's last BatchNorm would see one value per channel, which torch refuses
    in training mode; 28x28 and 32x32 images leave 3x3 and 4x4 there.)"""
    config = TrainConfig(epochs=1, batch_size=2, lr=0.01, eval_batch_size=64)
    record = run(method, data, 0, tmp_path, train=config, model=TINY, progress=False)
    assert all(math.isfinite(loss) for loss in record["history"]["train_loss"])
    trajectory = record["weights"]["trajectory"]
    assert len(trajectory) == data.size("train") // 2
    assert all(math.isfinite(w) for row in trajectory for w in row)


# --- data folders: missing, truncated, tampered; no network ----------------------------------------------


@pytest.fixture
def fashion_root(tmp_path, monkeypatch):
    """A data folder with the four Fashion-MNIST file names (stand-in bytes), their checksums pinned."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    checksums = {}
    for index, name in enumerate(FASHION_MNIST_SHA256):
        (raw / name).write_bytes(bytes([index]) * 1000)
        checksums[name] = hashlib.sha256((raw / name).read_bytes()).hexdigest()
    monkeypatch.setattr(data_module, "FASHION_MNIST_SHA256", checksums)
    return tmp_path


def no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def load_fashion(root, **options):
    return load_image_dataset("fashion_mnist", data_dir=root, val_size=10, device="cpu", **options)


@pytest.mark.parametrize("damage", ["truncated", "one byte changed", "emptied"])
def test_a_damaged_data_file_is_refused_naming_it_and_both_checksums(fashion_root, damage):
    path = fashion_root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    expected = data_module.FASHION_MNIST_SHA256[path.name]
    payload = path.read_bytes()
    path.write_bytes({"truncated": payload[:600], "one byte changed": payload[:-1] + b"\xff",
                      "emptied": b""}[damage])
    with pytest.raises(DataIntegrityError) as caught:
        load_fashion(fashion_root)
    message = str(caught.value)
    assert str(path) in message and expected in message and hashlib.sha256(path.read_bytes()).hexdigest() in message
    assert "Delete it and download it again" in message


def test_no_data_and_no_network_says_which_files_to_place_where(fashion_root, monkeypatch):
    import torchvision

    raw = fashion_root / "FashionMNIST" / "raw"
    (raw / "train-images-idx3-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte").unlink()
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    with pytest.raises(DataNotFoundError) as caught:
        load_fashion(fashion_root)
    message = str(caught.value)
    assert "train-images-idx3-ubyte" in message and "t10k-images-idx3-ubyte" in message
    assert "train-labels-idx1-ubyte" not in message  # only what is missing
    assert f"missing from {raw}" in message and "Place them there" in message and "LBW_DATA_DIR" in message
    assert "the download failed" in message and "name resolution" in message
    assert isinstance(caught.value, FileNotFoundError)
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte"]


def test_no_cifar10_and_no_network(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    with pytest.raises(DataNotFoundError) as caught:
        load_image_dataset("cifar10", data_dir=tmp_path, device="cpu")
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1" in message
    assert "batches.meta" in message and "Place them there" in message and "download failed" in message
    assert files_under(tmp_path) == []


class WritesMarker:
    """Unpickling this with plain pickle would create ``marker``: a stand-in for code execution."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_downloaded_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, monkeypatch):
    """Even when its checksum is the expected one (a compromised source), the download is never executed."""
    marker = tmp_path / "marker"
    source = tmp_path / "server" / NAMES_FILE
    source.parent.mkdir()
    source.write_bytes(pickle.dumps({"alpha": ["ann", WritesMarker(marker)]}))
    monkeypatch.setattr(names_files, "NAMES_URL", source.as_uri())
    with pytest.raises(NamesFileContentError) as caught:
        load_names("all", data_dir=tmp_path / "data", device="cpu",
                   expected_sha256=hashlib.sha256(source.read_bytes()).hexdigest())
    assert "something other than dicts, lists and strings" in str(caught.value)
    assert "without running anything" in str(caught.value) and NAMES_FILE in str(caught.value)
    assert not marker.exists()


def test_names_classes_must_be_paper_all_or_a_list(tmp_path):
    path = tmp_path / "names" / NAMES_FILE
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({"alpha": [f"a{i}" for i in range(20)], "beta": [f"b{i}" for i in range(20)]}))
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=r"classes='europe': use 'paper', 'all', or a list of nationalities"):
        load_names("europe", data_dir=tmp_path, expected_sha256=checksum, device="cpu")
    with pytest.raises(ValueError, match="at least two distinct"):
        load_names(["alpha", "alpha"], data_dir=tmp_path, expected_sha256=checksum, device="cpu")


# --- results folders: stray temporary files, corrupt records ------------------------------------------------


def test_stray_temporary_files_are_never_read_as_records(data, tmp_path):
    record = run(BASELINE, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    folder = records.record_path(tmp_path, data.name, "baseline", 0).parent
    # What a kill during atomic_write_json leaves: '.<name>.<random>.tmp', complete or cut short.
    (folder / ".ema-alpha0.01__seed0.json.k3j9x.tmp").write_text(json.dumps(record)[:100])
    (folder / ".focal-gamma2__seed0.json.a8b2c.tmp").write_text(json.dumps({**record, "method_label": "focal"}))
    assert [r["method_label"] for r in records.load_records(tmp_path)] == ["baseline"]
    assert not records.is_finished(records.record_path(tmp_path, data.name, "ema-alpha0.01", 0))
    assert not records.is_finished(records.record_path(tmp_path, data.name, "focal-gamma2", 0))


# --- reproducibility -----------------------------------------------------------------------------------------

REPRODUCED = [BASELINE, {"name": "ema", "alpha": 0.1, "normalize": True}, {"name": "dro", "eta": 0.5},
              {"name": "posthoc", "objective": "worst"}]


def run_all(data, folder, seed: int = 0) -> list[dict]:
    return [run(method, data, seed, folder, train=CONFIG, model=TINY, progress=False) for method in REPRODUCED]


def disturb_every_random_generator() -> None:
    torch.rand(17)
    np.random.rand(5)
    random.random()


def test_same_seed_and_parameters_give_identical_records_twice_on_cpu(tiny_data, tmp_path):
    first = run_all(tiny_data(image_noise=25.0, seed=1), tmp_path / "a", seed=1)
    disturb_every_random_generator()  # a run must not depend on what the process did before it
    second = run_all(tiny_data(image_noise=25.0, seed=1), tmp_path / "b", seed=1)
    for one, other in zip(first, second):
        for key in ("test", "val", "weights", "fingerprint", "parameters"):
            assert same(one[key], other[key]), f"{one['method_label']}: {key} differs"
        if one["history"] is not None:
            for curve in ("train_loss", "val_accuracy", "val_tpr"):
                assert same(one["history"][curve], other["history"][curve]), f"{one['method_label']}: {curve}"
    for label in map(method_label, REPRODUCED[:-1]):  # the trained weights themselves, bit for bit
        saved = [torch.load(records.artifact_path(folder, "tiny", label, 1), weights_only=True)
                 for folder in (tmp_path / "a", tmp_path / "b")]
        for name, tensor in saved[0]["state_dict"].items():
            assert torch.equal(tensor, saved[1]["state_dict"][name]), f"{label}: {name}"
        assert torch.equal(saved[0]["test_logits"], saved[1]["test_logits"])
    third = run(BASELINE, tiny_data(image_noise=25.0, seed=1), 2, tmp_path / "c", train=CONFIG, model=TINY,
                progress=False)
    assert third["history"]["train_loss"] != first[0]["history"]["train_loss"]  # the seed does matter


def test_a_record_holds_everything_needed_to_rerun_it(data, tmp_path):
    method = {"name": "ema", "alpha": 0.1, "normalize": True}
    record = run(method, data, 3, tmp_path / "first", train=CONFIG, model=TINY, progress=False)
    on_disk = records.read_record(records.record_path(tmp_path / "first", data.name, method_label(method), 3))
    assert same(on_disk, record)

    assert record["method"] == method and record["seed"] == 3 and record["dataset"] == data.name
    assert record["parameters"]["train"] == CONFIG.to_dict()  # every training option, defaults included
    assert {key: record["parameters"]["model"][key] for key in ("name", "size")} == {"name": "cnn", "size": "tiny"}
    assert record["parameters"]["data"] == json.loads(json.dumps(data.describe()))  # sizes, classes, split seed
    assert record["data_checksums"] == data.checksums()
    assert record["fingerprint"] == run_fingerprint(method, data, CONFIG, TINY)
    assert record["schema_version"] == records.SCHEMA_VERSION and record["device"] == "cpu"
    assert record["autocast"] == ("bfloat16" if bf16_pays(torch.device("cpu")) else None)
    environment = record["environment"]
    assert environment["torch"] == torch.__version__ and environment["numpy"] == np.__version__
    for key in ("python", "torchvision", "platform", "processor", "cpu_count", "torch_threads", "cuda", "gpu"):
        assert key in environment
    revision = environment["git_revision"]  # None outside a git checkout
    assert revision is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", revision)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", record["created"])

    # Rerun from the record alone (plus the data it names): the same numbers.
    model = dict(record["parameters"]["model"])
    model.pop("parameters")
    again = run(record["method"], data, record["seed"], tmp_path / "again",
                train=TrainConfig.from_dict(record["parameters"]["train"]),
                model=ModelOptions(name=model.pop("name"), size=model.pop("size"), options=model), progress=False)
    assert again["fingerprint"] == record["fingerprint"]
    for key in ("test", "val", "weights"):
        assert same(again[key], record[key])


REAL_DATA = os.environ.get("LBW_DATA_DIR")


@pytest.mark.skipif(not (REAL_DATA and (Path(REAL_DATA) / "FashionMNIST" / "raw").is_dir()),
                    reason="set LBW_DATA_DIR to a folder with FashionMNIST/raw to test the real data")
def test_a_real_data_record_holds_the_published_checksums(tmp_path):
    options = DataOptions("fashion_mnist", data_dir=REAL_DATA, per_class=10, val_size=0.2, device="cpu")
    config = TrainConfig(epochs=1, batch_size=32, eval_batch_size=64)
    [record] = run_study([BASELINE], [0], options, tmp_path, train=config, model=TINY, progress=False)
    assert record["data_checksums"] == {f"FashionMNIST/raw/{name}": digest
                                        for name, digest in FASHION_MNIST_SHA256.items()}
    assert record["parameters"]["data"]["sizes"] == {"train": 80, "val": 20, "test": 100}


# --- 06_paper_figures through papermill ------------------------------------------------------------------


def execute_paper_figures(results: Path, output: Path):
    return papermill.execute_notebook(
        str(NOTEBOOK_DIR / "06_paper_figures.ipynb"), str(output), parameters={"results_dir": str(results)},
        kernel_name=KERNEL, cwd=str(NOTEBOOK_DIR), progress_bar=False)


def test_paper_figures_notebook_writes_every_table_and_figure_and_names_a_corrupt_record(tiny_data, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel is a subprocess
    results = tmp_path / "results"
    ema = {"name": "ema", "alpha": 0.1, "normalize": True}
    for seed in (0, 1):
        data = tiny_data(image_noise=25.0, seed=seed)
        for method in (BASELINE, ema):
            run(method, data, seed, results, train=CONFIG, model=TINY, progress=False)

    execute_paper_figures(results, tmp_path / "06.ipynb")
    tables = results / "tables" / "tiny"
    written = {suffix: tables / f"methods.{suffix}" for suffix in ("md", "csv", "tex")}
    for path in written.values():
        assert path.stat().st_size > 0
    rows = [[cell.strip() for cell in line.strip("|").split("|")][:2] for line in written["md"].read_text().splitlines()]
    assert ["baseline", "2"] in rows and ["normalised EMA weights, α = 0.1", "2"] in rows  # display names
    assert r"\begin{tabular}" in written["tex"].read_text()
    figures = {path.name for path in (results / "figures" / "tiny").iterdir()}
    for stem in ("fig1_tpr_bars", "baseline_vs_best", "pareto"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= figures, stem
    assert {"trajectory_ema-alpha0.1-norm.png", "trajectory_ema-alpha0.1-norm.pdf"} <= figures

    stamps = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in written.values()}
    corrupt = records.record_path(results, "tiny", "ema-alpha0.1-norm", 1)
    corrupt.write_text(corrupt.read_text()[:200])  # half-written by something other than this package
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        execute_paper_figures(results, tmp_path / "06_corrupt.ipynb")
    message = str(caught.value)
    assert "CorruptRecordError" in message and str(corrupt) in message and "delete it and rerun" in message
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in written.values()} == stamps


def test_figure_names_with_a_dot_are_kept_whole(tmp_path):
    # Labels like "ema-alpha0.01" contain dots; a suffix must be appended, never substituted.
    import matplotlib.pyplot as plt

    from lbw_utils.reporting import plots

    for label in ("ema-alpha0.01", "ema-alpha0.01-norm"):
        plots.class_curves(np.ones((3, 2)), ["a", "b"], xlabel="step", ylabel="weight",
                           save_to=tmp_path / f"trajectory_{label}")
    plt.close("all")
    assert {path.name for path in tmp_path.iterdir()} == {
        "trajectory_ema-alpha0.01.png", "trajectory_ema-alpha0.01.pdf",
        "trajectory_ema-alpha0.01-norm.png", "trajectory_ema-alpha0.01-norm.pdf"}
