"""lbw_utils.compare: across-seed intervals and the tables of the paper."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lbw_utils.compare import mean_interval, method_table, run_table, save_tables, to_latex, to_markdown


@pytest.mark.parametrize("n", range(2, 11))
def test_mean_interval_matches_student_t(n):
    values = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    mean, half_width = mean_interval(values)
    assert mean == pytest.approx(values.mean(), abs=1e-15)
    low, high = stats.t.interval(0.95, df=n - 1, loc=values.mean(), scale=stats.sem(values))
    assert half_width == pytest.approx((high - low) / 2, rel=1e-3)  # the t table has 4 significant digits


@pytest.mark.parametrize("n", [20, 31, 32, 45, 200])
def test_mean_interval_matches_student_t_for_many_seeds(n):
    values = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    _, half_width = mean_interval(values)
    expected = stats.t.ppf(0.975, n - 1) * stats.sem(values)
    assert half_width == pytest.approx(expected, rel=1e-3)


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
    assert lines[0].startswith("| method | seeds |") and set(lines[1]) <= {"|", "-"}
    assert lines[2].startswith("| baseline | 3 |")
    static_mean = table.set_index("method").loc["static", "accuracy"]
    assert f"{static_mean:.3f} ± " in markdown
    assert "| ema | 2 |" in markdown

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
