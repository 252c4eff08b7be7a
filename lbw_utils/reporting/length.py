"""The training-length study (notebook 07, and notebook 06 where the study ran) as a reader sees it: the ladder
table, the generated answer and the figures, all from :mod:`lbw_utils.studies.training_length`'s numbers; paired
changes in points, methods by their display names."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils.reporting import plots
from lbw_utils.reporting.display import dataset_name, row_name
from lbw_utils.reporting.outputs import save_texts
from lbw_utils.reporting.tables import markdown_table, mean_interval_text, points_text
from lbw_utils.runs.experiments import figure_path
from lbw_utils.studies.training_length import ARMS, LADDER_ARMS, baseline_value, ladder_table, overlapping


def formatted_ladder(table: pd.DataFrame, focus_class: str) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.training_length.ladder_table` as strings "mean ± half-width", the paired changes
    in points."""
    shown = {
        "accuracy": "accuracy", "worst_class_tpr": "worst-class TPR", "focus_tpr": f"{focus_class} TPR",
        "focus_train_tpr": f"{focus_class} train-subset TPR",
        "focus_train_margin": f"{focus_class} train-subset logit margin",
        "focus_train_ce": f"{focus_class} train-subset CE",
    }
    changes = {"d_accuracy": "Δ accuracy (pts, paired)", "d_worst_class_tpr": "Δ worst-class TPR (pts, paired)"}
    rows = []
    for _, row in table.iterrows():
        rows.append({"arm": row["arm"], "method": row_name(row["method"]), "epochs": int(row["budget"]),
                     "seeds": int(row["seeds"]),
                     **{label: mean_interval_text(row[column], row[f"{column}_ci"]) for column, label in shown.items()},
                     **{label: points_text(row[column], row[f"{column}_ci"]) for column, label in changes.items()}})
    return pd.DataFrame(rows)


def answer(table: pd.DataFrame, method: str, focus_class: str) -> str:
    """One paragraph, from the numbers, on how ``method``'s paired effect on the worst class changes with the
    budget in each arm, and what the focus class's training margin does meanwhile. It states what the arms
    show (changes with their 95 % intervals, whether the intervals at the two ends of the ladder overlap)
    and claims no mechanism beyond the margins measured."""
    rows = table[table["method"] == method]
    if rows.empty:
        return f"no runs of {method} in the ladder"
    sentences = [f"Paired change of the worst-class TPR for {row_name(method)} against the same budget's and arm's "
                 f"baseline, in points (mean ± 95 % interval over seeds):"]
    for arm in [arm for arm in ARMS if arm in set(rows["arm"])]:
        ladder = rows[rows["arm"] == arm].sort_values("budget")
        steps = ", ".join(f"{int(r.budget)} epochs {100 * r.d_worst_class_tpr:+.1f} ± {_half_points(r.d_worst_class_tpr_ci)}"
                          for r in ladder.itertuples())
        text = f"arm '{arm}' ({_arm_words(arm)}): {steps}"
        if len(ladder) > 1:
            first, last = ladder.iloc[0], ladder.iloc[-1]
            text += (f"; from {int(first.budget)} to {int(last.budget)} epochs the mean goes "
                     f"{100 * first.d_worst_class_tpr:+.1f} -> {100 * last.d_worst_class_tpr:+.1f} points, "
                     f"{'intervals overlapping' if overlapping(first, last) else 'intervals apart'}")
        sentences.append(text + ".")
    longest = int(rows["budget"].max())
    margins = []
    for r in rows[rows["budget"] == longest].itertuples():
        if math.isnan(r.focus_train_margin):
            continue
        base = table[(table["arm"] == r.arm) & (table["budget"] == longest) & (table["method"] == "baseline")]
        base_tpr = float(base["focus_train_tpr"].iloc[0]) if len(base) else math.nan
        margins.append(f"'{r.arm}': baseline {focus_class} train-subset TPR {base_tpr:.3f}, its mean training logit "
                       f"margin {baseline_value(table, r.arm, longest, 'focus_train_margin'):.2f} against "
                       f"{r.focus_train_margin:.2f} under {row_name(method)} (paired {r.d_focus_train_margin:+.2f} ± "
                       f"{_half(r.d_focus_train_margin_ci)}), unweighted training cross-entropy "
                       f"{baseline_value(table, r.arm, longest, 'focus_train_ce'):.3f} against {r.focus_train_ce:.3f}")
    if margins:
        sentences.append(f"At {longest} epochs, measured on a fixed training subset: " + "; ".join(margins) + ".")
    return " ".join(sentences)


def _arm_words(arm: str) -> str:
    changes = ARMS[arm]
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in changes.items()) or "the study's settings"


def _half(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _half_points(value: float) -> str:
    """A 95 % half-width given as a fraction, in points."""
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def augmentation_change(by_arm: dict[str, np.ndarray], classes: list[str]) -> str:
    """The line on :func:`lbw_utils.studies.training_length.per_class_tpr_by_arm` for ("main", "augment"): each
    class's change of mean test TPR with augmentation in points, most hurt first."""
    change = np.asarray(by_arm["augment"]).mean(0) - np.asarray(by_arm["main"]).mean(0)
    return "change of test TPR with augmentation (points): " + ", ".join(
        f"{c} {100 * d:+.1f}" for c, d in sorted(zip(classes, change), key=lambda item: item[1]))


def write_ladder_outputs(records: list[dict], folder: str | Path, focus: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's table (``tables/<dataset>/length.md`` formatted, ``length.csv`` raw), its generated answer
    (``length_answer.md``: :func:`answer` for every method) and its figures (``length_arms``: the first
    method's effect and margin in each arm of the whole ladder, where the study ran such arms; and these two)
    (``length_effect``: worst-class TPR and paired changes against the budget; ``length_train_vs_test``:
    the focus class's training-subset and test TPR); returns (table, formatted table). Notebooks 07 and 06
    both call it, so the paper's figures and the study's own are the same."""
    name = records[0]["dataset"]
    shown_name = dataset_name(name)
    table = ladder_table(records, focus)
    shown = formatted_ladder(table, focus)
    # The study's answer, generated from the same table (the README and docs quote this file, never a typed number).
    answers = [answer(table, method, focus) for method in table["method"].unique() if method != "baseline"]
    save_texts(folder, name, {"length.md": markdown_table(shown), "length.csv": table.to_csv(index=False),
                              "length_answer.md": "\n\n".join(answers) + "\n"})
    plots.budget_curves(table, {"worst_class_tpr": "worst-class TPR (%, test)",
                                "d_worst_class_tpr": "Δ worst-class TPR (pts)",
                                "d_accuracy": "Δ accuracy (pts)"},
                        percent=("worst_class_tpr", "d_worst_class_tpr", "d_accuracy"),
                        title=f"{shown_name}: each method's effect against the epoch budget (mean ± 95 % CI, "
                              "paired with the same budget's baseline)",
                        save_to=figure_path(folder, name, "length_effect"))
    # The arms over the whole ladder, one line per arm: the first method's effect and the focus class's margin.
    weighted = [m for m in table[table["arm"] != "main"]["method"].unique() if m != "baseline"]
    ladder_arms = table[table["arm"].isin(["main", *LADDER_ARMS]) & table["method"].isin(weighted[:1])]
    if len(weighted) and ladder_arms["arm"].nunique() > 1:
        by_arm = ladder_arms.assign(method=ladder_arms["arm"], arm="main")  # budget_curves draws one line per "method"
        plots.budget_curves(by_arm, {"d_worst_class_tpr": "Δ worst-class TPR (pts)",
                                     "d_focus_train_margin": f"Δ {focus} train logit margin",
                                     "focus_train_ce": f"{focus}: training CE"},
                            percent=("d_worst_class_tpr",), baseline="main",
                            title=f"{shown_name}: {row_name(weighted[0])} in each arm (line) against the epoch budget "
                                  "(mean ± 95 % CI, paired)",
                            save_to=figure_path(folder, name, "length_arms"))
    plots.budget_curves(table, {"focus_train_tpr": f"{focus}: training-subset TPR (%)",
                                "focus_tpr": f"{focus}: test TPR (%)"},
                        percent=("focus_train_tpr", "focus_tpr"),
                        title=f"{shown_name}: does the network fit {focus} on its training images?",
                        save_to=figure_path(folder, name, "length_train_vs_test"))
    return table, shown
