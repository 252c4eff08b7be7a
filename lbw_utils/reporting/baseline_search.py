"""The baseline search (notebook 00) as a reader sees it: every candidate's validation scores, the generated
description of what was chosen and what it bought, and whether an evaluated study trains the chosen recipe."""

from __future__ import annotations

import json

import pandas as pd

from lbw_utils.studies.baseline_search import describe_changes, differences


def formatted_search(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.baseline_search.search_table` for a page: points, compute and the choice."""
    return pd.DataFrame({
        "stage": table["stage"], "candidate": table["candidate"],
        "compute (x regime)": [f"{v:.2f}" for v in table["compute"]],
        "tuning seeds": table["seeds"],
        "val accuracy (%)": [f"{100 * v:.2f} ± {100 * c:.2f}" for v, c in
                             zip(table["val_accuracy"], table["val_accuracy_ci"])],
        "val worst-class TPR (%)": [f"{100 * v:.1f} ± {100 * c:.1f}" for v, c in
                                    zip(table["val_worst_class_tpr"], table["val_worst_class_tpr_ci"])],
        "train s": [f"{v:.1f}" for v in table["train_seconds"]],
        "chosen": ["**chosen**" if v else "" for v in table["chosen"]],
    })


def describe(table: pd.DataFrame, seeds: list[int], regime: dict) -> str:
    """Markdown: the rule, the recipe chosen, what it bought over the regime's starting recipe on validation,
    and where each reference (a larger compute) lands."""
    searched = table[table["stage"] != "reference"]
    # the regime's own recipe where a stage tried it (its first stage's candidates differ from it by one change)
    as_given = searched[[json.loads(recipe) == regime for recipe in searched["recipe"]]]
    start = (as_given if len(as_given) else searched).iloc[0]
    chosen = searched[searched["chosen"]].iloc[-1]
    recipe = json.loads(chosen["recipe"])
    changed = {key: value for key, value in recipe.items() if key in regime and regime[key] != value}
    lines = [f"Chosen on the validation splits of tuning seeds {seeds} (never evaluated): stage by stage, the "
             "candidate with the highest mean validation accuracy (ties: higher worst-class TPR) becomes the base "
             "of the next stage; every candidate costs the regime's compute within 10 %.",
             f"- The baseline recipe: {describe_changes(changed) if changed else 'the regime as given'} "
             f"(compute {chosen['compute']:.2f}x the regime's).",
             f"- On validation it reached {100 * chosen['val_accuracy']:.2f} % accuracy and "
             f"{100 * chosen['val_worst_class_tpr']:.1f} % worst-class TPR, against "
             f"{100 * start['val_accuracy']:.2f} % and {100 * start['val_worst_class_tpr']:.1f} % for "
             f"{'the regime as given' if len(as_given) else 'the first candidate'} ({start['candidate']}): "
             f"{100 * (chosen['val_accuracy'] - start['val_accuracy']):+.2f} and "
             f"{100 * (chosen['val_worst_class_tpr'] - start['val_worst_class_tpr']):+.1f} points."]
    for _, reference in table[table["stage"] == "reference"].iterrows():
        gap = reference["val_accuracy"] - chosen["val_accuracy"]
        verdict = ("beats the chosen baseline on validation accuracy: at the regime's compute the search did not "
                   "reach it" if gap > 0 else "does not beat the chosen baseline on validation accuracy")
        lines.append(f"- Reference {reference['candidate']} ({reference['compute']:.2f}x the compute): "
                     f"{100 * reference['val_accuracy']:.2f} % accuracy, "
                     f"{100 * reference['val_worst_class_tpr']:.1f} % worst-class TPR ({100 * gap:+.2f} points of "
                     f"accuracy); it {verdict}.")
    return "\n".join(lines) + "\n"


def check_evaluated(chosen: dict | None, evaluated: dict) -> str:
    """One sentence: does the evaluated study train the recipe the search chose?"""
    if chosen is None:
        return "No baseline search ran in this results folder; the evaluated recipe is the profile's."
    changed = differences(chosen, evaluated)
    if not changed:
        return "The evaluated baseline trains the recipe the baseline search chose on its tuning seeds."
    shown = ", ".join(f"{key} {was} chosen, {now} trained" for key, (was, now) in changed.items())
    return f"The evaluated baseline differs from the recipe the baseline search chose: {shown}."
