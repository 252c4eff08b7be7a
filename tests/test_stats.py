"""lbw_utils.stats: across-seed intervals, paired changes, Holm, the Pareto front, the goal and selection on
validation; numbers only (the words are lbw_utils.reporting's, tested in test_reporting.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from lbw_utils.stats import (
    SELECTION_METRICS,
    best_by_validation,
    family_difference,
    group_tpr_change,
    is_reference,
    mean_interval,
    method_table,
    paired_table,
    paired_tpr_change,
    pareto_front,
    run_table,
    split_summary,
    weight_trajectories,
)
from stats_records import BASE, STATIC, paired_study, record, study, two_families, with_trajectory


@pytest.mark.parametrize("n", range(2, 11))
def test_mean_interval_matches_student_t(n):
    values = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    mean, half_width = mean_interval(values)
    assert mean == pytest.approx(values.mean(), abs=1e-15)
    low, high = scipy_stats.t.interval(0.95, df=n - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert half_width == pytest.approx((high - low) / 2, rel=1e-9)


@pytest.mark.parametrize("n", [20, 31, 32, 45, 200])
def test_mean_interval_matches_student_t_for_many_seeds(n):
    values = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    _, half_width = mean_interval(values)
    expected = scipy_stats.t.ppf(0.975, n - 1) * scipy_stats.sem(values)
    assert half_width == pytest.approx(expected, rel=1e-9)


def test_mean_interval_edge_cases():
    assert mean_interval([0.5, math.nan, None, 0.7]) == mean_interval([0.5, 0.7])
    mean, half_width = mean_interval([0.25])
    assert mean == 0.25 and math.isnan(half_width)
    assert all(math.isnan(x) for x in mean_interval([]))
    assert all(math.isnan(x) for x in mean_interval([math.nan]))
    assert mean_interval([0.3, 0.3, 0.3]) == (pytest.approx(0.3), 0.0)


def test_run_table_computes_d_against_the_same_seeds_baseline():
    table = run_table(study())
    assert len(table) == 9
    for seed in BASE:
        row = table[(table.method == "static") & (table.seed == seed)].iloc[0]
        expected = np.var(BASE[seed]) - np.var(STATIC[seed])
        assert row["D"] == pytest.approx(expected, abs=1e-12)
        assert row["accuracy"] == pytest.approx(np.mean(STATIC[seed]))
        assert row["train_seconds"] == 12.0
    assert (table[table.method == "baseline"]["D"] == 0).all()
    assert table[table.method == "ema"].set_index("seed").loc[1, "D"] == pytest.approx(
        np.var(BASE[1]) - np.var([0.9, 0.72, 0.52]))


def test_run_table_without_a_baseline_gives_nan_d():
    table = run_table([record("static", 5, [0.8, 0.6])])
    assert math.isnan(table.loc[0, "D"])


def test_method_table_puts_the_baseline_first_and_counts_seeds():
    table = method_table(study())
    fashion = table[table.dataset == "fashion_mnist"]
    assert fashion["method"].tolist()[0] == "baseline"
    assert sorted(fashion["method"].tolist()) == ["baseline", "ema", "static"]
    seeds = dict(zip(fashion["method"], fashion["seeds"]))
    assert seeds == {"baseline": 3, "static": 3, "ema": 2}
    static = fashion.set_index("method").loc["static"]
    d_values = [np.var(BASE[s]) - np.var(STATIC[s]) for s in BASE]
    assert static["D"] == pytest.approx(np.mean(d_values))
    assert static["D_ci"] == pytest.approx(scipy_stats.t.ppf(0.975, 2) * scipy_stats.sem(d_values), rel=1e-3)
    assert static["train_seconds"] == 12.0
    accuracies = [np.mean(STATIC[s]) for s in STATIC]
    assert static["accuracy"] == pytest.approx(np.mean(accuracies))
    names = table[table.dataset == "names"]
    assert names["method"].tolist() == ["baseline"] and names["seeds"].tolist() == [1]
    assert math.isnan(names["accuracy_ci"].iloc[0])


def test_method_table_of_nothing_is_empty():
    assert len(method_table([])) == 0


def test_paired_table_removes_the_shared_seed_noise():
    table = paired_table(paired_study()).set_index("method")
    assert table.loc["strong", "d_worst_class_tpr"] == pytest.approx(0.18)
    assert table.loc["strong", "d_worst_class_tpr_ci"] == pytest.approx(0.0, abs=1e-9)  # paired: exact
    assert table.loc["strong", "d_accuracy"] == pytest.approx((0.85 + 0.85 + 0.78 - 0.99 - 0.99 - 0.6) / 3)
    assert table.loc["baseline", "baseline_worst_class_tpr_std"] == pytest.approx(0.05)  # the noise to beat
    assert table.loc["baseline", "d_accuracy"] == 0.0
    assert bool(table.loc["worse", "pareto"]) is False
    assert bool(table.loc["strong", "pareto"]) and bool(table.loc["gentle", "pareto"])
    assert not table["goal_met"].any()  # strong loses 3.3 points of accuracy: over the 0.5 budget
    assert bool(table.loc["baseline", "pareto"]) is False  # gentle is better on both


def test_pareto_front_keeps_ties_and_drops_dominated_points():
    ties = pd.DataFrame({"accuracy": [0.9, 0.91, 0.91], "worst_class_tpr": [0.8, 0.7, 0.7]})
    assert pareto_front(ties).tolist() == [True, True, True]  # equal points do not dominate each other
    frame = pd.DataFrame({"accuracy": [0.9, 0.91, 0.89], "worst_class_tpr": [0.8, 0.7, 0.75]})
    assert pareto_front(frame).tolist() == [True, True, False]


def test_goal_met_when_the_gain_is_large_and_accuracy_kept():
    records = []
    for seed, shift in enumerate((0.0, 0.02, -0.02)):
        records.append(record("baseline", seed, [0.95 + shift, 0.6 + shift]))
        records.append(record("fixer", seed, [0.95 + shift, 0.8 + shift]))
    assert paired_table(records).set_index("method").loc["fixer", "goal_met"]


class PoisonedTestSplit(dict):
    """A record whose test split must not be read."""

    def __getitem__(self, key):
        if key in ("test", "best_val"):
            raise AssertionError(f"selection read record[{key!r}]")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def test_best_by_validation_reads_only_the_validation_split():
    records = []
    for seed in range(3):
        for method, val_worst in (("baseline", 0.6), ("a", 0.7), ("b", 0.75), ("baseline+posthoc-worst", 0.72)):
            records.append(PoisonedTestSplit({"method_label": method, "seed": seed, "dataset": "d",
                                                "val": {"worst_class_tpr": val_worst + 0.01 * seed}}))
    assert best_by_validation(records) == "b"
    assert best_by_validation(records, exclude=("baseline", "b")) == "baseline+posthoc-worst"
    with pytest.raises(ValueError, match="no records"):
        best_by_validation(records[:1])


def test_checkpoint_choice_reads_the_best_validation_epoch_where_there_is_one():
    trained = record("cdb", 0, [0.5, 0.4])
    trained["best_val"] = {"epoch": 1, "test": {**trained["test"], "accuracy": 0.9}, "val": trained["test"]}
    posthoc = record("baseline+posthoc-worst", 0, [0.8, 0.7])
    assert split_summary(trained, "test", "best_val")["accuracy"] == 0.9
    assert split_summary(trained, "test")["accuracy"] == pytest.approx(0.45)
    assert split_summary(posthoc, "test", "best_val") is posthoc["test"]
    with pytest.raises(ValueError, match="checkpoint="):
        split_summary(trained, "test", "best")
    table = method_table([trained, posthoc], checkpoint="best_val").set_index("method")
    assert table.loc["cdb", "accuracy"] == 0.9


def test_paired_tables_follow_the_checkpoint_choice():
    records = paired_study()
    for item in records:
        item["classes"] = ["shoe", "bag", "shirt"]
        if item["method_label"] == "strong":  # its best-validation epoch kept the baseline's accuracy
            tpr = [0.99, 0.99, 0.78]
            item["best_val"] = {"epoch": 1, "val": item["test"],
                                "test": {**item["test"], "tpr": tpr, "accuracy": float(np.mean(tpr)),
                                         "worst_class_tpr": 0.78}}
    last = paired_table(records).set_index("method")
    best = paired_table(records, checkpoint="best_val").set_index("method")
    assert not last.loc["strong", "goal_met"] and best.loc["strong", "goal_met"]
    assert best.loc["gentle", "d_worst_class_tpr"] == pytest.approx(last.loc["gentle", "d_worst_class_tpr"])
    change = paired_tpr_change(records, "strong", checkpoint="best_val")
    assert change["mean change"].tolist() == pytest.approx([0.0, 0.0, 0.18])
    assert change["class"].tolist() == ["shoe", "bag", "shirt"]


def test_best_by_validation_refuses_unknown_metrics_and_takes_one_label_as_a_string():
    records = [PoisonedTestSplit({"method_label": m, "seed": 0, "dataset": "d", "val": {"accuracy": a}})
               for m, a in (("baseline", 0.9), ("base", 0.8))]
    assert best_by_validation(records, exclude="baseline", metric="accuracy") == "base"  # not a substring test
    with pytest.raises(ValueError, match=r"metric='tpr_std' is not allowed: expected one of"):
        best_by_validation(records, metric="tpr_std")
    assert "worst_class_tpr" in SELECTION_METRICS


def test_paired_table_pairs_only_common_seeds_and_skips_datasets_without_a_baseline():
    records = [record("baseline", 0, [0.9, 0.6]), record("baseline", 1, [0.8, 0.5]),
               record("method", 1, [0.8, 0.7]), record("method", 2, [0.1, 0.1]),  # seed 2 has no baseline
               record("method", 0, [0.9, 0.9], dataset="names5")]  # a dataset with no baseline at all
    table = paired_table(records)
    assert table["dataset"].unique().tolist() == ["fashion_mnist"]
    row = table.set_index("method").loc["method"]
    assert row["seeds"] == 1 and row["d_worst_class_tpr"] == pytest.approx(0.2)
    assert math.isnan(row["d_worst_class_tpr_ci"])  # one pair: no interval
    assert row["worst_class_tpr"] == pytest.approx(0.7)  # the mean over the paired seeds only


def test_reference_rows_are_never_the_best_weighting():
    def run(method_label, name, val_worst, **extra):
        return PoisonedTestSplit({"method_label": method_label, "method": {"name": name, **extra}, "seed": 0,
                                  "dataset": "names5", "val": {"worst_class_tpr": val_worst}})

    records = [run("baseline", "baseline", 0.4), run("author-lstm", "baseline", 0.9, label="author-lstm"),
               run("ngram-logreg-C3.0", "ngram-logreg", 0.8, C=3.0), run("ema-alpha0.01", "ema", 0.5)]
    assert [is_reference(r) for r in records] == [True, True, True, False]
    assert best_by_validation(records) == "ema-alpha0.01"
    assert best_by_validation(records, weightings_only=False) == "author-lstm"


def test_family_difference_pairs_each_familys_change_by_seed():
    """A weighting that raises the worst class by 10 points on one family and not at all on the other acts
    differently; one that does the same on both shows no difference; a method one family lacks is left out."""
    first, second = two_families()
    table = family_difference(first, second, ["lifts", "same", "absent"])
    assert list(table["method"]) == ["lifts", "same"] and set(table["seeds"]) == {3}
    lifts = table.set_index("method").loc["lifts"]
    assert lifts["diff_worst_class_tpr"] == pytest.approx(0.11) and lifts["d_worst_class_tpr_second"] == 0
    assert lifts["p_worst_class_tpr_holm"] < 0.05
    assert table.set_index("method").loc["same", "diff_worst_class_tpr"] == pytest.approx(0)


def test_group_tpr_change_is_paired_on_the_group_mean():
    classes = ["british", "american", "german"]

    def run(label, seed, tpr):
        return {"method_label": label, "seed": seed, "dataset": "names5", "classes": classes, "test": {"tpr": tpr}}

    records = [run("baseline", 0, [0.5, 0.4, 0.9]), run("baseline", 1, [0.6, 0.3, 0.9]),
               run("ema", 0, [0.6, 0.5, 0.8]), run("ema", 1, [0.7, 0.4, 0.9])]
    table = group_tpr_change(records, [["british", "american"], ["german", "british"]], ["ema"])
    assert table[["group", "method"]].values.tolist() == [["british, american", "baseline"],
                                                          ["british, american", "ema"],
                                                          ["german, british", "baseline"], ["german, british", "ema"]]
    first = table.set_index(["group", "method"]).loc["british, american"]
    assert first.loc["baseline", "tpr"] == pytest.approx(0.45) and math.isnan(first.loc["baseline", "d_pts"])
    assert first.loc["ema", "d_pts"] == pytest.approx(10.0)  # +10 points of the group mean on both seeds
    assert first.loc["ema", "d_pts_ci"] == pytest.approx(0.0, abs=1e-9)
    assert first.loc["ema", "tpr"] == pytest.approx(0.55)


def test_weight_trajectories_count_the_updates_that_zeroed_a_class():
    records = [with_trajectory("cdb", 0, [[2.0, 0.5, 0.5], [3.0, 0.0, 0.0]], tau=[0.5]),
               with_trajectory("cdb", 1, [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.5, 1.5]], tau=[0.7]),
               record("cdb", 2, [0.5, 0.5]), with_trajectory("ema", 0, [[1.0, 1.0]])]
    found = weight_trajectories(records, "cdb")
    assert found["seeds"] == 2 and found["updates"] == 5 and found["zero_updates"] == 2
    assert found["first_zero"] == [2, 3]  # 1-based: seed 0 after update 2, seed 1 after update 3
    assert found["largest"].tolist() == [2.0, 1.0] and found["largest_share"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert found["tau"] == pytest.approx(0.6)
    assert weight_trajectories(records, "ema")["tau"] is None
    assert weight_trajectories(records, "focal") is None
