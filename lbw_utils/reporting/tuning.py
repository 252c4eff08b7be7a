"""Hyper-parameters chosen on tuning seeds (notebook 08) as a reader sees them: the table of every value, the
generated description of the choice, and whether the evaluated rows (notebooks 06 and 09) use the choice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lbw_utils.stats import GOAL_MAX_ACCURACY_LOSS
from lbw_utils.studies.tuning import choice_path, evaluated_values


def formatted_tuning(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.tuning.tuning_table`: each value's validation scores, and which is chosen."""
    return pd.DataFrame({
        "family": table["family"], "setting": [f"{k} {v}" for k, v in zip(table["key"], table["value"])],
        "tuning seeds": table["seeds"],
        "val worst-class TPR": [f"{v:.3f}" for v in table["val_worst_class_tpr"]],
        "val accuracy": [f"{v:.4f}" for v in table["val_accuracy"]],
        "Δ val accuracy vs baseline (pts)": [f"{100 * v:+.2f}" for v in table["d_val_accuracy"]],
        "within budget": ["yes" if v else "no" for v in table["within_budget"]],
        "chosen": ["**chosen**" if v else "" for v in table["chosen"]],
    })


def describe(table: pd.DataFrame, seeds: list[int], budget: float = GOAL_MAX_ACCURACY_LOSS) -> str:
    """Markdown: what was chosen, on which seeds, by which rule, among how many values."""
    lines = [f"Chosen on the validation splits of tuning seeds {seeds} (never evaluated): per family, the value "
             f"with the highest mean validation worst-class TPR among those within {100 * budget:.1f} points of the "
             "same seed's baseline validation accuracy (none within: the one losing least)."]
    for family, group in table.groupby("family", sort=False):
        picked = group[group["chosen"]]
        if picked.empty:
            lines.append(f"- {family}: no finished tuning run.")
            continue
        row = picked.iloc[0]
        lines.append(f"- {family}: {row['key']} {row['value']} among {len(group)} values "
                     f"(validation worst-class TPR {row['val_worst_class_tpr']:.3f}, accuracy "
                     f"{100 * row['d_val_accuracy']:+.2f} points against the baseline"
                     f"{'' if row['within_budget'] else ', outside the budget: no value was within it'}).")
    return "\n".join(lines) + "\n"


def check_evaluated(chosen: dict, evaluated: list[dict]) -> list[str]:
    """Sentences, one per family: do the evaluated records' methods of that family use the chosen value?
    (:func:`lbw_utils.studies.tuning.evaluated_values` says which values they use.)"""
    lines = []
    for family, used in evaluated_values(chosen, evaluated).items():
        pick = chosen[family]
        key = pick["key"]
        if not used:
            lines.append(f"{family}: no evaluated row of this family.")
        elif used == [repr(pick["value"])]:
            lines.append(f"{family}: the evaluated rows use {key} {pick['value']}, the value the tuning seeds chose.")
        elif repr(pick["value"]) in used:  # the choice beside other planned arms (e.g. a reference value)
            lines.append(f"{family}: the evaluated rows use {key} {', '.join(used)}, the tuning seeds' choice "
                         f"{pick['value']} among them.")
        else:
            lines.append(f"{family}: the evaluated rows use {key} {', '.join(used)}, but the tuning seeds of this run "
                         f"chose {pick['value']}: the profile's value is not this run's choice.")
    return lines


def tuning_check(choice: dict | None, evaluated: list[dict], folder: str | Path, dataset: str) -> str:
    """Notebook 09's line on its evaluated rows against the choice of ``dataset``'s tuning seeds in ``folder``
    (:func:`lbw_utils.studies.tuning.read_choice`; None: notebook 08 has not run there)."""
    if choice is None:
        return (f"no tuning choice in {choice_path(folder, dataset).parent} yet (notebook 08 writes it); the rows use "
                "the values the profile names")
    return f"tuning seeds {choice['seeds']}: " + " ".join(check_evaluated(choice["chosen"], evaluated))


def choice_findings(choice: dict, evaluated: list[dict]) -> str:
    """Notebook 06's findings line on the tuning seeds' choice (:func:`check_evaluated`)."""
    return (f"Hyper-parameters (tuning seeds {choice['seeds']}, notebook 08): "
            + " ".join(check_evaluated(choice["chosen"], evaluated)))
