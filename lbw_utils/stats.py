"""Across-seed statistics of run records: numbers and DataFrames, no English (:mod:`lbw_utils.reporting` words them).

The interval is Student's t interval of the mean over seeds (seeds are the
independent replicates: each reruns the split, the initialisation and the batch
order). With 3 seeds t(0.975, 2) = 4.30, so intervals are honest and wide.

Methods are compared with the *same seed's* baseline (:func:`paired_table`): the
split, initialisation and batch order cancel; paired t-tests give the p-values, Holm's
step-down adjusts them over the methods compared. Tables report the test split; the
only functions that pick a method, :func:`best_by_validation` and
:func:`validation_scores`, read the validation split only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats

from lbw_utils.methods import METHODS
from lbw_utils.metrics import tpr_variance_reduction

# The metrics of a method table, each with its mean and 95 % half-width (D: the paper's Var(s) - Var(s')).
METRIC_KEYS = ("accuracy", "balanced_accuracy", "tpr_std", "worst_class_tpr", "D")
CHECKPOINTS = ("last", "best_val")
# The research goal: +15 points of worst-class TPR at no more than 0.5 points of accuracy lost, both
# measured against the same seed's baseline.
GOAL_WORST_CLASS_GAIN = 0.15
GOAL_MAX_ACCURACY_LOSS = 0.005
# Validation metrics a selection may maximise (higher is better for each).
SELECTION_METRICS = ("worst_class_tpr", "accuracy", "balanced_accuracy", "macro_f1")


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t interval (NaN half-width for a single value)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    quantile = scipy.stats.t.ppf(0.975, len(values) - 1)
    return float(values.mean()), float(quantile * values.std(ddof=1) / math.sqrt(len(values)))


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
            **{key: test[key] for key in METRIC_KEYS if key != "D"},
            "D": (tpr_variance_reduction(split_summary(baseline, "test", checkpoint)["tpr"], test["tpr"])
                  if baseline else math.nan),
            "worst_class": test["worst_class"],
            "train_seconds": record.get("train_seconds", math.nan),
            # the ceiling of re-deciding (lbw_utils.ceiling): a reference beside the run, never a method
            "ceiling_worst_class_tpr": (record.get("ceiling") or {}).get("worst_class_tpr", math.nan),
        })
    # Named columns even with no records, so method_table can group an empty study.
    columns = ["dataset", "method", "seed", *(key for key in METRIC_KEYS if key != "D"), "D", "worst_class",
               "train_seconds", "ceiling_worst_class_tpr"]
    return pd.DataFrame(rows, columns=columns)


def method_table(records: list[dict], baseline_label: str = "baseline", checkpoint: str = "last") -> pd.DataFrame:
    """Per (dataset, method): mean and 95 % half-width of each metric, and the seed count."""
    runs = run_table(records, baseline_label, checkpoint)
    rows = []
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=False):
        row = {"dataset": dataset, "method": method, "seeds": len(group)}
        for key in METRIC_KEYS:
            row[key], row[f"{key}_ci"] = mean_interval(group[key])
        row["train_seconds"] = float(group["train_seconds"].mean())
        rows.append(row)
    return baseline_first(pd.DataFrame(rows), baseline_label)


def baseline_first(table: pd.DataFrame, baseline_label: str) -> pd.DataFrame:
    """Rows by dataset, the baseline first within each; the other rows keep their order."""
    if table.empty:
        return table
    later = table["method"].ne(baseline_label)
    return table.assign(_order=later).sort_values(["dataset", "_order"], kind="stable").drop(
        columns="_order").reset_index(drop=True)


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
    intervals = [mean_interval(change[:, c]) for c in range(change.shape[1])]
    noise = base_rows.std(0, ddof=1) if len(base_rows) > 1 else np.full(base_rows.shape[1], math.nan)
    return pd.DataFrame({"class": classes, "mean change": [m for m, _ in intervals],
                         "95% CI ±": [h for _, h in intervals], "baseline seed std": noise, "seeds": len(common)})


def group_tpr_change(records: list[dict], groups: list[list[str]], methods: list[str],
                     baseline: str = "baseline") -> pd.DataFrame:
    """Per group of classes (e.g. from :func:`lbw_utils.metrics.confusion_groups`), one row for the baseline and
    one per method: ``tpr``/``tpr_ci``, the mean test TPR over the group's classes (mean and 95 % half-width over
    seeds), and for the methods ``d_pts``/``d_pts_ci``, the paired change of that group mean against the same
    seed's baseline, in points (NaN on the baseline's rows)."""
    group_means = {}  # method -> (group -> {seed: mean test TPR over the group's classes})
    for method in [baseline, *methods]:
        seeds, tpr = tpr_by_seed(records, method)
        classes = next(r["classes"] for r in records if r["method_label"] == method)
        group_means[method] = {
            ", ".join(group): {seed: float(row[[classes.index(name) for name in group]].mean())
                               for seed, row in zip(seeds, tpr)} for group in groups}
    rows = []
    for group in map(", ".join, groups):
        base = group_means[baseline][group]
        rows.append({"group": group, "method": baseline, **_interval("tpr", list(base.values())),
                     "d_pts": math.nan, "d_pts_ci": math.nan})
        for method in methods:
            treated = group_means[method][group]
            change = [100 * (treated[seed] - base[seed]) for seed in treated if seed in base]
            rows.append({"group": group, "method": method, **_interval("tpr", list(treated.values())),
                         **_interval("d_pts", change)})
    return pd.DataFrame(rows, columns=["group", "method", "tpr", "tpr_ci", "d_pts", "d_pts_ci"])


def _interval(key: str, values) -> dict:
    mean, half_width = mean_interval(values)
    return {key: mean, f"{key}_ci": half_width}


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
    table = baseline_first(pd.DataFrame(rows), baseline_label)
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


def baseline_of(table: pd.DataFrame, dataset: str) -> str:
    """The first row of a dataset in a paired table is its baseline (:func:`baseline_first`)."""
    return table.loc[table["dataset"] == dataset, "method"].iloc[0]


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
    for key in keys:
        if not table.empty:
            table[f"p_{key}_holm"] = holm(table[f"p_{key}"])
    return table


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


def weight_trajectories(records: list[dict], label: str) -> dict | None:
    """What the recorded class-weight trajectories of ``label``'s runs show (None: no run recorded one):
    ``seeds``; after the first update, per seed, the ``largest`` weight, its ``largest_share`` of the total,
    the ``second`` largest and the ``median``; the ``updates`` over all runs and how many left some class at
    weight exactly 0 (``zero_updates``), the updates after which that first happened (``first_zero``, 1-based,
    one per seed where it did), and the mean exponent ``tau`` of the first update (None where none is recorded)."""
    runs = [r for r in records if r["method_label"] == label and (r.get("weights") or {}).get("trajectory")]
    if not runs:
        return None
    first = np.array([r["weights"]["trajectory"][0] for r in runs], dtype=float)
    ordered = np.sort(first, axis=1)
    zero_rows = [[index for index, row in enumerate(r["weights"]["trajectory"]) if min(row) == 0.0] for r in runs]
    taus = [r["weights"]["tau"][0] for r in runs if r["weights"].get("tau")]
    return {"seeds": len(runs), "largest": ordered[:, -1], "largest_share": ordered[:, -1] / first.sum(axis=1),
            "second": ordered[:, -2], "median": np.median(first, axis=1),
            "updates": sum(len(r["weights"]["trajectory"]) for r in runs),
            "zero_updates": sum(len(rows) for rows in zero_rows),
            "first_zero": sorted({rows[0] + 1 for rows in zero_rows if rows}),
            "tau": float(np.mean(taus)) if taus else None}
