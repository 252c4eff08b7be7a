"""lbw_utils.train (fit, predict, TrainConfig) and lbw_utils.runs.experiments.run on a tiny synthetic dataset."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lbw_utils.runs import experiments

from lbw_utils import records
from lbw_utils.methods import kinds
from lbw_utils.runs.experiments import BASELINE, ModelOptions, method_label, run
from lbw_utils.methods import static_weights
from lbw_utils.metrics import summarize
from lbw_utils.methods.posthoc import fit_logit_offsets
from lbw_utils.models import make_model
from lbw_utils.train import TrainConfig, fit, make_optimizer, predict

CONFIG = TrainConfig(epochs=4, batch_size=16, lr=0.05, eval_batch_size=32)
TINY = ModelOptions(name="cnn", size="tiny")


@pytest.fixture
def data(tiny_data):
    """3 classes by brightness, 40/20/20 images per class; per-image offsets make the classes overlap."""
    return tiny_data(image_noise=25.0, seed=0)


def new_model(data, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # the initialisation, which fit() does not control
    return make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape, size="tiny")


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float((logits.argmax(1) == targets).float().mean())


# --- fit and predict ------------------------------------------------------------------------


def test_fit_learns_and_records_one_entry_per_epoch(data):
    model = new_model(data)
    before = accuracy(predict(model, data, "val"), data.labels("val"))
    history = fit(model, data, config=CONFIG, seed=0, progress=False)
    for curve in (history.train_loss, history.val_accuracy, history.val_tpr, history.epoch_seconds):
        assert len(curve) == CONFIG.epochs
    assert all(len(tpr) == data.num_classes for tpr in history.val_tpr)
    assert history.train_tpr == []  # only tracked when asked for
    assert history.val_accuracy[-1] >= 0.75 > before + 0.2  # chance is 1/3
    assert history.train_loss[-1] < history.train_loss[0]
    assert all(math.isfinite(loss) for loss in history.train_loss)
    after = predict(model, data, "val")
    assert accuracy(after, data.labels("val")) == pytest.approx(history.val_accuracy[-1])
    assert history.train_seconds >= sum(history.epoch_seconds) * 0.99
    assert json.loads(json.dumps(history.to_dict()))["val_tpr"] == history.val_tpr


def test_fit_prints_one_line_per_epoch(data, capsys):
    fit(new_model(data), data, config=TrainConfig(epochs=2, batch_size=32, lr=0.05), seed=0, progress=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch   1/2") and "worst TPR" in lines[1]


class RecordingLoss(nn.Module):
    """Cross-entropy that remembers what on_epoch_end was shown."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, logits, targets):
        return nn.functional.cross_entropy(logits, targets)

    def on_epoch_end(self, epoch, val_logits, val_targets):
        self.seen.append((epoch, val_logits.clone(), val_targets.clone()))


def test_stateful_loss_sees_validation_logits_once_per_epoch(data):
    loss = RecordingLoss()
    model = new_model(data)
    history = fit(model, data, loss, CONFIG, seed=0, progress=False)
    assert [epoch for epoch, _, _ in loss.seen] == list(range(CONFIG.epochs))
    for epoch, logits, targets in loss.seen:
        assert logits.shape == (data.size("val"), data.num_classes) and logits.dtype == torch.float32
        assert torch.equal(targets, data.labels("val"))
        assert accuracy(logits, targets) == pytest.approx(history.val_accuracy[epoch])
    assert torch.equal(loss.seen[-1][1], predict(model, data, "val"))


def test_same_seed_is_bit_identical_on_cpu(data):
    def train(seed):
        model = new_model(data, seed)
        history = fit(model, data, config=CONFIG, seed=seed, progress=False)
        return history, predict(model, data, "test"), model.state_dict()

    first, again, other = train(0), train(0), train(1)
    for key in ("train_loss", "val_accuracy", "val_tpr"):
        assert getattr(first[0], key) == getattr(again[0], key)
    assert torch.equal(first[1], again[1])
    assert all(torch.equal(first[2][name], again[2][name]) for name in first[2])
    assert first[0].train_loss != other[0].train_loss
    assert not torch.equal(first[1], other[1])


def test_fit_seed_fixes_batch_order_and_augmentation_for_a_given_initialisation(data):
    """The same initial weights and fit(seed=s) give the same run, whatever the global RNG did in between."""
    runs = []
    for noise in (0, 1):
        model = new_model(data, 5)
        torch.rand(100 + noise)  # disturb the global generator after the model is built
        runs.append(fit(model, data, config=CONFIG, seed=3, progress=False).train_loss)
    assert runs[0] == runs[1]


def test_the_one_kernel_sgd_gives_the_per_parameter_loops_values(data):
    model, twin = new_model(data), new_model(data)
    config = TrainConfig(lr=0.1, weight_decay=5e-4)
    fast = make_optimizer(model, config)
    groups = [{"params": [p for p in twin.parameters() if p.ndim > 1], "weight_decay": config.weight_decay},
              {"params": [p for p in twin.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
    loop = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        for left, right in zip(model.parameters(), twin.parameters()):
            left.grad = torch.randn(left.shape, generator=generator)
            right.grad = left.grad.clone()
        fast.step()
        loop.step()
    assert all(torch.equal(left, right) for left, right in zip(model.parameters(), twin.parameters()))


def test_predict_returns_logits_in_split_order(data):
    model = new_model(data)
    fit(model, data, config=TrainConfig(epochs=1, batch_size=32, lr=0.05), seed=0, progress=False)
    for split in ("val", "test"):
        logits = predict(model, data, split, batch_size=7, amp=False)  # fp32: compared with a direct fp32 pass
        assert logits.shape == (data.size(split), data.num_classes) and logits.dtype == torch.float32
        model.eval()
        with torch.no_grad():
            direct = model(data.normalize(data.images[split]))
        torch.testing.assert_close(logits, direct, rtol=1e-5, atol=1e-5)
    assert not model.training


def test_track_train_tpr_fills_the_history(data):
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, track_train_tpr=True, eval_batch_size=32)
    history = fit(new_model(data), data, config=config, seed=0, progress=False)
    assert len(history.train_tpr) == 3
    for tpr in history.train_tpr:
        assert len(tpr) == data.num_classes and all(0.0 <= value <= 1.0 for value in tpr)
    assert sum(history.train_tpr[-1]) / 3 >= 0.6


@pytest.mark.parametrize("optimizer, schedule", [("adamw", "onecycle"), ("sgd", "constant")])
def test_other_optimizers_and_schedules_train(data, optimizer, schedule):
    lr = 0.01 if optimizer == "adamw" else 0.05
    config = TrainConfig(epochs=4, batch_size=16, lr=lr, optimizer=optimizer, schedule=schedule)
    history = fit(new_model(data), data, config=config, seed=0, progress=False)
    assert history.val_accuracy[-1] >= 0.7


@pytest.mark.parametrize("options, key", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"batch_size": -16}, "batch_size"),
    ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"schedule": "cosine"}, "schedule"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"warmup_fraction": -0.1}, "warmup_fraction"),
])
def test_train_config_rejects_bad_values_naming_the_key(options, key):
    with pytest.raises(ValueError, match=f"^{key}="):
        TrainConfig(**options)
    with pytest.raises(ValueError, match=f"^{key}="):
        TrainConfig.from_dict(options)


def test_train_config_from_dict():
    with pytest.raises(ValueError) as caught:
        TrainConfig.from_dict({"epoch": 3, "lr": 0.1})
    assert "['epoch']" in str(caught.value) and "'epochs'" in str(caught.value)
    config = TrainConfig.from_dict({"epochs": 3, "optimizer": "adamw"})
    assert config.epochs == 3 and config.optimizer == "adamw" and config.batch_size == TrainConfig().batch_size
    assert TrainConfig.from_dict(config.to_dict()) == config


# --- experiments.run ----------------------------------------------------------------------


def run_quietly(method, data, results_dir, **options):
    return run(method, data, 0, results_dir, train=CONFIG, model=TINY, progress=False, **options)


def test_baseline_run_writes_a_record_and_an_artifact(data, tmp_path):
    record = run_quietly(BASELINE, data, tmp_path)
    path = records.record_path(tmp_path, data.name, method_label(BASELINE), 0)
    assert records.is_finished(path)
    on_disk = records.read_record(path)
    assert on_disk["method_label"] == record["method_label"] == method_label(BASELINE)
    assert on_disk["seed"] == 0 and on_disk["dataset"] == data.name
    assert on_disk["parameters"]["train"] == CONFIG.to_dict()
    assert on_disk["weights"] == {"weights": None}
    assert len(on_disk["history"]["val_accuracy"]) == CONFIG.epochs
    assert on_disk["val"]["accuracy"] >= 0.7
    assert sum(map(sum, on_disk["test"]["confusion_matrix"])) == data.size("test")
    artifact = torch.load(records.artifact_path(tmp_path, data.name, method_label(BASELINE), 0), weights_only=True)
    assert artifact["val_logits"].shape == (data.size("val"), data.num_classes)
    assert artifact["test_logits"].shape == (data.size("test"), data.num_classes)
    assert accuracy(artifact["val_logits"], data.labels("val")) == pytest.approx(on_disk["val"]["accuracy"])


def test_static_takes_the_baseline_validation_tpr(data, tmp_path):
    run_quietly(BASELINE, data, tmp_path)
    # Make the baseline's validation and test TPRs unmistakably different, so only the
    # validation numbers can explain the static run's weights.
    path = records.record_path(tmp_path, data.name, method_label(BASELINE), 0)
    baseline = records.read_record(path)
    baseline["val"]["tpr"], baseline["test"]["tpr"] = [0.9, 0.6, 0.75], [0.6, 0.95, 0.8]
    records.write_record(path, baseline)

    method = {"name": "static", "gamma": 2}
    record = run_quietly(method, data, tmp_path)
    expected = static_weights([0.9, 0.6, 0.75], gamma=2, num_classes=3)
    assert record["weights"]["weights"] == pytest.approx(expected.tolist(), rel=1e-6)
    assert record["weights"]["weights"] != pytest.approx(
        static_weights([0.6, 0.95, 0.8], gamma=2, num_classes=3).tolist(), rel=1e-3)
    assert record["method"] == method
    assert records.is_finished(records.record_path(tmp_path, data.name, method_label(method), 0))


def test_static_with_the_real_baseline_validation_tpr(data, tmp_path):
    baseline = run_quietly(BASELINE, data, tmp_path)
    record = run_quietly({"name": "static", "gamma": 4}, data, tmp_path)
    expected = static_weights(baseline["val"]["tpr"], gamma=4, num_classes=3)
    assert record["weights"]["weights"] == pytest.approx(expected.tolist(), rel=1e-6)


def test_static_without_a_baseline_raises(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="baseline"):
        run_quietly({"name": "static", "gamma": 2}, data, tmp_path)
    assert not list(tmp_path.rglob("*.json"))


def test_rerun_skips_and_redo_retrains(data, tmp_path, monkeypatch):
    first = run_quietly(BASELINE, data, tmp_path)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(kinds, "fit", must_not_train)
    again = run_quietly(BASELINE, data, tmp_path)
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)

    calls = []
    real_fit = fit

    def counting_fit(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(kinds, "fit", counting_fit)
    redone = run_quietly(BASELINE, data, tmp_path, redo=True)
    assert calls == [1]
    on_disk = records.read_record(records.record_path(tmp_path, data.name, method_label(BASELINE), 0))
    assert on_disk["wall_seconds"] == redone["wall_seconds"] != first["wall_seconds"]
    assert redone["test"]["tpr"] == first["test"]["tpr"]  # same seed, same run


def test_a_study_checks_each_method_once_before_its_first_run(data, tmp_path, monkeypatch):
    checked = []
    real_check = experiments.check_method
    monkeypatch.setattr(experiments, "check_method", lambda method: checked.append(method) or real_check(method))
    monkeypatch.setattr(experiments, "load_data", lambda options, seed: data)
    methods = [BASELINE, {"name": "posthoc", "objective": "worst"}]
    done = experiments.run_study(methods, [0, 1], experiments.DataOptions(dataset="fashion_mnist"), tmp_path,
                                 train=CONFIG, model=TINY, progress=False)
    assert [record["method_label"] for record in done] == [method_label(m) for m in methods] * 2
    assert checked == methods  # once each, not again for every seed's run


def test_corrupt_record_is_rerun(data, tmp_path):
    path = records.record_path(tmp_path, data.name, method_label(BASELINE), 0)
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1, "dataset": ')  # a run killed by something other than us
    record = run_quietly(BASELINE, data, tmp_path)
    assert records.read_record(path)["wall_seconds"] == record["wall_seconds"]


def test_posthoc_method_adjusts_the_baseline_without_training(data, tmp_path, monkeypatch):
    baseline = run_quietly(BASELINE, data, tmp_path)

    def must_not_train(*args, **kwargs):
        raise AssertionError("post-hoc offsets must not train")

    monkeypatch.setattr(kinds, "fit", must_not_train)
    method = {"name": "posthoc", "objective": "worst"}
    record = run_quietly(method, data, tmp_path)
    assert records.is_finished(records.record_path(tmp_path, data.name, method_label(method), 0))
    offsets = record["weights"]["offsets"]
    assert len(offsets) == data.num_classes and all(math.isfinite(x) for x in offsets)
    assert record["weights"]["adjusts"] == method_label(BASELINE)
    assert record["history"] is None and record["train_seconds"] == 0.0
    # The test split gets the offsets fitted on the whole validation split...
    saved = torch.load(records.artifact_path(tmp_path, data.name, "baseline", 0), weights_only=True)
    whole = fit_logit_offsets(saved["val_logits"], data.labels("val").cpu(), objective="worst")
    assert offsets == pytest.approx(whole.tolist())
    in_sample = summarize(data.labels("val").cpu(), (saved["val_logits"] + whole).argmax(1), data.num_classes,
                          data.classes)
    assert in_sample["worst_class_tpr"] >= baseline["val"]["worst_class_tpr"]
    # ...while the record's validation scores are cross-fitted (each half predicted by offsets fitted on
    # the other), so they are not the in-sample ones that would make post-hoc win any selection.
    assert "cross-fitted" in record["weights"]["val_scores"]
    assert record["val"]["confusion_matrix"] != in_sample["confusion_matrix"]


def test_posthoc_without_the_baseline_artifact_raises(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="run it first"):
        run_quietly({"name": "posthoc", "objective": "worst"}, data, tmp_path)


def test_finished_record_with_other_settings_is_not_silently_reused(data, tmp_path):
    run_quietly(BASELINE, data, tmp_path)
    longer = TrainConfig(**{**CONFIG.to_dict(), "epochs": CONFIG.epochs + 1})
    with pytest.raises(ValueError, match=r"other settings \(train\.epochs\).*redo=True"):
        run(BASELINE, data, 0, tmp_path, train=longer, model=TINY, progress=False)
    # Watching a run differently does not change what it learns: the record is reused.
    watched = TrainConfig(**{**CONFIG.to_dict(), "track_train_tpr": not CONFIG.track_train_tpr})
    assert run(BASELINE, data, 0, tmp_path, train=watched, model=TINY, progress=False)["seed"] == 0


def test_custom_label_names_the_record_and_is_not_a_loss_option(data, tmp_path):
    record = run_quietly({"name": "baseline", "label": "plain"}, data, tmp_path)
    assert record["method_label"] == "plain"
    assert records.is_finished(records.record_path(tmp_path, data.name, "plain", 0))


# One run whose largest gradient is a 32 MiB block (the size glibc hands back to the kernel by default).
_RUN_WITH_A_BIG_GRADIENT = """
import json, sys, torch
from torch import nn
import lbw_utils.speed as speed
import lbw_utils.train as train
from tests.conftest import build_image_data
if sys.argv[1] == "glibc-defaults":
    speed._malloc_tuned = True  # as if already done, so fit leaves glibc's defaults in place
data = build_image_data(shape=(1, 8, 8))
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 131072), nn.ReLU(), nn.Linear(131072, data.num_classes))
config = train.TrainConfig(epochs=1, batch_size=32, optimizer="adamw", lr=1e-3, augment=False)
history = train.fit(model, data, config=config, progress=False)
print(json.dumps([history.train_loss, history.val_tpr, float(model[1].weight.detach().double().sum())]))
"""


def test_keeping_freed_memory_changes_no_value():
    """fit's allocator setting (keep_freed_memory) changes speed only: the same run, with glibc's defaults
    and with it, gives the same numbers."""
    root = Path(__file__).resolve().parent.parent
    outputs = [subprocess.run([sys.executable, "-c", _RUN_WITH_A_BIG_GRADIENT, mode], cwd=root, check=True,
                              capture_output=True, text=True).stdout for mode in ("kept", "glibc-defaults")]
    assert outputs[0].strip() and outputs[0] == outputs[1]


def test_training_margin_and_cross_entropy_per_class():
    from lbw_utils.train import _per_class_margin_and_ce
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 2.5], [1.0, 1.0, 4.0], [2.0, 0.0, 0.0]])
    targets = torch.tensor([0, 1, 2, 0])
    margin, cross_entropy = _per_class_margin_and_ce(logits, targets, 4)
    assert margin[:3] == pytest.approx([(2.0 + 2.0) / 2, -0.5, 3.0])
    assert math.isnan(margin[3]) and math.isnan(cross_entropy[3])  # a class with no example
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    assert cross_entropy[0] == pytest.approx(float(expected[[0, 3]].mean()))
