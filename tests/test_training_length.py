"""The training-length study: budget checks, run identity per budget, paired tables, resuming; its table, answer
and figures (lbw_utils.reporting.length)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lbw_utils.reporting import length
from lbw_utils.studies import training_length
from lbw_utils.runs.experiments import BASELINE, Settings


@pytest.mark.parametrize("budgets, message", [
    ([], "empty"),
    ([4, 0], "not a positive whole number"),
    ([4, 8, 4], "repeats [4]"),
    ([4, 2.5], "not a positive whole number"),
    ([True, 4], "not a positive whole number"),
    ("4, 8", "must be a list"),
    (8, "must be a list"),
])
def test_bad_budgets_are_refused_naming_the_value(budgets, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        training_length.check_budgets(budgets)


def test_budgets_are_sorted():
    assert training_length.check_budgets([16, 4, 8]) == [4, 8, 16]


def test_unknown_arm_is_refused():
    with pytest.raises(ValueError, match="not known"):
        training_length.check_arms(["no-dropout"])
    assert training_length.check_arms(["main", "augment"]) == ["augment"]


def test_plan_runs_ladder_arms_at_every_budget_and_the_others_at_the_longest():
    static = {"name": "static", "scheme": "mean-ratio", "gamma": 4}
    ema = {"name": "ema", "alpha": 0.01, "normalize": True}
    steps = training_length.plan([4, 8], ["no-weight-decay", "no-label-smoothing", "plain", "augment"], [static, ema])
    assert [(arm, budget) for arm, budget, _ in steps] == [
        ("main", 4), ("main", 8), ("no-weight-decay", 8), ("no-label-smoothing", 4), ("no-label-smoothing", 8),
        ("plain", 4), ("plain", 8), ("augment", 8)]
    assert steps[0][2] == [BASELINE, static, ema]
    assert steps[2][2] == [BASELINE, static]  # the regularisation arms ask about the Q&A question's recipe
    assert steps[5][2] == [BASELINE, static]
    assert steps[-1][2] == [BASELINE]
    assert training_length.ARMS["plain"] == {"label_smoothing": 0.0, "weight_decay": 0.0}


def _record(arm, budget, seed, method, accuracy, worst, train_tpr=(1.0, 0.9), margin=(3.0, 1.0)):
    return {"arm": arm, "budget": budget, "seed": seed, "method_label": method, "classes": ["a", "b"],
            "dataset": "toy", "val": {"tpr": [0.9, 0.6]},
            "test": {"accuracy": accuracy, "worst_class_tpr": worst, "tpr": [0.95, worst]},
            "history": {"train_tpr": [[0.5, 0.4], list(train_tpr)], "train_margin": [[0.0, 0.0], list(margin)],
                        "train_subset_ce": [[1.0, 1.0], [0.1, 0.4]]}}


def test_ladder_table_pairs_each_run_with_the_same_budgets_baseline():
    records = []
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        records += [_record("main", 4, seed, "baseline", 0.90 + shift, 0.70 + shift),
                    _record("main", 4, seed, "static", 0.89 + shift, 0.80 + shift),
                    _record("main", 32, seed, "baseline", 0.92 + shift, 0.72 + shift),
                    _record("main", 32, seed, "static", 0.92 + shift, 0.73 + shift, margin=(2.5, 1.5 + shift))]
    table = training_length.ladder_table(records, "b")
    row = table[(table["method"] == "static") & (table["budget"] == 4)].iloc[0]
    # The seeds differ by a common shift, which pairing removes: the change is exact, the interval zero.
    assert row["d_worst_class_tpr"] == pytest.approx(0.10)
    assert row["d_worst_class_tpr_ci"] == pytest.approx(0.0, abs=1e-12)
    assert row["d_accuracy"] == pytest.approx(-0.01)
    assert row["focus_train_tpr"] == pytest.approx(0.9)
    late = table[(table["method"] == "static") & (table["budget"] == 32)].iloc[0]
    assert late["d_worst_class_tpr"] == pytest.approx(0.01)
    assert late["d_focus_train_margin"] == pytest.approx(0.52)  # 0.5 + the mean shift 0.02
    text = length.answer(table, "static", "b")
    assert "+10.0 -> +1.0 points, intervals apart" in text and "4 epochs +10.0 ± 0.0" in text
    assert "for TPR weights (Q&A recipe), γ = 4 against" in text  # the display name of the label "static"
    assert "margin 1.00 against 1.52" in text and "paired +0.52" in text
    shown = length.formatted_ladder(table, "b")
    assert list(shown["epochs"]) == [4, 32, 4, 32]


def test_focus_class_is_chosen_on_validation_and_checked():
    records = [_record("main", 4, 0, "baseline", 0.9, 0.7), _record("main", 8, 0, "baseline", 0.9, 0.7)]
    assert training_length.focus_class(records) == "b"  # val TPR 0.6 < 0.9
    assert training_length.focus_class(records, "A") == "a"
    with pytest.raises(ValueError, match="not a class"):
        training_length.focus_class(records, "shirt")


def test_each_budget_is_its_own_run_and_a_rerun_trains_nothing(tmp_path, tiny_data, monkeypatch):
    data = tiny_data(num_classes=3, per_class={"train": 30, "val": 12, "test": 12})
    monkeypatch.setattr("lbw_utils.runs.experiments.load_data", lambda options, seed: data)
    params = {"dataset": "fashion_mnist", "seeds": [0], "batch_size": 16, "model_size": "tiny",
              "augment": False, "results_dir": str(tmp_path), "track_train_tpr": True}
    methods = [{"name": "static", "scheme": "cdb", "tau": 1}]
    records = training_length.run_ladder(params, methods, [1, 2], ["no-weight-decay"], progress=False)
    assert sorted({(r["arm"], r["budget"]) for r in records}) == [("main", 1), ("main", 2), ("no-weight-decay", 2)]
    assert {r["parameters"]["train"]["epochs"] for r in records if r["arm"] == "main"} == {1, 2}
    assert all(r["parameters"]["train"]["weight_decay"] == 0.0 for r in records if r["arm"] == "no-weight-decay")
    loaded = training_length.load_ladder(tmp_path)
    assert len(loaded) == len(records) == 6
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "length").rglob("*.json")}
    training_length.run_ladder(params, methods, [1, 2], ["no-weight-decay"], progress=False)
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "length").rglob("*.json")}
    table = training_length.ladder_table(loaded, "class1")
    assert not math.isnan(table["focus_train_tpr"].iloc[0])


def test_a_bad_option_stops_the_ladder_before_anything_trains(tmp_path):
    params = {"dataset": "fashion_mnist", "seeds": [0], "optimizer": "adam", "results_dir": str(tmp_path)}
    with pytest.raises(ValueError, match="optimizer"):
        training_length.run_ladder(params, [], [1, 2], [], progress=False)
    assert not (tmp_path / "length").exists() or not any((tmp_path / "length").rglob("*.json"))


def test_settings_accept_every_arm():
    for arm, options in training_length.ARMS.items():
        Settings.from_params({"dataset": "fashion_mnist", **options})


def test_outputs_draw_the_ladder_arms_and_write_the_generated_answer(tmp_path):
    records = []
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        for arm in ("main", "no-label-smoothing"):
            for budget in (4, 8):
                records += [_record(arm, budget, seed, "baseline", 0.90 + shift, 0.70 + shift),
                            _record(arm, budget, seed, "static", 0.90 + shift, 0.75 + shift, margin=(3.0, 1.2))]
    length.write_ladder_outputs(records, tmp_path, "b")
    assert (tmp_path / "figures" / "toy" / "length_arms.png").stat().st_size > 0
    answer = (tmp_path / "tables" / "toy" / "length_answer.md").read_text()
    assert answer.startswith("Paired change of the worst-class TPR for TPR weights (Q&A recipe), γ = 4")
    assert "arm 'no-label-smoothing' (label smoothing 0.0): 4 epochs +5.0 ± 0.0, 8 epochs +5.0" in answer


def test_the_augmentation_line_lists_each_class_most_hurt_first():
    by_arm = {"main": [[0.9, 0.5], [0.7, 0.7]], "augment": [[0.8, 0.7], [0.7, 0.7]]}
    text = length.augmentation_change({arm: np.array(rows) for arm, rows in by_arm.items()}, ["a", "b"])
    assert text == "change of test TPR with augmentation (points): a -5.0, b +10.0"
