"""Methods beyond re-deciding (lbw_utils.methods.frontier), the loop changes they make, and notebook 09's tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lbw_utils import stats
from lbw_utils.runs import experiments

from lbw_utils.reporting import beyond, sentences
from lbw_utils.studies import representation
from lbw_utils.runs.experiments import BASELINE, ModelOptions, run
from lbw_utils.methods import check_method, display_name, make_loss, method_label
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
    targeted = list(data.batches("train", 30, augment=False, augment_classes=chosen,
                                 generator=torch.Generator().manual_seed(0)))
    for ((before,), targets), ((after,), _) in zip(plain, targeted):
        kept = ~chosen[targets]
        assert torch.equal(before[kept], after[kept])
    changed = [not torch.equal(b[chosen[t]], a[chosen[t]]) for ((b,), t), ((a,), _) in zip(plain, targeted)]
    assert any(changed)


def test_targeted_augmentation_on_top_of_the_studys_own(tiny_data):
    """With the study's augmentation on, the other classes keep it and the chosen ones get the targeted policy."""
    data = tiny_data(num_classes=3, augment={"flip": True, "crop_pad": 2}, pixel_noise=60.0)
    chosen = torch.tensor([False, True, False])
    def batches(**options):
        return list(data.batches("train", 30, generator=torch.Generator().manual_seed(0), **options))
    study = batches(augment=True, augmentation="flip")
    targeted = batches(augment=True, augmentation="flip", augment_classes=chosen, targeted_augmentation="erase")
    others_kept = chosen_differ = False
    for ((plain,), targets), ((own,), _), ((after,), _) in zip(list(data.batches("train", 30)), study, targeted):
        kept = ~chosen[targets]
        others_kept |= not torch.equal(plain[kept], after[kept])  # the others are augmented (flipped) too
        chosen_differ |= not torch.equal(own[chosen[targets]], after[chosen[targets]])
    assert others_kept and chosen_differ
    with pytest.raises(ValueError, match="targeted_augmentation='mixup' is not known"):
        batches(augment_classes=chosen, targeted_augmentation="mixup")


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
    assert targeted["parameters"]["train"]["augment"] is False  # the study's: only the targeted classes change
    assert targeted["weights"]["augmentation"] == "dataset"
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
    compute = representation.compute_table(records).set_index("method")
    assert compute.loc["capacity-small", "parameters_vs_baseline"] > 1
    assert compute.loc["augment-confused-group1", "epoch_images_vs_baseline"] == 1


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


# --------------------------------------------------------------------------
# Post-hoc rows: the budget on test, and re-deciding a method against re-deciding the baseline
# --------------------------------------------------------------------------

POSTHOC_BUDGET = {"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.005}
AUGMENT = {"name": "augment", "classes": "all"}


def _summary(worst: float, accuracy: float) -> dict:
    return {"worst_class_tpr": worst, "accuracy": accuracy, "balanced_accuracy": accuracy, "tpr": [worst, 1.0],
            "tpr_std": 0.0, "worst_class": "class0", "macro_f1": accuracy}


def _run(method: dict, seed: int, accuracy: float, worst: float = 0.5, weights: dict | None = None) -> dict:
    return {"dataset": "tiny", "method": method, "method_label": method_label(method), "seed": seed,
            "test": _summary(worst, accuracy), "val": _summary(worst, accuracy), "weights": weights or {}}


def test_the_budget_overshoot_pairs_each_posthoc_run_with_the_run_it_adjusts():
    held = {**POSTHOC_BUDGET}
    on_augment = {**POSTHOC_BUDGET, "of": AUGMENT}
    worst = {"name": "posthoc", "objective": "worst"}
    records = []
    for seed, (base, augment) in enumerate([(0.90, 0.90), (0.91, 0.90), (0.92, 0.90)]):
        records += [_run(BASELINE, seed, base), _run(AUGMENT, seed, augment)]
        # recorded as the held budget records it: 0.2, 0.3, 0.4 points lost, all within the 0.5-point budget
        records.append(_run(held, seed, base - 0.002 - 0.001 * seed, weights={
            "adjusts": "baseline", "hold": "cross-fit", "stated_budget": 0.005, "internal_budget": 0.0025}))
        # a record made before the budget was held: its budget comes from its method; 1.0, 0.8 and exactly 0.5 lost
        records.append(_run(on_augment, seed, augment - (0.01, 0.008, 0.005)[seed], weights={"adjusts": "augment-all"}))
        records.append(_run(worst, seed, base - 0.03, weights={"adjusts": "baseline", "stated_budget": None}))
    records.append(_run(on_augment, 7, 0.8))  # no augment-all run of seed 7: nothing to pair with
    table = representation.budget_overshoot_table(records).set_index("method")
    assert list(table.index) == ["baseline+posthoc-budget-drop0.005", "augment-all+posthoc-budget-drop0.005",
                                 "baseline+posthoc-worst"]
    row = table.loc["baseline+posthoc-budget-drop0.005"]
    assert row["seeds"] == 3 and row["adjusts"] == "baseline" and row["hold"] == "cross-fit"
    assert row["stated_budget"] == 0.005 and row["internal_budget"] == 0.0025
    assert row["test_loss"] == pytest.approx(0.003) and row["overshoot"] == pytest.approx(-0.002)
    assert row["test_loss_ci"] == pytest.approx(stats.mean_interval([0.002, 0.003, 0.004])[1])
    assert row["seeds_over_budget"] == 0
    old = table.loc["augment-all+posthoc-budget-drop0.005"]
    assert old["seeds"] == 3 and pd.isna(old["hold"]) and math.isnan(old["internal_budget"])
    assert old["stated_budget"] == 0.005 and old["test_loss"] == pytest.approx(0.023 / 3)
    assert old["overshoot"] == pytest.approx(0.023 / 3 - 0.005)
    assert old["seeds_over_budget"] == 2  # 0.9 - 0.895 is 0.005 up to float rounding: not over
    assert old["over_budget"] and not row["over_budget"]
    no_budget = table.loc["baseline+posthoc-worst"]
    assert math.isnan(no_budget["stated_budget"]) and math.isnan(no_budget["overshoot"])
    assert no_budget["test_loss"] == pytest.approx(0.03)
    # rows are shown by their display names (the labels stay in the table the numbers come from)
    augmented = display_name("augment-all+posthoc-budget-drop0.005")
    shown = beyond.formatted_budget_overshoot(table.reset_index()).set_index("method")
    assert shown.loc[augmented, "seeds over budget"] == "2 of 3"
    assert shown.loc[augmented, "overshoot (pts)"] == "+0.27"
    assert shown.loc["baseline + post-hoc offsets (worst class)", "stated budget (pts)"].startswith("none")
    text = beyond.describe_budget_overshoot(table.reset_index())
    assert (f"Over the budget on average: {augmented} lost +0.8 ± " in text
            and "against a budget of 0.50 (2 of 3 seeds over)" in text)
    assert "Within it: baseline + post-hoc offsets (budget 0.5 pt) lost +0.3 ± " in text and "worst" not in text
    # a loss equal to the budget up to float rounding is within it
    exact = representation.budget_overshoot_table([_run(BASELINE, seed, 0.9) for seed in range(2)] + [
        _run(held, seed, 0.9 - 0.005, weights={"adjusts": "baseline", "stated_budget": 0.005}) for seed in range(2)])
    assert "No row went over its budget on average." in beyond.describe_budget_overshoot(exact)


def _redecided_study() -> list[dict]:
    """Four seeds, each shifting every row alike. Against baseline+posthoc, "a" gains 3.3 points of worst-class TPR
    (+0.1 of accuracy), "b" loses 1.7, "c" moves +-1 by seed, "d" gains 16.3 at -0.2 of accuracy; a post-hoc row of
    another budget is not of the comparison."""
    other_budget = {**POSTHOC_BUDGET, "max_accuracy_drop": 0.01}
    gains = {"a": (0.03, 0.001), "b": (-0.02, 0.0), "c": (None, 0.0), "d": (0.16, -0.002)}
    records = []
    for seed, shift in enumerate((0.0, 0.02, -0.01, 0.01)):
        records.append(_run(BASELINE, seed, 0.90 + shift, 0.50 + shift))
        records.append(_run(POSTHOC_BUDGET, seed, 0.897 + shift, 0.55 + shift))
        records.append(_run(other_budget, seed, 0.89 + shift, 0.60 + shift))
        for name, (gain, accuracy) in gains.items():
            gain = (0.01 if seed % 2 else -0.01) if gain is None else gain + 0.002 * seed
            trained = {"name": "baseline", "label": name}
            records.append(_run(trained, seed, 0.90 + shift, 0.50 + shift))
            records.append({**_run({**POSTHOC_BUDGET, "of": trained}, seed, 0.897 + accuracy + shift,
                                   0.55 + gain + shift)})
        records.append(_run({**other_budget, "of": {"name": "baseline", "label": "a"}}, seed, 0.88, 0.7))
    return records


def test_each_redecided_row_is_paired_with_redeciding_the_baseline_beside_the_bare_baseline():
    records = _redecided_study()
    reference = "baseline+posthoc-budget-drop0.005"
    table = representation.posthoc_vs_posthoc_table(records, reference).set_index("method")
    assert list(table.index) == [f"{name}+posthoc-budget-drop0.005" for name in "abcd"]
    a = table.loc["a+posthoc-budget-drop0.005"]
    assert a["seeds"] == 4 and a["d_worst_class_tpr"] == pytest.approx(0.033)
    assert a["d_accuracy"] == pytest.approx(0.001) and a["d_accuracy_ci"] == pytest.approx(0.0, abs=1e-12)
    a_changes = [0.03 + 0.002 * seed for seed in range(4)]
    assert a["d_worst_class_tpr_ci"] == pytest.approx(stats.mean_interval(a_changes)[1])
    bases = [0.55 + shift for shift in (0.0, 0.02, -0.01, 0.01)]
    assert a["p_worst_class_tpr"] == pytest.approx(
        stats.paired_p_value([b + c for b, c in zip(bases, a_changes)], bases))
    assert list(table["p_worst_class_tpr_holm"]) == pytest.approx(list(stats.holm(table["p_worst_class_tpr"])))
    assert table.loc["b+posthoc-budget-drop0.005", "d_worst_class_tpr"] == pytest.approx(-0.017)
    assert list(table["goal_met"]) == [False, False, False, True]
    # beside: the same rows against the bare baseline, from the paired table of every record
    bare = stats.paired_table(records).set_index("method")
    for method in table.index:
        for key in ("d_worst_class_tpr", "d_worst_class_tpr_ci", "p_worst_class_tpr_holm", "d_accuracy"):
            assert table.loc[method, f"vs_baseline_{key}"] == pytest.approx(bare.loc[method, key], nan_ok=True)
    assert a["vs_baseline_d_worst_class_tpr"] == pytest.approx(0.083)
    shown = beyond.formatted_posthoc_vs_posthoc(table.reset_index())
    assert shown["Δ worst-class TPR vs re-deciding the baseline (pts)"].iloc[0].startswith("+3.3 ± ")
    assert shown["Δ worst-class TPR vs baseline (pts)"].iloc[0].startswith("+8.3 ± ")
    with pytest.raises(ValueError, match="baseline_posthoc_label='baseline' is not allowed"):
        representation.posthoc_vs_posthoc_table(records, "baseline")
    with pytest.raises(ValueError, match="records of 2 datasets"):
        representation.posthoc_vs_posthoc_table(records + [{**records[0], "dataset": "other"}], reference)


def test_the_sentences_name_the_rows_that_beat_redeciding_the_baseline():
    records = _redecided_study()
    reference = "baseline+posthoc-budget-drop0.005"
    table = representation.posthoc_vs_posthoc_table(records, reference)
    text = beyond.describe_posthoc_vs_posthoc(table, reference)
    beat = text[text.index("Beat it"):text.index("Fell behind it")]
    behind = text[text.index("Fell behind it"):text.index("No difference shown")]
    assert "d+posthoc-budget-drop0.005 +16.3 ± " in beat and "a+posthoc-budget-drop0.005 +3.3 ± " in beat
    assert beat.index("d+posthoc") < beat.index("a+posthoc")  # the largest gain first
    assert "b+posthoc-budget-drop0.005 -1.7 ± " in behind and "a+posthoc" not in behind
    assert text.endswith("No difference shown for c+posthoc-budget-drop0.005.")
    assert "paired over 4 seeds, Holm over 4 rows" in text
    goal = beyond.goal_against_posthoc(table, reference)
    assert "met by d+posthoc-budget-drop0.005." in goal
    up = goal[goal.index("Worst-class TPR up"):]
    assert "d+posthoc-budget-drop0.005" in up and "a+posthoc-budget-drop0.005" in up and "b+posthoc" not in up
    paired = stats.paired_table(records)
    answer = beyond.answer(records, paired, [], "(shift)", "(goal)", table, reference)
    assert goal in answer and text in answer
    assert answer.index("(goal)") < answer.index(goal) < answer.index(text)
    assert "Goal against" not in beyond.answer(records, paired, [], "(shift)", "(goal)")
    with pytest.raises(ValueError, match="go together"):
        beyond.answer(records, paired, [], "(shift)", "(goal)", table)


def test_the_goal_statement_shares_a_gain_of_the_rows_own_ceiling_only():
    records = []
    for seed in range(3):
        records.append({**_run(BASELINE, seed, 0.90, 0.50), "ceiling": {"worst_class_tpr": 0.60}})
        records.append({**_run({"name": "baseline", "label": "own"}, seed, 0.90, 0.55 + 0.002 * seed),
                        "ceiling": {"worst_class_tpr": 0.70}})
    text = sentences.goal_statement(stats.paired_table(records), "tiny")
    assert "% of the baseline's ceiling" not in text
    assert "(9.8 points short of the gain; 26 % of its own ceiling of re-deciding)" in text
    without = [{key: value for key, value in record.items() if key != "ceiling" or record["method_label"] == "baseline"}
               for record in records]
    text = sentences.goal_statement(stats.paired_table(without), "tiny")
    assert "(9.8 points short of the gain)." in text
