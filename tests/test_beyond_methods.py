"""The methods beyond re-deciding that combine or learn from several networks, or augment per class: replicates
(``member``), ensembles, distillation, CLAM and class-conditional augmentation strength; and the separation answer."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from lbw_utils import records as records_module
from lbw_utils.methods import check_method, make_loss
from lbw_utils.methods.augment_strength import class_strengths, false_positives
from lbw_utils.methods.clam import ClamLoss
from lbw_utils.methods.distill import DistillationLoss
from lbw_utils.methods.ensemble import with_members
from lbw_utils.methods.kinds import average_probabilities
from lbw_utils.runs.experiments import BASELINE, ModelOptions, run
from lbw_utils.studies.representation import separation_summary
from lbw_utils.train import TrainConfig, training_seed

CONFIG = TrainConfig(epochs=1, batch_size=20, augment=False)
TINY = ModelOptions(size="tiny")


def files_under(folder: Path) -> list[Path]:
    return [path for path in Path(folder).rglob("*") if path.is_file()]


def test_with_members_puts_each_needed_replicate_once_before_its_first_user():
    methods = [{"name": "ensemble", "size": 3}, {"name": "distill", "teacher": 4}, {"name": "ensemble", "size": 2}]
    expanded = with_members(methods)
    assert expanded == [{"name": "member", "index": 1}, {"name": "member", "index": 2}, methods[0],
                        {"name": "member", "index": 3}, methods[1], methods[2]]
    assert with_members([{"name": "clam"}]) == [{"name": "clam"}]


def test_average_probabilities_is_the_log_of_the_mean_softmax():
    first, second = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 3.0, 0.0]])
    expected = (torch.softmax(first, 1) + torch.softmax(second, 1)) / 2
    torch.testing.assert_close(average_probabilities([first, second]).exp(), expected)


def test_a_replicate_draws_other_training_randomness_on_the_same_split(tiny_data, tmp_path):
    data = tiny_data(num_classes=3, per_class={"train": 20, "val": 10, "test": 10})
    base = run(BASELINE, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    member = run({"name": "member", "index": 1}, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    assert member["parameters"]["train"]["replicate"] == 1 and base["parameters"]["train"]["replicate"] == 0
    assert member["data_checksums"] == base["data_checksums"]
    assert member["val"]["confusion_matrix"] != base["val"]["confusion_matrix"] or \
        member["history"]["train_loss"] != base["history"]["train_loss"]
    assert training_seed(0, 1) != training_seed(1, 0) and training_seed(5, 0) == 5
    with pytest.raises(ValueError, match="replicate=-1 must be an integer >= 0"):
        TrainConfig(replicate=-1)


def test_an_ensemble_averages_its_members_and_counts_their_compute(tiny_data, tmp_path):
    data = tiny_data(num_classes=3, per_class={"train": 20, "val": 10, "test": 10})
    methods = [BASELINE] + with_members([{"name": "ensemble", "size": 3}])
    records = [run(m, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False) for m in methods]
    ensemble = records[-1]
    members = records[:3]
    assert ensemble["compute"]["networks_trained"] == 3 and ensemble["compute"]["networks_at_inference"] == 3
    assert math.isclose(ensemble["train_seconds"], sum(r["train_seconds"] for r in members))
    assert ensemble["weights"]["members"] == ["baseline", "member-1", "member-2"]
    saved = [torch.load(records_module.artifact_path(tmp_path, "tiny", r["method_label"], 0), weights_only=True)
             for r in members + [ensemble]]
    mean = torch.stack([torch.softmax(s["test_logits"], 1) for s in saved[:3]]).mean(0)
    torch.testing.assert_close(saved[3]["test_logits"].exp(), mean)


def test_an_ensemble_with_a_missing_member_names_it_and_writes_nothing(tiny_data, tmp_path):
    data = tiny_data(num_classes=3, per_class={"train": 20, "val": 10, "test": 10})
    run(BASELINE, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    before = files_under(tmp_path)
    with pytest.raises(FileNotFoundError, match="run 'member-1' for seed 0"):
        run({"name": "ensemble", "size": 2}, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    with pytest.raises(FileNotFoundError, match="run 'member-1' for seed 0"):
        run({"name": "distill", "teacher": 2}, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("method, words", [
    ({"name": "ensemble", "size": 0}, ["size=0", "an integer >= 1"]),
    ({"name": "distill", "temperature": 0}, ["temperature=0", "a finite number > 0"]),
    ({"name": "distill", "temperature": -1.0}, ["temperature=-1.0"]),
    ({"name": "distill", "teacher": 0}, ["teacher=0", "an integer >= 1"]),
    ({"name": "distill", "form": "robust"}, ["form='robust'", "('plain', 'worst')"]),
    ({"name": "augment-strength", "mean": 1.5}, ["mean=1.5", "(0, 1]"]),
    ({"name": "augment-strength", "mean": 0}, ["mean=0", "(0, 1]"]),
    ({"name": "clam", "policy": "rotate"}, ["policy='rotate'"]),
    ({"name": "member", "index": 0}, ["index=0", "an integer >= 1"]),
])
def test_bad_options_are_refused_by_name_before_anything_runs(tiny_data, tmp_path, method, words):
    with pytest.raises(ValueError) as caught:
        check_method(method)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    data = tiny_data(num_classes=3, per_class={"train": 20, "val": 10, "test": 10})
    with pytest.raises(ValueError):
        run(method, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    assert files_under(tmp_path) == []


def test_a_student_learns_from_the_ensemble_and_counts_its_teachers_compute(tiny_data, tmp_path):
    data = tiny_data(num_classes=3, per_class={"train": 20, "val": 10, "test": 10}, image_noise=30.0)
    members = [run(m, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
               for m in [BASELINE, {"name": "member", "index": 1}]]
    for form in ("plain", "worst"):
        student = run({"name": "distill", "teacher": 2, "temperature": 2.0, "form": form}, data, 0, tmp_path,
                      train=CONFIG, model=TINY, progress=False)
        assert student["compute"]["networks_trained"] == 3 and student["compute"]["networks_at_inference"] == 1
        teacher_seconds = sum(r["train_seconds"] for r in members)
        assert math.isclose(student["compute"]["seconds_with_teachers"], student["train_seconds"] + teacher_seconds)
        assert student["weights"]["temperature"] == 2.0
        assert (student["weights"]["weights"] is None) == (form == "plain")  # DRO weights only in the worst form


def test_the_distillation_loss_is_hintons_mix_and_needs_the_teacher_on_the_same_batch():
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    teacher_logits = torch.randn(6, 3)

    class Fixed(torch.nn.Module):
        def forward(self, inputs):
            return teacher_logits

    loss = DistillationLoss([Fixed()], 3, temperature=2.0, alpha=0.75)
    loss.see_inputs((torch.zeros(6, 1),))
    value = loss(logits, targets)
    soft_teacher = torch.log_softmax(teacher_logits / 2, 1)
    divergence = (soft_teacher.exp() * (soft_teacher - torch.log_softmax(logits / 2, 1))).sum(1)
    expected = (0.75 * 4 * divergence + 0.25 * torch.nn.functional.cross_entropy(logits, targets,
                                                                                   reduction="none")).mean()
    torch.testing.assert_close(value, expected)
    loss.see_inputs((torch.zeros(4, 1),))
    with pytest.raises(ValueError, match="see_inputs must run on the same batch"):
        loss(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))


def test_clam_follows_the_official_update():
    loss = ClamLoss(3)
    accuracy = torch.tensor([0.9, 0.5, 0.99])
    loss.on_train_accuracy(0, accuracy)
    change = torch.exp(-accuracy.double())
    change = change / change.mean()
    expected = change.clamp(0.5, 2)
    expected = expected / expected.mean()
    torch.testing.assert_close(loss.class_weights.double(), expected, atol=1e-6, rtol=0)
    assert bool(loss.augment_classes.all())  # the augmentation for every class, like the uniform augment row
    with pytest.raises(ValueError, match="every class's training accuracy"):
        loss.on_train_accuracy(1, torch.tensor([0.9, float("nan"), 0.5]))
    logits, targets = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    plain = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(loss(logits, targets), (loss.class_weights[targets] * plain).mean())


def test_class_strengths_keep_the_mean_and_follow_the_false_positives():
    confusion = torch.tensor([[50, 10, 0], [0, 60, 0], [0, 30, 30]])
    assert false_positives(confusion).tolist() == [0.0, 40.0, 0.0]
    for exponent in (1.0, -1.0, 0.5):
        strengths = class_strengths(confusion, 0.4, exponent)
        assert abs(float(strengths.mean()) - 0.4) < 1e-5 and bool(((strengths >= 0) & (strengths <= 1)).all())
    assert class_strengths(confusion, 0.4, 1.0)[1] > class_strengths(confusion, 0.4, 1.0)[0]
    assert class_strengths(confusion, 0.4, -1.0)[1] < class_strengths(confusion, 0.4, -1.0)[0]
    torch.testing.assert_close(class_strengths(confusion, 0.4, 0.0), torch.full((3,), 0.4))
    uniform = make_loss({"name": "augment-strength", "exponent": 0, "mean": 0.3}, 3)
    torch.testing.assert_close(uniform.augment_classes, torch.full((3,), 0.3))


def test_a_probability_per_class_augments_about_that_share_of_each_class(tiny_data):
    data = tiny_data(num_classes=2, per_class={"train": 400, "val": 2, "test": 2}, augment={"flip": True})
    strengths = torch.tensor([0.0, 1.0])
    generator = torch.Generator().manual_seed(0)
    (images,), targets = next(data.batches("train", 800, generator=generator, augment_classes=strengths))
    plain = data.normalize(data.images["train"])
    changed = (images != plain).flatten(1).any(1)
    assert not bool(changed[targets == 0].any())  # strength 0: never augmented
    assert 0.3 < float(changed[targets == 1].float().mean()) < 0.7  # strength 1 with a coin-flip mirror


def test_separation_summary_counts_rows_at_the_baselines_inference_cost_and_at_any_cost():
    comparison = pd.DataFrame({
        "method": ["ensemble-5"] * 2 + ["distill"] * 2, "level": [0.9, 0.89] * 2, "seeds": [10] * 4,
        "difference": [0.03, 0.02, 0.01, -0.01], "difference_ci": [0.01] * 4,
        "worst_class_tpr": [0.8] * 4, "baseline_worst_class_tpr": [0.77] * 4,
        "verdict": ["above the baseline's curve"] * 2 + ["crosses / no difference shown"] * 2})
    compute = pd.DataFrame({"method": ["baseline", "ensemble-5", "distill"], "networks_at_inference": [1, 5, 1],
                            "epoch_images_vs_baseline": [1.0, 5.0, 6.0], "train_seconds_vs_baseline": [1, 5, 7.5]})
    summary = separation_summary(comparison, compute, [])
    one = summary[summary["cost"] == "one network"]
    assert list(one["method"]) == ["distill"] and not one["above"].any()
    anything = summary[summary["cost"] == "any"].set_index("method")
    assert bool(anything.loc["ensemble-5", "above"]) and anything.loc["ensemble-5", "largest"] == 0.03
    assert anything.loc["ensemble-5", "smallest"] == 0.02


def test_the_frontier_figure_keeps_the_rows_highest_above_the_baseline_when_it_cannot_keep_them_all():
    from lbw_utils.reporting.plots import _highest_curves_first

    rows = []
    for method, height in [("baseline", 0.70), ("low", 0.60), ("high", 0.80), ("middle", 0.72), ("apart", 0.99)]:
        levels = [0.9, 0.89] if method != "apart" else [0.5]
        for level in levels:
            for seed in (0, 1):
                rows.append({"dataset": "d", "method": method, "seed": seed, "level": level,
                             "worst_class_tpr": height, "accuracy": level, "reached": True})
    curves = pd.DataFrame(rows)
    assert _highest_curves_first(curves, "baseline") == ["baseline", "high", "middle", "low", "apart"]
