"""lbw_utils.compare: across-seed intervals and the tables of the paper."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lbw_utils.compare import (
    SELECTION_METRICS,
    best_by_validation,
    is_reference,
    describe_change,
    goal_statement,
    mean_interval,
    method_table,
    paired_table,
    paired_tpr_change,
    pareto_front,
    run_table,
    save_paired_tables,
    save_tables,
    split_summary,
    to_latex,
    to_markdown,
)


@pytest.mark.parametrize("n", range(2, 11))
def test_mean_interval_matches_student_t(n):
    values = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    mean, half_width = mean_interval(values)
    assert mean == pytest.approx(values.mean(), abs=1e-15)
    low, high = stats.t.interval(0.95, df=n - 1, loc=values.mean(), scale=stats.sem(values))
    assert half_width == pytest.approx((high - low) / 2, rel=1e-9)


@pytest.mark.parametrize("n", [20, 31, 32, 45, 200])
def test_mean_interval_matches_student_t_for_many_seeds(n):
    values = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    _, half_width = mean_interval(values)
    expected = stats.t.ppf(0.975, n - 1) * stats.sem(values)
    assert half_width == pytest.approx(expected, rel=1e-9)


def test_mean_interval_edge_cases():
    assert mean_interval([0.5, math.nan, None, 0.7]) == mean_interval([0.5, 0.7])
    mean, half_width = mean_interval([0.25])
    assert mean == 0.25 and math.isnan(half_width)
    assert all(math.isnan(x) for x in mean_interval([]))
    assert all(math.isnan(x) for x in mean_interval([math.nan]))
    assert mean_interval([0.3, 0.3, 0.3]) == (pytest.approx(0.3), 0.0)


def record(method: str, seed: int, tpr: list[float], dataset: str = "fashion_mnist", seconds: float = 10.0) -> dict:
    mean = float(np.mean(tpr))
    return {
        "dataset": dataset,
        "method_label": method,
        "seed": seed,
        "test": {
            "accuracy": mean, "balanced_accuracy": mean, "tpr": tpr, "tpr_std": float(np.std(tpr)),
            "worst_class_tpr": min(tpr), "worst_class": f"class{int(np.argmin(tpr))}",
        },
        "train_seconds": seconds,
    }


BASE = {0: [0.9, 0.7, 0.5], 1: [0.95, 0.75, 0.6], 2: [0.92, 0.8, 0.55]}
STATIC = {0: [0.85, 0.75, 0.65], 1: [0.9, 0.8, 0.6], 2: [0.88, 0.8, 0.7]}


def study() -> list[dict]:
    # The weighted runs come first and the baseline last: the tables must not depend on record order.
    runs = [record("static", seed, tpr, seconds=12.0) for seed, tpr in STATIC.items()]
    runs += [record("ema", seed, [0.9, 0.72, 0.52]) for seed in (0, 1)]
    runs += [record("baseline", seed, tpr) for seed, tpr in BASE.items()]
    runs.append(record("baseline", 0, [0.5, 0.5], dataset="names"))
    return runs


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
    assert static["D_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem(d_values), rel=1e-3)
    assert static["train_seconds"] == 12.0
    accuracies = [np.mean(STATIC[s]) for s in STATIC]
    assert static["accuracy"] == pytest.approx(np.mean(accuracies))
    names = table[table.dataset == "names"]
    assert names["method"].tolist() == ["baseline"] and names["seeds"].tolist() == [1]
    assert math.isnan(names["accuracy_ci"].iloc[0])


def test_method_table_of_nothing_is_empty():
    assert len(method_table([])) == 0


def test_markdown_and_latex_contain_every_row():
    table = method_table([r for r in study() if r["dataset"] == "fashion_mnist"])
    markdown = to_markdown(table)
    lines = markdown.strip().splitlines()
    assert len(lines) == 2 + 3  # header, rule, one line per method
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0][:2] == ["method", "seeds"] and set(lines[1]) <= {"|", "-", ":"}
    assert cells[2][:2] == ["baseline", "3"]
    static_mean = table.set_index("method").loc["static", "accuracy"]
    assert f"{static_mean:.3f} ± " in markdown
    assert ["ema", "2"] in [row[:2] for row in cells]

    latex = to_latex(table, caption="Fashion-MNIST, 3 seeds")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert latex.count(rule) == 1
    assert latex.index(r"\toprule") < latex.index(r"\midrule") < latex.index("baseline") < latex.index(
        r"\bottomrule")
    assert r"$\pm$" in latex and "±" not in latex
    assert r"\caption{Fashion-MNIST, 3 seeds}" in latex
    assert r"\begin{tabular}{lrrrrrrr}" in latex
    for method in ("baseline", "static", "ema"):
        assert any(line.startswith(method + " & ") for line in latex.splitlines())


def test_latex_escapes_underscores():
    table = method_table([record("static_g2", 0, [0.8, 0.6]), record("baseline", 0, [0.9, 0.5])])
    latex = to_latex(table)
    assert r"static\_g2" in latex and "static_g2" not in latex


def test_save_tables_writes_three_formats(tmp_path):
    table = method_table(study())
    paths = save_tables(table, tmp_path / "tables" / "summary", caption="all")
    assert set(paths) == {"md", "csv", "tex"}
    assert paths["md"].read_text() == to_markdown(table)
    assert paths["tex"].read_text() == to_latex(table, "all")
    back = pd.read_csv(paths["csv"])
    assert back["method"].tolist() == table["method"].tolist()
    np.testing.assert_allclose(back["D"].to_numpy(), table["D"].to_numpy(), equal_nan=True)
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["summary.csv", "summary.md", "summary.tex"]


# --------------------------------------------------------------------------
# Paired changes, the Pareto front, the goal, selection on validation
# --------------------------------------------------------------------------

def paired_study() -> list[dict]:
    """Three seeds; each seed shifts every method by the same amount (seed noise that pairing removes)."""
    records = []
    for seed, shift in enumerate((0.0, 0.05, -0.05)):
        records.append(record("baseline", seed, [0.99 + shift, 0.99 + shift, 0.6 + shift]))
        records.append(record("strong", seed, [0.85 + shift, 0.85 + shift, 0.78 + shift]))  # +18 worst, -3.3 acc
        records.append(record("gentle", seed, [0.99 + shift, 0.99 + shift, 0.64 + shift]))  # +4 worst, +1.3 acc
        records.append(record("worse", seed, [0.97 + shift, 0.97 + shift, 0.55 + shift]))   # dominated
    return records


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


def test_pareto_front_and_goal_statement():
    ties = pd.DataFrame({"accuracy": [0.9, 0.91, 0.91], "worst_class_tpr": [0.8, 0.7, 0.7]})
    assert pareto_front(ties).tolist() == [True, True, True]  # equal points do not dominate each other
    frame = pd.DataFrame({"accuracy": [0.9, 0.91, 0.89], "worst_class_tpr": [0.8, 0.7, 0.75]})
    assert pareto_front(frame).tolist() == [True, True, False]
    text = goal_statement(paired_table(paired_study()), "fashion_mnist")
    assert "Not met." in text and "gentle" in text and "within the accuracy budget" in text
    assert "No method dominates all others" in text


def test_goal_met_when_the_gain_is_large_and_accuracy_kept():
    records = []
    for seed, shift in enumerate((0.0, 0.02, -0.02)):
        records.append(record("baseline", seed, [0.95 + shift, 0.6 + shift]))
        records.append(record("fixer", seed, [0.95 + shift, 0.8 + shift]))
    table = paired_table(records)
    assert table.set_index("method").loc["fixer", "goal_met"]
    text = goal_statement(table, "fashion_mnist")
    assert "Met by fixer." in text and "fixer dominates every other method" in text


def test_paired_tables_are_written(tmp_path):
    paths = save_paired_tables(paired_table(paired_study()), tmp_path / "paired")
    assert "Pareto front" in paths["md"].read_text() and r"$\pm$" in paths["tex"].read_text()
    assert r"$\Delta$ accuracy (pts)" in paths["tex"].read_text() and "Δ" not in paths["tex"].read_text()
    assert pd.read_csv(paths["csv"])["method"].tolist()[0] == "baseline"


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


def test_goal_statement_names_the_largest_gain_beyond_the_budget_and_how_far_it_is():
    text = goal_statement(paired_table(paired_study()), "fashion_mnist")
    # strong: +18 worst-class points, but 3.3 points of accuracy lost: 2.8 over the 0.5-point budget
    assert "Largest worst-class gain at any accuracy: strong, +18.0 ± 0.0 points" in text
    assert "0.0 points short of the gain, 2.8 points over the accuracy budget" in text
    assert "gentle, +4.0 ± 0.0 points of worst-class TPR" in text and "11.0 points short of the gain" in text


def test_describe_change_is_computed_from_the_paired_table():
    table = paired_table(paired_study())
    sentence = describe_change(table, "gentle")
    assert sentence.startswith("gentle (3 seeds): +4.0 ± 0.0 points of worst-class TPR at +1.3 ± 0.0 points")
    assert "seed-to-seed std: 5.0 points of worst-class TPR" in sentence and "on the Pareto front" in sentence
    assert "dominated" in describe_change(table, "worse")
    with pytest.raises(ValueError, match="method='nope' is not in the paired table"):
        describe_change(table, "nope")


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
    from lbw_utils import compare

    first, second = [], []
    for seed, tpr in BASE.items():
        first += [record("baseline", seed, tpr), record("lifts", seed, [tpr[0], tpr[1], tpr[2] + 0.1 + 0.01 * seed]),
                  record("same", seed, [tpr[0], tpr[1], tpr[2] + 0.05 * (seed % 2)])]
        bag = [t - 0.02 for t in tpr]
        second += [record("baseline", seed, bag), record("lifts", seed, bag),
                   record("same", seed, [bag[0], bag[1], bag[2] + 0.05 * (seed % 2)])]
    table = compare.family_difference(first, second, ["lifts", "same", "absent"])
    assert list(table["method"]) == ["lifts", "same"] and set(table["seeds"]) == {3}
    lifts = table.set_index("method").loc["lifts"]
    assert lifts["diff_worst_class_tpr"] == pytest.approx(0.11) and lifts["d_worst_class_tpr_second"] == 0
    assert table.set_index("method").loc["same", "diff_worst_class_tpr"] == pytest.approx(0)
    text = compare.family_difference_statement(table, "the recurrent network", "the n-gram bag", "fold")
    assert "paired by fold over 3 folds, 2 methods" in text
    assert ("In worst-class TPR, different (the recurrent network minus the n-gram bag): lifts +11.0 ± 2.5 points "
            "(Holm-adjusted p 0.003)") in text
    assert "no difference shown: same." in text
    # an interval away from 0 whose Holm-adjusted p is not below 0.05 is named apart, not as a difference
    loose = table.assign(p_worst_class_tpr_holm=[0.2, 1.0])
    assert ("interval away from 0 but not after Holm's adjustment: lifts +11.0 ± 2.5 points (Holm-adjusted p 0.200)"
            in compare.family_difference_statement(loose, "a", "b"))
    assert "over 3 seeds, 1 method:" in compare.family_difference_statement(table.iloc[:1], "a", "b")
    assert compare.family_difference_statement(table.iloc[0:0], "a", "b") == "No weighting ran on both a and b."
