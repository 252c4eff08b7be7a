"""Did a method change what the network separates, and at what compute? Tables for notebook 09.

The ceiling of re-deciding (:mod:`lbw_utils.ceiling`) of a run is the most that per-class offsets fitted on
its own test split can lift its worst class within the accuracy budget. A method that only moves thresholds
leaves it where the baseline's is; a method that separates the classes better raises it. So the question
"did the ceiling move?" is the paired change ``ceiling(method, seed) - ceiling(baseline, seed)``, with its
95 % t interval over seeds and a paired t-test (Holm-adjusted over the methods compared). The ceiling is a
reference computed with test labels: it describes runs and never selects one.

Compute is said, not equalised: epochs x training images, training seconds (as measured, so they depend on
the machine and on what ran beside), and the network's parameters, each beside the baseline's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lbw_utils.compare import holm, mean_interval, paired_p_value, paired_table

BASELINE = "baseline"


def _runs(records: list[dict]) -> pd.DataFrame:
    rows = []
    for record in records:
        ceiling = record.get("ceiling") or {}
        parameters = record.get("parameters") or {}
        train, model = parameters.get("train") or {}, parameters.get("model") or {}
        images = ((parameters.get("data") or {}).get("sizes") or {}).get("train", math.nan)
        rows.append({"method": record["method_label"], "seed": record["seed"],
                     "ceiling": ceiling.get("worst_class_tpr", math.nan),
                     "reached_floor": bool(ceiling.get("reached_floor", True)),
                     "epochs": train.get("epochs", math.nan), "images": images,
                     "train_seconds": record.get("train_seconds", math.nan),
                     "parameters": model.get("parameters", math.nan) if isinstance(model, dict) else math.nan})
    return pd.DataFrame(rows)


def ceiling_shift_table(records: list[dict], baseline: str = BASELINE) -> pd.DataFrame:
    """Per method: its ceiling minus the same seed's baseline ceiling (worst-class TPR), mean and 95 %
    half-width over the seeds both have, the paired t-test's p-value and its Holm adjustment over the
    methods in the table, and a word: ``"raised"`` / ``"lowered"`` (the interval excludes 0) or ``"no change
    shown"``; ``floor_reached``: on how many of those seeds the offsets reached the accuracy floor (the
    baseline's accuracy minus the budget). A run less accurate than that floor cannot be re-decided back into
    the budget, and its ceiling is then what offsets reach on the way, lower than a threshold shift would
    give within the budget. Runs without a ceiling are left out."""
    runs = _runs(records)
    runs = runs[runs["ceiling"].notna()] if len(runs) else runs
    base = runs[runs["method"] == baseline].set_index("seed")["ceiling"] if len(runs) else pd.Series(dtype=float)
    if base.empty:
        raise ValueError(f"no {baseline!r} run with a ceiling among the records: the shift needs the same seed's "
                         "baseline")
    rows = []
    for method, group in runs[runs["method"] != baseline].groupby("method", sort=False):
        own = group.set_index("seed")["ceiling"]
        seeds = own.index.intersection(base.index)
        if not len(seeds):
            continue
        shift, half_width = mean_interval(own[seeds] - base[seeds])
        reached = group.set_index("seed")["reached_floor"]
        rows.append({"method": method, "seeds": len(seeds), "ceiling": float(own[seeds].mean()),
                     "baseline_ceiling": float(base[seeds].mean()), "shift": shift, "shift_ci": half_width,
                     "p": paired_p_value(own[seeds], base[seeds]), "floor_reached": int(reached[seeds].sum())})
    table = pd.DataFrame(rows, columns=["method", "seeds", "ceiling", "baseline_ceiling", "shift", "shift_ci", "p",
                                        "floor_reached"])
    table["p_holm"] = holm(table["p"]) if len(table) else []
    table["verdict"] = [_verdict(row.shift, row.shift_ci) for row in table.itertuples()]
    return table


def _verdict(shift: float, half_width: float) -> str:
    if math.isnan(half_width):
        return "no interval (one seed)"
    if shift - half_width > 0:
        return "raised"
    if shift + half_width < 0:
        return "lowered"
    return "no change shown"


def formatted_ceiling_shift(table: pd.DataFrame) -> pd.DataFrame:
    """The shift table as a reader sees it: points, intervals, p-values."""
    return pd.DataFrame({
        "method": table["method"], "seeds": table["seeds"],
        "ceiling (worst-class TPR)": [f"{value:.3f}" for value in table["ceiling"]],
        "baseline's ceiling": [f"{value:.3f}" for value in table["baseline_ceiling"]],
        "ceiling shift (pts)": [f"{100 * s:+.1f} ± {100 * h:.1f}" for s, h in zip(table["shift"], table["shift_ci"])],
        "p (Holm)": ["n/a" if math.isnan(p) else f"{p:.3g}" for p in table["p_holm"]],
        "ceiling": table["verdict"],
        "accuracy floor reached": [f"{k} of {n} seeds" for k, n in zip(table["floor_reached"], table["seeds"])],
    })


def describe_ceiling_shifts(table: pd.DataFrame) -> str:
    """Sentences: which methods raised or lowered the ceiling (95 % interval away from 0), and the others."""
    if table.empty:
        return "No method besides the baseline has a ceiling to compare."
    parts = []
    for verdict in ("raised", "lowered"):
        rows = table[table["verdict"] == verdict]
        if len(rows):
            listed = "; ".join(f"{row.method} {100 * row.shift:+.1f} ± {100 * row.shift_ci:.1f} points"
                               for row in rows.sort_values("shift", ascending=verdict == "lowered").itertuples())
            parts.append(f"The ceiling of re-deciding was {verdict} (95 % interval away from 0) by: {listed}.")
        else:
            parts.append(f"No method {verdict} the ceiling beyond its 95 % interval.")
    unchanged = table[~table["verdict"].isin(["raised", "lowered"])]
    if len(unchanged):
        parts.append(f"No change shown for {', '.join(unchanged['method'])}.")
    short = table[table["floor_reached"] < table["seeds"]]
    if len(short):
        listed = ", ".join(f"{row.method} ({row.seeds - row.floor_reached} of {row.seeds} seeds)"
                           for row in short.itertuples())
        parts.append(f"Offsets could not bring these runs back to the accuracy floor (the baseline's accuracy minus "
                     f"the budget), so their ceilings are below what a threshold shift within the budget would give: "
                     f"{listed}.")
    parts.append(f"({len(table)} methods against the same seed's baseline; ceilings are computed with test labels "
                 "and describe the runs, they select nothing.)")
    return " ".join(parts)


def compute_table(records: list[dict], baseline: str = BASELINE) -> pd.DataFrame:
    """Per method: epochs, training images, epochs x images, mean training seconds and network parameters,
    and each ratio to the baseline's. Post-hoc rows (no training of their own) show 0 seconds."""
    runs = _runs(records)
    if runs.empty:
        return runs
    runs["epoch_images"] = runs["epochs"] * runs["images"]
    means = runs.groupby("method", sort=False)[["epochs", "images", "epoch_images", "train_seconds",
                                                "parameters"]].mean()
    if baseline in means.index:
        for key in ("epoch_images", "train_seconds", "parameters"):
            means[f"{key}_vs_baseline"] = means[key] / means.loc[baseline, key]
    means.insert(0, "seeds", runs.groupby("method", sort=False)["seed"].nunique())
    order = [baseline] * (baseline in means.index) + [method for method in means.index if method != baseline]
    return means.loc[order].reset_index()


def formatted_compute(table: pd.DataFrame) -> pd.DataFrame:
    def ratio(value) -> str:
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f" ({value:.2f}x)"

    return pd.DataFrame({
        "method": table["method"], "seeds": table["seeds"],
        "epochs x images": [f"{value:,.0f}{ratio(r)}" for value, r in
                            zip(table["epoch_images"], table.get("epoch_images_vs_baseline", [None] * len(table)))],
        "training seconds": [f"{value:.1f}{ratio(r)}" for value, r in
                             zip(table["train_seconds"], table.get("train_seconds_vs_baseline", [None] * len(table)))],
        "network parameters": ["" if np.isnan(value) else f"{value:,.0f}{ratio(r)}" for value, r in
                               zip(table["parameters"], table.get("parameters_vs_baseline", [None] * len(table)))],
    })


def head_to_head(records: list[dict], method: str, reference: str) -> str:
    """One sentence: ``method`` against ``reference`` on the seeds both have (test split, last epoch): the paired
    change of worst-class TPR and of accuracy, mean ± 95 % t half-width in points, and the paired t-test's
    p-value (not adjusted: one planned comparison); :func:`lbw_utils.compare.paired_table` with ``reference``
    in the baseline's place. Raises when either has no run."""
    labels = {record["method_label"] for record in records}
    missing = [label for label in (method, reference) if label not in labels]
    if missing:
        raise ValueError(f"no runs of {missing} among the records; they have {sorted(labels)}")
    pair = [record for record in records if record["method_label"] in (method, reference)]
    row = paired_table(pair, baseline_label=reference).set_index("method").loc[method]
    parts = []
    for key, name in (("worst_class_tpr", "worst-class TPR"), ("accuracy", "accuracy")):
        p_value = row[f"p_{key}"]
        p_text = "" if math.isnan(p_value) else f", p {p_value:.3g}"
        parts.append(f"{100 * row[f'd_{key}']:+.1f} ± {100 * row[f'd_{key}_ci']:.1f} points of {name}{p_text}")
    return (f"{method} against {reference} ({row['seeds']} seeds, paired by seed; test split): "
            f"{' and '.join(parts)} (paired t-tests, one planned comparison each).")
