"""The generated sentences on a method table: one method's paired change, the research goal, two model families,
the weight trajectories, and fold wording for k-fold studies.

Every number in them comes from :mod:`lbw_utils.stats` (a paired table, a family difference, the trajectories'
numbers), so the README and docs can quote a sentence and never a typed number. Runs and datasets are named as a
reader names them (:mod:`lbw_utils.reporting.display`); lists of names are joined by semicolons, as a name may
hold a comma.
"""

from __future__ import annotations

import math

import pandas as pd

from lbw_utils.reporting.display import dataset_name, listed, row_name
from lbw_utils.reporting.tables import p_text, points_text
from lbw_utils.stats import GOAL_MAX_ACCURACY_LOSS, GOAL_WORST_CLASS_GAIN, weight_trajectories


def change_text(row) -> str:
    """A paired-table row's change of worst-class TPR and accuracy, in points, with the Holm-adjusted p."""
    p_value = row.get("p_worst_class_tpr_holm", math.nan)
    adjusted = "" if math.isnan(p_value) else f" (Holm-adjusted p {p_text(p_value)} for the worst-class change)"
    return (f"{100 * row['d_worst_class_tpr']:+.1f} ± {100 * row['d_worst_class_tpr_ci']:.1f} points of worst-class "
            f"TPR at {100 * row['d_accuracy']:+.1f} ± {100 * row['d_accuracy_ci']:.1f} points of accuracy{adjusted}")


def describe_change(table: pd.DataFrame, method: str, dataset: str | None = None) -> str:
    """One sentence on ``method``'s paired change in a :func:`lbw_utils.stats.paired_table`, against the
    baseline's seed noise."""
    rows = table[(table["method"] == method) & ((table["dataset"] == dataset) if dataset else True)]
    if rows.empty:
        raise ValueError(f"method={method!r} is not in the paired table: it has {sorted(set(table['method']))}")
    row = rows.iloc[0]
    front = "on the Pareto front" if row["pareto"] else "dominated by another method"
    return (f"{row_name(method)} ({row['seeds']} seeds): {change_text(row)} against the same seed's baseline (the baseline's "
            f"seed-to-seed std: {100 * row['baseline_worst_class_tpr_std']:.1f} points of worst-class TPR, "
            f"{100 * row['baseline_accuracy_std']:.1f} of accuracy); {front}.")


def goal_statement(table: pd.DataFrame, dataset: str, baseline_label: str = "baseline") -> str:
    """Markdown: is the goal met, by which method, how far the best points are from it (maxima of test means
    over the methods compared, said with their number), the largest gain within the budget as a share of that
    row's own ceiling of re-deciding (where its record has one), and whether one method dominates all others, from
    a :func:`lbw_utils.stats.paired_table`."""
    rows = table[(table["dataset"] == dataset) & (table["method"] != baseline_label)]
    goal = (f"+{100 * GOAL_WORST_CLASS_GAIN:.0f} points of worst-class TPR at no more than "
            f"{100 * GOAL_MAX_ACCURACY_LOSS:.1f} points of accuracy lost (paired, mean over seeds)")
    shown = dataset_name(dataset)
    if rows.empty:
        return f"**{shown}**: no method besides the baseline; goal ({goal}) not assessed.\n"
    met = rows[rows["goal_met"]]
    lines = [f"**{shown}**: goal: {goal}; {len(rows)} methods compared with the baseline, on their test means "
             "(a maximum over them is a selection on test, not a validated choice).",
             f"Met by {listed(map(row_name, met['method']))}." if len(met) else "Not met."]
    base = table[(table["dataset"] == dataset) & (table["method"] == baseline_label)]
    ceiling = float(base["d_ceiling"].iloc[0]) if len(base) and "d_ceiling" in base else math.nan
    within = rows[rows["d_accuracy"] >= -GOAL_MAX_ACCURACY_LOSS].sort_values("d_worst_class_tpr")
    if len(within):
        best = within.iloc[-1]
        lines.append(f"Largest worst-class gain within the accuracy budget: {row_name(best['method'])}, {change_text(best)} "
                     f"({100 * max(0.0, GOAL_WORST_CLASS_GAIN - best['d_worst_class_tpr']):.1f} points short "
                     f"of the gain{_share_of_own_ceiling(best)}).")
    else:
        lines.append("No method stays within the accuracy budget.")
    largest = rows.sort_values("d_worst_class_tpr").iloc[-1]
    if not len(within) or largest["method"] != within.iloc[-1]["method"]:
        lines.append(f"Largest worst-class gain at any accuracy: {row_name(largest['method'])}, {change_text(largest)} "
                     f"({100 * max(0.0, GOAL_WORST_CLASS_GAIN - largest['d_worst_class_tpr']):.1f} points short "
                     f"of the gain, {100 * max(0.0, -GOAL_MAX_ACCURACY_LOSS - largest['d_accuracy']):.1f} points "
                     f"over the accuracy budget).")
    if not math.isnan(ceiling):
        row = base.iloc[0]
        # Rows' ceilings are not compared here: each counts its floor from its own accuracy, so a more accurate row
        # has more to spend; the re-decision frontier compares rows at equal accuracy.
        lines.append(f"The ceiling of re-deciding the baseline (offsets fitted on the test split itself, within the "
                     f"budget; a reference, not a method): {points_text(row['d_ceiling'], row['d_ceiling_ci'])} "
                     f"points of worst-class TPR; rows are compared with it at equal accuracy by the re-decision "
                     f"frontier.")
    front = table[(table["dataset"] == dataset) & table["pareto"]]
    if len(front) == 1:
        lines.append(f"{row_name(front['method'].iloc[0])} dominates every other method on (accuracy, worst-class TPR).")
    else:
        lines.append(f"No method dominates all others; the Pareto front of the test means is "
                     f"{listed(map(row_name, front['method']))}.")
    return " ".join(lines) + "\n"


def _share_of_own_ceiling(row) -> str:
    """The row's gain as a share of its own ceiling of re-deciding (both against the same seed's baseline); a
    share of another row's ceiling would mix two runs' scores, so without its own ceiling there is no share."""
    own = row.get("d_ceiling", math.nan)
    if own is None or math.isnan(own) or own <= 0:
        return ""
    return f"; {100 * row['d_worst_class_tpr'] / own:.0f} % of its own ceiling of re-deciding"


def family_difference_statement(table: pd.DataFrame, first: str, second: str, unit: str = "seed") -> str:
    """The sentence on a :func:`lbw_utils.stats.family_difference`: which methods changed worst-class TPR or
    accuracy differently on ``first`` than on ``second``, reading the Holm-adjusted paired p-value (< 0.05)
    first; a method whose unadjusted 95 % interval excludes 0 but whose adjusted p does not is named apart; the
    rest show no difference."""
    if table.empty:
        return f"No weighting ran on both {first} and {second}."
    parts = []
    for key, what in (("worst_class_tpr", "worst-class TPR"), ("accuracy", "accuracy")):
        differ, unadjusted, same = [], [], []
        for _, row in table.iterrows():
            mean, half, p_value = 100 * row[f"diff_{key}"], 100 * row[f"diff_{key}_ci"], row[f"p_{key}_holm"]
            text = f"{row_name(row['method'])} {mean:+.1f} ± {half:.1f} points (Holm-adjusted p {p_text(p_value)})"
            if p_value < 0.05:
                differ.append(text)
            elif abs(mean) > half:
                unadjusted.append(text)
            else:
                same.append(row_name(row["method"]))
        found = [f"different ({first} minus {second}): {listed(differ)}"] if differ else []
        found += ([f"interval away from 0 but not after Holm's adjustment: {listed(unadjusted)}"]
                  if unadjusted else [])
        found.append(f"no difference shown: {listed(same) if same else 'none'}")
        parts.append(f"In {what}, " + "; ".join(found) + ".")
    low, high = int(table["seeds"].min()), int(table["seeds"].max())
    count = f"{low}" if low == high else f"{low}-{high}"
    methods = f"{len(table)} method{'s' if len(table) != 1 else ''}"
    return (f"Does a weighting act differently on {first} than on {second}? Each method's change against its own "
            f"family's baseline of the same {unit}, {first} minus {second}, paired by {unit} over {count} {unit}s, "
            f"{methods}: " + " ".join(parts))


def trajectory_summary(records: list[dict], label: str) -> str:
    """One sentence on :func:`lbw_utils.stats.weight_trajectories` of ``label``: how the class weights stand
    after the first update (largest, second largest and median weight, as a share of their total), the
    exponent of that update where the method records one (CDB's ``tau``), and how many updates left some
    class at weight exactly 0 (first at which update)."""
    found = weight_trajectories(records, label)
    if found is None:
        return f"{row_name(label)}: no recorded weight trajectory."
    text = (f"{row_name(label)} ({found['seeds']} seeds): after the first update the largest class weight is "
            f"{found['largest'].mean():.2f} on average ({100 * found['largest_share'].mean():.0f} % of the total "
            f"weight; per seed {', '.join(f'{value:.2f}' for value in found['largest'])}), the second largest "
            f"{found['second'].mean():.3f} and the median {found['median'].mean():.3f}")
    if found["tau"] is not None:
        text += f", with exponent tau {found['tau']:.2f}"
    text += f"; some class had weight exactly 0 after {found['zero_updates']} of {found['updates']} updates"
    if found["first_zero"]:
        text += f" (first after update {', '.join(map(str, found['first_zero']))}, depending on the seed)"
    return text + "."


def fold_wording(text: str) -> str:
    """A sentence of this module (written for seeds) said of folds, for fold-based studies: their pairing is
    by fold (a fold's record is stored under its index as the seed)."""
    for seed_word, fold_word in (("seed-to-seed", "fold-to-fold"), ("same seed's", "same fold's"),
                                 (" seeds)", " folds)"), (" seeds", " folds"), ("over seeds", "over folds")):
        text = text.replace(seed_word, fold_word)
    return text
