"""Methods beyond re-deciding (lbw_utils.methods.frontier), the loop changes they make, and notebook 09's tables."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lbw_utils.runs import experiments

from lbw_utils.reporting import beyond
from lbw_utils.studies import representation
from lbw_utils.runs.experiments import BASELINE, ModelOptions, run
from lbw_utils.methods import check_method, make_loss, method_label
from lbw_utils.methods.frontier import PairMarginLoss, confused_group, pair_margins
from lbw_utils.methods.registry import MethodSpec
from lbw_utils.train import TrainConfig, WeightAverage, fit
from lbw_utils.models import make_model


def test_the_confused_group_is_the_lowest_validation_tprs():
    assert confused_group([0.9, 0.5, 0.7, 0.5, 0.99], 3) == [1, 3, 2]  # ties by index
    with pytest.raises(ValueError, match="group=6 must be between 1 and the number of classes"):
        confused_group([0.9] * 5, 6)
    with pytest.raises(ValueError, match="contain NaN"):
        confused_group([0.9, math.nan], 1)


def test_pair_margins_are_symmetric_confusion_scaled_to_gamma():
    confusion = [[8, 2, 0], [0, 10, 0], [0, 4, 6]]  # rows: true class; 0 -> 1 at 0.2, 2 -> 1 at 0.4
    margins = pair_margins(confusion, gamma=2.0)
    assert torch.equal(margins, margins.T) and torch.all(margins.diagonal() == 0)
    assert margins[1, 2] == pytest.approx(2.0) and margins[0, 1] == pytest.approx(1.0) and margins[0, 2] == 0
    assert torch.all(pair_margins([[5, 0], [0, 5]], gamma=1.0) == 0)  # nothing confused: no margins
    with pytest.raises(ValueError, match="no validation examples"):
        pair_margins([[0, 0], [1, 1]], gamma=1.0)


def test_pair_margin_loss_raises_the_rival_logits_of_confused_pairs_only():
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert PairMarginLoss(torch.zeros(3, 3))(logits, targets) == pytest.approx(float(F.cross_entropy(logits, targets)))
    margins = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    expected = F.cross_entropy(logits + margins[targets], targets)
    assert PairMarginLoss(margins)(logits, targets) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="square"):
        PairMarginLoss(torch.zeros(3, 2))


def test_registry_entries_check_their_options_and_name_their_runs():
    assert method_label({"name": "augment", "classes": "confused"}) == "augment-confused"
    assert method_label({"name": "capacity", "size": "medium"}) == "capacity-medium"
    with pytest.raises(ValueError, match="classes='some' is not allowed"):
        check_method({"name": "augment", "classes": "some"})
    with pytest.raises(ValueError, match="decay=1 is not allowed"):
        check_method({"name": "average", "decay": 1})
    with pytest.raises(ValueError, match="size='huge' is not allowed"):
        check_method({"name": "capacity", "size": "huge"})
    with pytest.raises(ValueError, match="confusion matrix"):
        make_loss({"name": "pair-margin"}, 3)
    with pytest.raises(ValueError, match="train_changes and model_changes need kind 'train'"):
        MethodSpec("odd", "posthoc", train_changes=lambda o, train: {"augment": True})


def test_targeted_augmentation_leaves_the_other_classes_images_as_they_are(tiny_data):
    data = tiny_data(num_classes=3, augment={"flip": True, "crop_pad": 2}, pixel_noise=60.0)
    chosen = torch.tensor([False, True, False])
    plain = list(data.batches("train", 30))
    targeted = list(data.batches("train", 30, augment=True, augment_classes=chosen,
                                 generator=torch.Generator().manual_seed(0)))
    for ((before,), targets), ((after,), _) in zip(plain, targeted):
        kept = ~chosen[targets]
        assert torch.equal(before[kept], after[kept])
    changed = [not torch.equal(b[chosen[t]], a[chosen[t]]) for ((b,), t), ((a,), _) in zip(plain, targeted)]
    assert any(changed)


def test_weight_average_follows_the_warmed_up_ema():
    network = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.constant_(network.weight, 1.0)
    average = WeightAverage(network, decay=0.9)
    torch.nn.init.constant_(network.weight, 3.0)
    average.update(step=0)  # decay min(0.9, 1/10) = 0.1: 0.1 * 1 + 0.9 * 3
    assert torch.allclose(average.model.weight, torch.full((1, 2), 2.8))
    average.update(step=1000)  # decay 0.9
    assert torch.allclose(average.model.weight, torch.full((1, 2), 0.9 * 2.8 + 0.1 * 3.0))


def test_fit_with_averaging_ends_on_the_averaged_weights(tiny_data):
    data = tiny_data(num_classes=3)
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, average_weights=0.9)
    network = make_model("cnn", num_classes=3, input_shape=data.input_shape, size="tiny")
    history = fit(network, data, config=config, progress=False)
    assert len(history.val_accuracy) == 2
    with pytest.raises(ValueError, match="average_weights=1.0 must lie in"):
        TrainConfig(average_weights=1.0)


def test_each_method_runs_with_its_changes_recorded(tiny_data, tmp_path):
    data = tiny_data(num_classes=3, image_noise=30.0)
    train = TrainConfig(epochs=1, batch_size=16, lr=0.05, augment=False)
    model = ModelOptions(size="tiny")
    options = {"train": train, "model": model, "progress": False}
    base = run(BASELINE, data, 0, tmp_path, **options)
    targeted = run({"name": "augment", "classes": "confused", "group": 1}, data, 0, tmp_path, **options)
    assert targeted["parameters"]["train"]["augment"] is True
    worst = min(range(3), key=lambda index: (base["val"]["tpr"][index], index))
    assert targeted["weights"]["augmented_classes"] == [worst]
    pairs = run({"name": "pair-margin", "gamma": 2.0}, data, 0, tmp_path, **options)
    assert max(max(row) for row in pairs["weights"]["pair_margins"]) == pytest.approx(2.0)
    averaged = run({"name": "average", "decay": 0.9}, data, 0, tmp_path, **options)
    assert averaged["parameters"]["train"]["average_weights"] == 0.9
    assert averaged["fingerprint"]["train"]["average_weights"] == 0.9
    assert base["fingerprint"]["train"]["average_weights"] == 0.0  # off: named too, a fingerprint names every option
    bigger = run({"name": "capacity", "size": "small"}, data, 0, tmp_path, **options)
    assert bigger["parameters"]["model"]["size"] == "small"
    shorter = run({"name": "capacity", "size": "small", "epoch_share": 0.5},
                  data, 0, tmp_path, **{**options, "train": TrainConfig(epochs=4, batch_size=16, lr=0.05, augment=False)})
    assert shorter["method_label"] == "capacity-small-share0.5"
    assert shorter["parameters"]["train"]["epochs"] == 2 and len(shorter["history"]["val_accuracy"]) == 2
    assert bigger["parameters"]["model"]["parameters"] > base["parameters"]["model"]["parameters"]
    for record in (targeted, pairs, averaged, bigger):
        assert record["ceiling"] is not None
    records = [base, targeted, pairs, averaged, bigger]
    shifts = representation.ceiling_shift_table(records)
    assert list(shifts["method"]) == ["augment-confused-group1", "pair-margin-gamma2.0", "average-decay0.9",
                                      "capacity-small"]
    assert set(shifts["verdict"]) == {"no interval (one seed)"}
    compute = representation.compute_table(records).set_index("method")
    assert compute.loc["capacity-small", "parameters_vs_baseline"] > 1
    assert compute.loc["augment-confused-group1", "epoch_images_vs_baseline"] == 1


def _record(label: str, seed: int, ceiling: float) -> dict:
    return {"method_label": label, "seed": seed, "ceiling": {"worst_class_tpr": ceiling}, "train_seconds": 1.0,
            "parameters": {"train": {"epochs": 3}, "model": {"parameters": 10}, "data": {"sizes": {"train": 100}}}}


def test_the_ceiling_shift_is_paired_by_seed_and_says_what_its_interval_shows():
    records = [_record("baseline", s, 0.80 + 0.05 * s) for s in range(4)]
    records += [_record("raises", s, 0.86 + 0.05 * s + 0.001 * (s % 2)) for s in range(4)]
    records += [_record("same", s, 0.80 + 0.05 * s + (0.01 if s % 2 else -0.01)) for s in range(4)]
    table = representation.ceiling_shift_table(records).set_index("method")
    assert table.loc["raises", "verdict"] == "raised" and table.loc["raises", "shift"] == pytest.approx(0.0605)
    assert table.loc["same", "verdict"] == "no change shown"
    text = beyond.describe_ceiling_shifts(table.reset_index())
    assert "raised (95 % interval away from 0) by: raises +6.0" in text and "No change shown for same" in text
    assert table.loc["raises", "floor_reached"] == 4 and "could not bring" not in text
    records[-1]["ceiling"]["reached_floor"] = False  # "same", seed 3: less accurate than the floor
    text = beyond.describe_ceiling_shifts(representation.ceiling_shift_table(records))
    assert "could not bring these runs back to the accuracy floor" in text and "same (1 of 4 seeds)" in text
    with pytest.raises(ValueError, match="no 'baseline' run with a ceiling"):
        representation.ceiling_shift_table(records[4:])


def test_the_training_loop_refuses_targeted_augmentation_on_names():
    with pytest.raises(ValueError, match="needs image data"):
        fit(torch.nn.Linear(1, 2), _NamesLike(), make_loss({"name": "augment", "classes": "all"}, 2),
            TrainConfig(epochs=1), progress=False)


class _NamesLike:
    """Data whose batches take no per-class augmentation (as the names dataset)."""

    device = torch.device("cpu")
    num_classes = 2

    def size(self, split):
        return 4

    def batches(self, split, batch_size, *, shuffle=False, generator=None, augment=False):
        yield (torch.zeros(4, 1),), torch.zeros(4, dtype=torch.long)


def test_experiments_exposes_the_new_methods():
    assert {"augment", "pair-margin", "average", "capacity"} <= set(experiments.METHOD_NAMES)


def test_head_to_head_pairs_two_methods_by_seed():
    def record(label, seed, worst, accuracy):
        test = {"worst_class_tpr": worst, "accuracy": accuracy, "balanced_accuracy": accuracy, "tpr": [worst, 1.0],
                "tpr_std": 0.0, "worst_class": "class0"}
        return {"dataset": "tiny", "method_label": label, "seed": seed, "test": test}

    records = [record("a", s, 0.70 + 0.01 * s, 0.90) for s in range(3)]
    records += [record("b", s, 0.72 + 0.01 * s + 0.001 * s, 0.89) for s in range(4)]  # seed 3: no partner
    text = beyond.head_to_head(records, "b", "a")
    assert text.startswith("b against a (3 seeds, paired by seed; test split): +2.1 ± ")
    assert "-1.0 ± 0.0 points of accuracy" in text
    with pytest.raises(ValueError, match=r"no runs of \['c'\]"):
        beyond.head_to_head(records, "c", "a")
