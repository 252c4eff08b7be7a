"""Notebook 09 as a reader sees it: the shift of the ceiling of re-deciding and each row's compute as tables and
sentences, what the targeted rows act on, the two planned comparisons, and the generated answer; all from the
numbers of :mod:`lbw_utils.studies.representation` and :mod:`lbw_utils.stats`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lbw_utils.reporting.sentences import describe_change
from lbw_utils.stats import best_by_validation, paired_table, validation_scores


def formatted_ceiling_shift(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.representation.ceiling_shift_table`: points, intervals, p-values."""
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


def formatted_compute(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.representation.compute_table`: each row's compute beside the baseline's."""
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


def targeting_lines(targets: list[dict]) -> list[str]:
    """Lines on :func:`lbw_utils.studies.representation.targeted_classes`: the classes each augmentation covers,
    the largest pairwise margins."""
    lines = []
    for target in targets:
        if target["augmented"] is not None:
            lines.append(f"{target['method']}: augments {target['augmented']}")
        if target["pair_margins"] is not None:
            lines.append(f"{target['method']}: largest pair margins (logits): "
                         + ", ".join(f"{a} / {b} {value:.2f}" for a, b, value in target["pair_margins"]))
    return lines


def head_to_head(records: list[dict], method: str, reference: str) -> str:
    """One sentence: ``method`` against ``reference`` on the seeds both have (test split, last epoch): the paired
    change of worst-class TPR and of accuracy, mean ± 95 % t half-width in points, and the paired t-test's
    p-value (not adjusted: one planned comparison); :func:`lbw_utils.stats.paired_table` with ``reference``
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


def answer(records: list[dict], paired: pd.DataFrame, comparisons: list[tuple[str, str]], shift_text: str,
           goal: str) -> str:
    """What notebook 09's run says: the method selected on validation and its paired change, which rows moved
    the ceiling (``shift_text``: :func:`describe_ceiling_shifts`), the ``goal`` statement, each trained row's
    paired change (post-hoc rows, labelled with "+", are in the paired table) and the planned ``comparisons``
    (:func:`lbw_utils.studies.representation.planned_comparisons`)."""
    best = best_by_validation(records)
    compared = len(validation_scores(records))
    lines = [f"Selected on validation among {compared} methods: " + describe_change(paired, best), shift_text,
             goal.strip()]
    lines += ["- " + describe_change(paired, method) for method in paired["method"]
              if method != "baseline" and "+" not in method]
    lines += ["- " + head_to_head(records, method, reference) for method, reference in comparisons]
    return "\n\n".join(lines) + "\n"
