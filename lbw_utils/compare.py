"""Across-seed comparison of methods: mean and 95 % interval, tables in three formats.

The interval is Student's t interval of the mean over seeds (seeds are the
independent replicates: each reruns the split, the initialisation and the batch
order). With 3 seeds t(0.975, 2) = 4.30, so intervals are honest and wide.

Methods are compared with the *same seed's* baseline (:func:`paired_table`): the
split, initialisation and batch order cancel. Tables report the test split; the
only function that picks a method, :func:`best_by_validation`, reads the
validation split only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from lbw_utils.ceiling import CEILING_LABEL
from lbw_utils.files import atomic_write_text
from lbw_utils.methods import METHODS
from lbw_utils.metrics import tpr_variance_reduction

METRICS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "tpr_std": "TPR std",
    "worst_class_tpr": "worst-class TPR",
    "D": "D = Var(s) - Var(s')",
}


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t interval (NaN half-width for a single value)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    quantile = scipy.stats.t.ppf(0.975, len(values) - 1)
    return float(values.mean()), float(quantile * values.std(ddof=1) / math.sqrt(len(values)))


CHECKPOINTS = ("last", "best_val")


def split_summary(record: dict, split: str, checkpoint: str = "last") -> dict:
    """A record's metrics on ``split`` at the last epoch, or at the best-validation epoch where it has one
    (post-hoc runs have none: they adjust a finished run, so their last is all there is)."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint={checkpoint!r} is not allowed: expected one of {CHECKPOINTS}")
    if checkpoint == "best_val" and record.get("best_val"):
        return record["best_val"][split]
    return record[split]


def run_table(records: list[dict], baseline_label: str = "baseline", checkpoint: str = "last") -> pd.DataFrame:
    """One row per run: test metrics, and D against the baseline run of the same seed."""
    baselines = {(r["dataset"], r["seed"]): r for r in records if r["method_label"] == baseline_label}
    rows = []
    for record in records:
        test = split_summary(record, "test", checkpoint)
        baseline = baselines.get((record["dataset"], record["seed"]))
        rows.append({
            "dataset": record["dataset"],
            "method": record["method_label"],
            "seed": record["seed"],
            **{key: test[key] for key in METRICS if key != "D"},
            "D": (tpr_variance_reduction(split_summary(baseline, "test", checkpoint)["tpr"], test["tpr"])
                  if baseline else math.nan),
            "worst_class": test["worst_class"],
            "train_seconds": record.get("train_seconds", math.nan),
            # the ceiling of re-deciding (lbw_utils.ceiling): a reference beside the run, never a method
            "ceiling_worst_class_tpr": (record.get("ceiling") or {}).get("worst_class_tpr", math.nan),
        })
    # Named columns even with no records, so method_table can group an empty study.
    columns = ["dataset", "method", "seed", *(key for key in METRICS if key != "D"), "D", "worst_class",
               "train_seconds", "ceiling_worst_class_tpr"]
    return pd.DataFrame(rows, columns=columns)


def method_table(records: list[dict], baseline_label: str = "baseline", checkpoint: str = "last") -> pd.DataFrame:
    """Per (dataset, method): mean and 95 % half-width of each metric, and the seed count."""
    runs = run_table(records, baseline_label, checkpoint)
    rows = []
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=False):
        row = {"dataset": dataset, "method": method, "seeds": len(group)}
        for key in METRICS:
            row[key], row[f"{key}_ci"] = mean_interval(group[key])
        row["train_seconds"] = float(group["train_seconds"].mean())
        rows.append(row)
    return _baseline_first(pd.DataFrame(rows), baseline_label)


def _baseline_first(table: pd.DataFrame, baseline_label: str) -> pd.DataFrame:
    """Rows by dataset, the baseline first within each; the other rows keep their order."""
    if table.empty:
        return table
    later = table["method"].ne(baseline_label)
    return table.assign(_order=later).sort_values(["dataset", "_order"], kind="stable").drop(
        columns="_order").reset_index(drop=True)


def mean_interval_text(mean: float, half_width: float, digits: int = 3) -> str:
    """``mean ± half-width`` (just the mean without an interval, "–" without a mean)."""
    if math.isnan(mean):
        return "–"
    if math.isnan(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable cells ``mean ± half-width``, one column per metric."""
    shown = pd.DataFrame({"method": table["method"], "seeds": table["seeds"]})
    for key, title in METRICS.items():
        digits = 4 if key == "D" else 3
        shown[title] = [mean_interval_text(m, h, digits) for m, h in zip(table[key], table[f"{key}_ci"])]
    shown["train s"] = [f"{value:.1f}" for value in table["train_seconds"]]
    return shown


def to_markdown(table: pd.DataFrame) -> str:
    return formatted(table).to_markdown(index=False) + "\n"


def _latex_cell(value) -> str:
    # pdflatex takes neither the Unicode signs nor bare underscores and percent signs.
    return str(value).replace("_", r"\_").replace("%", r"\%").replace("±", r"$\pm$").replace("Δ", r"$\Delta$")


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A ``booktabs`` table; ``±`` becomes ``$\\pm$``, underscores and ``%`` are escaped."""
    return _latex(formatted(table), caption)


def _latex(shown: pd.DataFrame, caption: str = "") -> str:
    shown = shown.map(_latex_cell)
    shown.columns = [_latex_cell(column) for column in shown.columns]
    return shown.to_latex(index=False, caption=_latex_cell(caption) if caption else None, escape=False,
                          column_format="l" + "r" * (len(shown.columns) - 1), position="t")


def save_tables(table: pd.DataFrame, stem: str | Path, caption: str = "") -> dict[str, Path]:
    """Write ``stem.md`` (formatted), ``stem.csv`` (raw numbers) and ``stem.tex``."""
    return _write_tables(formatted(table), table, stem, caption)


def _write_tables(shown: pd.DataFrame, raw: pd.DataFrame, stem: str | Path, caption: str) -> dict[str, Path]:
    stem = Path(stem)
    paths = {"md": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv"), "tex": stem.with_suffix(".tex")}
    atomic_write_text(paths["md"], shown.to_markdown(index=False) + "\n")
    atomic_write_text(paths["csv"], raw.to_csv(index=False))
    atomic_write_text(paths["tex"], _latex(shown, caption))
    return paths


def tpr_by_seed(records: list[dict], method: str, split: str = "test",
                checkpoint: str = "last") -> tuple[list[int], np.ndarray]:
    """Seeds and the ``[seeds, C]`` TPR matrix of one method, ordered by seed."""
    chosen = sorted((r for r in records if r["method_label"] == method), key=lambda r: r["seed"])
    return [r["seed"] for r in chosen], np.array([split_summary(r, split, checkpoint)["tpr"] for r in chosen],
                                                 dtype=float)


def paired_tpr_change(records: list[dict], method: str, baseline: str = "baseline",
                      checkpoint: str = "last") -> pd.DataFrame:
    """Per class: mean change of test TPR against the same seed's baseline, its 95 % interval,
    and the baseline's own seed-to-seed standard deviation (the noise to beat)."""
    treated = dict(zip(*tpr_by_seed(records, method, checkpoint=checkpoint)))
    base = dict(zip(*tpr_by_seed(records, baseline, checkpoint=checkpoint)))
    common = sorted(set(treated) & set(base))
    if not common:
        raise ValueError(f"no seed has both a '{method}' and a '{baseline}' record")
    change = np.array([treated[seed] - base[seed] for seed in common])
    base_rows = np.array(list(base.values()))
    classes = next(r["classes"] for r in records if r["method_label"] == method)
    stats = [mean_interval(change[:, c]) for c in range(change.shape[1])]
    noise = base_rows.std(0, ddof=1) if len(base_rows) > 1 else np.full(base_rows.shape[1], math.nan)
    return pd.DataFrame({"class": classes, "mean change": [m for m, _ in stats],
                         "95% CI ±": [h for _, h in stats], "baseline seed std": noise, "seeds": len(common)})


def group_tpr_change(records: list[dict], groups: list[list[str]], methods: list[str],
                     baseline: str = "baseline") -> pd.DataFrame:
    """Per group of classes (e.g. from :func:`lbw_utils.metrics.confusion_groups`): the baseline's mean
    test TPR over the group's classes, and for each method the paired change of that group mean
    against the same seed's baseline, in points, ``mean ± 95 % half-width``."""
    per_method = {}  # method -> (classes, {seed: per-class test TPR})
    for method in [baseline, *methods]:
        seeds, tpr = tpr_by_seed(records, method)
        classes = next(r["classes"] for r in records if r["method_label"] == method)
        per_method[method] = (classes, dict(zip(seeds, tpr)))

    def group_mean(method: str, group: list[str]) -> dict[int, float]:
        classes, by_seed = per_method[method]
        columns = [classes.index(name) for name in group]
        return {seed: float(tpr[columns].mean()) for seed, tpr in by_seed.items()}

    rows = []
    for group in groups:
        base = group_mean(baseline, group)
        row = {"group": ", ".join(group), "baseline TPR": mean_interval_text(*mean_interval(list(base.values())))}
        for method in methods:
            treated = group_mean(method, group)
            change = [100 * (treated[seed] - base[seed]) for seed in treated if seed in base]
            row[f"Δ {method} (pts)"] = mean_interval_text(*mean_interval(change), digits=1)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Paired comparison with the same seed's baseline, the Pareto front, the goal
# --------------------------------------------------------------------------

# The research goal: +15 points of worst-class TPR at no more than 0.5 points of accuracy lost, both
# measured against the same seed's baseline.
GOAL_WORST_CLASS_GAIN = 0.15
GOAL_MAX_ACCURACY_LOSS = 0.005


def paired_table(records: list[dict], baseline_label: str = "baseline", checkpoint: str = "last") -> pd.DataFrame:
    """Per (dataset, method): the change of test accuracy and worst-class TPR against the same seed's
    baseline (mean and 95 % t half-width over the seeds both have), next to the baseline's seed-to-seed
    standard deviation of each (the noise a change has to beat); the absolute means; whether the method is
    on the Pareto front of its dataset; whether it meets the goal (mean changes)."""
    runs = run_table(records, baseline_label, checkpoint)
    rows = []
    for dataset, group in runs.groupby("dataset", sort=False):
        base = group[group["method"] == baseline_label].set_index("seed")
        if base.empty:  # nothing to pair with on this dataset
            continue
        for method, runs_of_method in group.groupby("method", sort=False):
            paired = runs_of_method[runs_of_method["seed"].isin(base.index)].set_index("seed")
            if len(paired):
                rows.append({"dataset": dataset, "method": method, **_paired_changes(paired, base)})
    table = _baseline_first(pd.DataFrame(rows), baseline_label)
    if table.empty:
        return table
    table["pareto"] = False
    table["methods_compared"] = 0
    table["p_accuracy_holm"] = table["p_worst_class_tpr_holm"] = math.nan  # the baseline rows keep NaN
    for _, group in table.groupby("dataset"):
        table.loc[group.index, "pareto"] = pareto_front(group)
        compared = group[group["method"] != baseline_label]
        table.loc[group.index, "methods_compared"] = len(compared)
        for key in ("accuracy", "worst_class_tpr"):
            table.loc[compared.index, f"p_{key}_holm"] = holm(compared[f"p_{key}"])
    table["goal_met"] = (table["d_worst_class_tpr"] >= GOAL_WORST_CLASS_GAIN) & (
        table["d_accuracy"] >= -GOAL_MAX_ACCURACY_LOSS)
    return table


def _paired_changes(paired: pd.DataFrame, base: pd.DataFrame) -> dict:
    """One method's runs (indexed by seed) against the baseline's runs of the same seeds."""
    row = {"seeds": len(paired)}
    for key in ("accuracy", "worst_class_tpr"):
        row[key] = float(paired[key].mean())
        row[f"d_{key}"], row[f"d_{key}_ci"] = mean_interval(paired[key] - base.loc[paired.index, key])
        row[f"baseline_{key}_std"] = float(base[key].std(ddof=1)) if len(base) > 1 else math.nan
        row[f"p_{key}"] = paired_p_value(paired[key], base.loc[paired.index, key])
    # The ceiling on top of this run, as a change of worst-class TPR against the same seed's baseline run.
    row["ceiling_worst_class_tpr"] = float(paired["ceiling_worst_class_tpr"].mean())
    row["d_ceiling"], row["d_ceiling_ci"] = mean_interval(
        paired["ceiling_worst_class_tpr"] - base.loc[paired.index, "worst_class_tpr"])
    return row


def family_difference(records: list[dict], other_records: list[dict], methods: list[str],
                      baseline_label: str = "baseline") -> pd.DataFrame:
    """Does a method act differently on two model families? Per method present in both: its change against
    the same seed's (fold's) baseline of its own family, in ``records`` minus in ``other_records``, paired by
    seed: mean and 95 % t half-width of that difference of changes, for accuracy and worst-class TPR, with the
    paired t-test's p-value (Holm-adjusted over the methods) and the seeds both families have."""
    keys = ["accuracy", "worst_class_tpr"]

    def changes(family: list[dict]) -> pd.DataFrame:
        """Each run's change against its seed's baseline, indexed by (method, seed)."""
        runs = run_table(family, baseline_label)
        base = runs[runs["method"] == baseline_label].set_index("seed")[keys]
        paired = runs[runs["seed"].isin(base.index)]
        return paired.set_index(["method", "seed"])[keys] - base.loc[paired["seed"]].to_numpy()

    first, second = changes(records), changes(other_records)
    rows = []
    for method in methods:
        if method not in first.index or method not in second.index:
            continue
        seeds = sorted(set(first.loc[method].index) & set(second.loc[method].index))
        if not seeds:
            continue
        row = {"method": method, "seeds": len(seeds)}
        for key in keys:
            a, b = first.loc[method].loc[seeds, key].to_numpy(), second.loc[method].loc[seeds, key].to_numpy()
            row[f"d_{key}_first"], row[f"d_{key}_second"] = float(a.mean()), float(b.mean())
            row[f"diff_{key}"], row[f"diff_{key}_ci"] = mean_interval(a - b)
            row[f"p_{key}"] = paired_p_value(a, b)
        rows.append(row)
    table = pd.DataFrame(rows)
    for key in ("accuracy", "worst_class_tpr"):
        if not table.empty:
            table[f"p_{key}_holm"] = holm(table[f"p_{key}"])
    return table


def family_difference_statement(table: pd.DataFrame, first: str, second: str, unit: str = "seed") -> str:
    """The sentence on :func:`family_difference`: which methods changed worst-class TPR or accuracy differently
    on ``first`` than on ``second``, reading the Holm-adjusted paired p-value (< 0.05) first; a method whose
    unadjusted 95 % interval excludes 0 but whose adjusted p does not is named apart; the rest show no
    difference."""
    if table.empty:
        return f"No weighting ran on both {first} and {second}."
    parts = []
    for key, what in (("worst_class_tpr", "worst-class TPR"), ("accuracy", "accuracy")):
        differ, unadjusted, same = [], [], []
        for _, row in table.iterrows():
            mean, half, p_value = 100 * row[f"diff_{key}"], 100 * row[f"diff_{key}_ci"], row[f"p_{key}_holm"]
            text = f"{row['method']} {mean:+.1f} ± {half:.1f} points (Holm-adjusted p {_p_text(p_value)})"
            if p_value < 0.05:
                differ.append(text)
            elif abs(mean) > half:
                unadjusted.append(text)
            else:
                same.append(row["method"])
        found = [f"different ({first} minus {second}): {', '.join(differ)}"] if differ else []
        found += ([f"interval away from 0 but not after Holm's adjustment: {', '.join(unadjusted)}"]
                  if unadjusted else [])
        found.append(f"no difference shown: {', '.join(same) if same else 'none'}")
        parts.append(f"In {what}, " + "; ".join(found) + ".")
    low, high = int(table["seeds"].min()), int(table["seeds"].max())
    count = f"{low}" if low == high else f"{low}-{high}"
    methods = f"{len(table)} method{'s' if len(table) != 1 else ''}"
    return (f"Does a weighting act differently on {first} than on {second}? Each method's change against its own "
            f"family's baseline of the same {unit}, {first} minus {second}, paired by {unit} over {count} {unit}s, "
            f"{methods}: " + " ".join(parts))


def paired_p_value(values, baseline_values) -> float:
    """Two-sided p-value of the paired t-test (``scipy.stats.ttest_rel``) of a method against the same
    seeds' baseline; NaN with fewer than 2 pairs or no variation in the differences."""
    values, baseline_values = np.asarray(values, dtype=float), np.asarray(baseline_values, dtype=float)
    differences = values - baseline_values
    if len(differences) < 2 or np.allclose(differences, differences[0]):
        return math.nan
    return float(scipy.stats.ttest_rel(values, baseline_values).pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and are not counted).

    With m p-values sorted ascending, the i-th (from 0) becomes ``max_{j <= i} min(1, (m - j) p_(j))``:
    it controls the chance of any false claim among the m comparisons at the nominal level."""
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full(p_values.shape, math.nan)
    present = np.flatnonzero(~np.isnan(p_values))
    order = present[np.argsort(p_values[present], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p_values[order]))
    return adjusted


def pareto_front(table: pd.DataFrame) -> pd.Series:
    """True for the rows no other row dominates on (accuracy, worst-class TPR) means: at least as good
    on both and better on one."""
    accuracy, worst = table["accuracy"].to_numpy(), table["worst_class_tpr"].to_numpy()
    dominated = [bool(np.any((accuracy >= a) & (worst >= w) & ((accuracy > a) | (worst > w))))
                 for a, w in zip(accuracy, worst)]
    return pd.Series([not d for d in dominated], index=table.index)


def _points(mean: float, half_width: float) -> str:
    return mean_interval_text(100 * mean, 100 * half_width, 1)


def _p_text(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def formatted_paired(table: pd.DataFrame) -> pd.DataFrame:
    """The paired table as text: absolute means, changes ``mean ± half-width`` in points with their Holm-adjusted
    p-values, the baseline's seed noise, the ceiling of re-deciding on top of each run, the Pareto front and the
    goal; then one row for the baseline's ceiling, labelled as what it is (:data:`CEILING_LABEL`)."""
    shown = pd.DataFrame({
        "method": table["method"], "seeds": table["seeds"],
        "accuracy": [f"{value:.3f}" for value in table["accuracy"]],
        "worst-class TPR": [f"{value:.3f}" for value in table["worst_class_tpr"]],
        "Δ accuracy (pts)": [_points(m, h) for m, h in zip(table["d_accuracy"], table["d_accuracy_ci"])],
        "Δ worst-class TPR (pts)": [_points(m, h) for m, h in
                                    zip(table["d_worst_class_tpr"], table["d_worst_class_tpr_ci"])],
        "p Holm: acc / worst": [f"{_p_text(a)} / {_p_text(w)}" for a, w in
                                zip(table["p_accuracy_holm"],
                                    table["p_worst_class_tpr_holm"])],
        "ceiling on top: Δ worst (pts)": [_points(m, h) for m, h in
                                          zip(table["d_ceiling"],
                                              table["d_ceiling_ci"])],
        "baseline seed std: acc / worst (pts)": [
            f"{100 * a:.1f} / {100 * w:.1f}" for a, w in
            zip(table["baseline_accuracy_std"], table["baseline_worst_class_tpr_std"])],
        "Pareto front": ["yes" if flag else "" for flag in table["pareto"]],
        "goal met": ["yes" if flag else "" for flag in table["goal_met"]],
    })
    ceilings = [_ceiling_row(shown.columns, row) for row in table.itertuples(index=False)
                if row.d_accuracy == 0 and row.method == _baseline_of(table, row.dataset)
                and not math.isnan(row.d_ceiling)]
    return pd.concat([shown, pd.DataFrame(ceilings, columns=shown.columns)], ignore_index=True) if ceilings else shown


def _baseline_of(table: pd.DataFrame, dataset: str) -> str:
    """The first row of a dataset in a paired table is its baseline (:func:`_baseline_first`)."""
    return table.loc[table["dataset"] == dataset, "method"].iloc[0]


def _ceiling_row(columns, row) -> dict:
    cells = dict.fromkeys(columns, "")
    cells.update({"method": CEILING_LABEL, "seeds": row.seeds,
                  "worst-class TPR": f"{row.ceiling_worst_class_tpr:.3f}",
                  "Δ worst-class TPR (pts)": _points(row.d_ceiling, row.d_ceiling_ci)})
    return cells


def save_paired_tables(table: pd.DataFrame, stem: str | Path, caption: str = "") -> dict[str, Path]:
    """The paired table's ``stem.md`` (formatted), ``stem.csv`` (raw numbers) and ``stem.tex``."""
    return _write_tables(formatted_paired(table), table, stem, caption)


def _change(row) -> str:
    p_value = row.get("p_worst_class_tpr_holm", math.nan)
    adjusted = "" if math.isnan(p_value) else f" (Holm-adjusted p {_p_text(p_value)} for the worst-class change)"
    return (f"{100 * row['d_worst_class_tpr']:+.1f} ± {100 * row['d_worst_class_tpr_ci']:.1f} points of worst-class "
            f"TPR at {100 * row['d_accuracy']:+.1f} ± {100 * row['d_accuracy_ci']:.1f} points of accuracy{adjusted}")


def describe_change(table: pd.DataFrame, method: str, dataset: str | None = None) -> str:
    """One sentence on ``method``'s paired change in a :func:`paired_table`, against the baseline's seed noise."""
    rows = table[(table["method"] == method) & ((table["dataset"] == dataset) if dataset else True)]
    if rows.empty:
        raise ValueError(f"method={method!r} is not in the paired table: it has {sorted(set(table['method']))}")
    row = rows.iloc[0]
    front = "on the Pareto front" if row["pareto"] else "dominated by another method"
    return (f"{method} ({row['seeds']} seeds): {_change(row)} against the same seed's baseline (the baseline's "
            f"seed-to-seed std: {100 * row['baseline_worst_class_tpr_std']:.1f} points of worst-class TPR, "
            f"{100 * row['baseline_accuracy_std']:.1f} of accuracy); {front}.")


def goal_statement(table: pd.DataFrame, dataset: str, baseline_label: str = "baseline") -> str:
    """Markdown: is the goal met, by which method, how far the best points are from it (maxima of test means
    over the methods compared, said with their number), each gain as a share of the baseline's ceiling of
    re-deciding, and whether one method dominates all others, from a :func:`paired_table`."""
    rows = table[(table["dataset"] == dataset) & (table["method"] != baseline_label)]
    goal = (f"+{100 * GOAL_WORST_CLASS_GAIN:.0f} points of worst-class TPR at no more than "
            f"{100 * GOAL_MAX_ACCURACY_LOSS:.1f} points of accuracy lost (paired, mean over seeds)")
    if rows.empty:
        return f"**{dataset}**: no method besides the baseline; goal ({goal}) not assessed.\n"
    met = rows[rows["goal_met"]]
    lines = [f"**{dataset}**: goal: {goal}; {len(rows)} methods compared with the baseline, on their test means "
             "(a maximum over them is a selection on test, not a validated choice).",
             f"Met by {', '.join(met['method'])}." if len(met) else "Not met."]
    base = table[(table["dataset"] == dataset) & (table["method"] == baseline_label)]
    ceiling = float(base["d_ceiling"].iloc[0]) if len(base) and "d_ceiling" in base else math.nan
    within = rows[rows["d_accuracy"] >= -GOAL_MAX_ACCURACY_LOSS].sort_values("d_worst_class_tpr")
    if len(within):
        best = within.iloc[-1]
        lines.append(f"Largest worst-class gain within the accuracy budget: {best['method']}, {_change(best)} "
                     f"({100 * max(0.0, GOAL_WORST_CLASS_GAIN - best['d_worst_class_tpr']):.1f} points short "
                     f"of the gain{_share_of_ceiling(best, ceiling)}).")
    else:
        lines.append("No method stays within the accuracy budget.")
    largest = rows.sort_values("d_worst_class_tpr").iloc[-1]
    if not len(within) or largest["method"] != within.iloc[-1]["method"]:
        lines.append(f"Largest worst-class gain at any accuracy: {largest['method']}, {_change(largest)} "
                     f"({100 * max(0.0, GOAL_WORST_CLASS_GAIN - largest['d_worst_class_tpr']):.1f} points short "
                     f"of the gain, {100 * max(0.0, -GOAL_MAX_ACCURACY_LOSS - largest['d_accuracy']):.1f} points "
                     f"over the accuracy budget).")
    if not math.isnan(ceiling):
        row = base.iloc[0]
        highest = rows.sort_values("d_ceiling").iloc[-1] if rows["d_ceiling"].notna().any() else None
        lines.append(f"The ceiling of re-deciding the baseline (offsets fitted on the test split itself, within the "
                     f"budget; a reference, not a method): {_points(row['d_ceiling'], row['d_ceiling_ci'])} points of "
                     f"worst-class TPR." + ("" if highest is None else
                     f" The highest ceiling on top of a method: {highest['method']}, "
                     f"{_points(highest['d_ceiling'], highest['d_ceiling_ci'])} points."))
    front = table[(table["dataset"] == dataset) & table["pareto"]]
    if len(front) == 1:
        lines.append(f"{front['method'].iloc[0]} dominates every other method on (accuracy, worst-class TPR).")
    else:
        lines.append(f"No method dominates all others; the Pareto front of the test means is "
                     f"{', '.join(front['method'])}.")
    return " ".join(lines) + "\n"


def _share_of_ceiling(row, ceiling: float) -> str:
    if math.isnan(ceiling) or ceiling <= 0:
        return ""
    return f"; {100 * row['d_worst_class_tpr'] / ceiling:.0f} % of the baseline's ceiling of re-deciding"


# Validation metrics a selection may maximise (higher is better for each).
SELECTION_METRICS = ("worst_class_tpr", "accuracy", "balanced_accuracy", "macro_f1")


def is_reference(record: dict) -> bool:
    """A reference row rather than a weighting: a plain cross-entropy run under any label (the baseline,
    or another configuration's baseline such as ``author-lstm``) or a directly fitted model (the linear
    yardstick: its registry kind says it is a reference)."""
    name = (record.get("method") or {}).get("name")
    return name == "baseline" or (name in METHODS and METHODS[name].kind.reference)


def best_by_validation(records: list[dict], *, exclude: tuple[str, ...] | str = ("baseline",),
                       metric: str = "worst_class_tpr", checkpoint: str = "last",
                       weightings_only: bool = True) -> str:
    """The method whose mean *validation* ``metric`` over seeds is highest (ties: the first in order).

    Reads ``record["val"]`` only (or the best-validation checkpoint's validation scores): the test split
    never chooses. Post-hoc runs' validation scores are cross-fitted, so they compete on equal terms.
    ``exclude`` holds method labels that may not be chosen (one label may be given as a string);
    ``weightings_only`` also leaves out every reference row (:func:`is_reference`).
    :func:`validation_scores` gives the candidates and their scores (say how many were compared).
    """
    scores = validation_scores(records, exclude=exclude, metric=metric, checkpoint=checkpoint,
                               weightings_only=weightings_only)
    return max(scores, key=lambda label: float(np.mean(scores[label])))


def validation_scores(records: list[dict], *, exclude: tuple[str, ...] | str = ("baseline",),
                      metric: str = "worst_class_tpr", checkpoint: str = "last",
                      weightings_only: bool = True) -> dict[str, list[float]]:
    """Method label -> its per-seed validation ``metric``, for every candidate :func:`best_by_validation`
    chooses among (same arguments)."""
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric={metric!r} is not allowed: expected one of {SELECTION_METRICS} (higher is better)")
    excluded = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    scores: dict[str, list[float]] = {}
    for record in records:
        if record["method_label"] in excluded or (weightings_only and is_reference(record)):
            continue
        scores.setdefault(record["method_label"], []).append(split_summary(record, "val", checkpoint)[metric])
    if not scores:
        raise ValueError(f"no records to choose from besides {list(excluded)}")
    return scores


def trajectory_summary(records: list[dict], label: str) -> str:
    """One sentence, from the recorded weight trajectories of ``label``'s runs: how the class weights stand
    after the first update (largest, second largest and median weight, as a share of their total), the
    exponent of that update where the method records one (CDB's ``tau``), and how many updates left some
    class at weight exactly 0 (first at which update)."""
    runs = [r for r in records if r["method_label"] == label and (r.get("weights") or {}).get("trajectory")]
    if not runs:
        return f"{label}: no recorded weight trajectory."
    first = np.array([r["weights"]["trajectory"][0] for r in runs], dtype=float)
    ordered = np.sort(first, axis=1)
    totals = first.sum(axis=1)
    zero_rows = [[index for index, row in enumerate(r["weights"]["trajectory"]) if min(row) == 0.0] for r in runs]
    updates = sum(len(r["weights"]["trajectory"]) for r in runs)
    zeros = sum(len(rows) for rows in zero_rows)
    firsts = sorted({rows[0] + 1 for rows in zero_rows if rows})
    taus = [r["weights"]["tau"][0] for r in runs if r["weights"].get("tau")]
    text = (f"{label} ({len(runs)} seeds): after the first update the largest class weight is "
            f"{ordered[:, -1].mean():.2f} on average ({100 * (ordered[:, -1] / totals).mean():.0f} % of the total "
            f"weight; per seed {', '.join(f'{value:.2f}' for value in ordered[:, -1])}), the second largest "
            f"{ordered[:, -2].mean():.3f} and the median {np.median(first, axis=1).mean():.3f}")
    if taus:
        text += f", with exponent tau {np.mean(taus):.2f}"
    text += f"; some class had weight exactly 0 after {zeros} of {updates} updates"
    if firsts:
        text += f" (first after update {', '.join(map(str, firsts))}, depending on the seed)"
    return text + "."
