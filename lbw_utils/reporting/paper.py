"""Notebook 06: every table, figure and finding of the paper for one dataset, from its run records.

The tables go to ``tables/<dataset>/`` (every method; the paired changes and the goal where a baseline ran), the
figures to ``figures/<dataset>/``, the findings are returned for :func:`lbw_utils.reporting.outputs.save_texts`.
Which of the paper's figures a dataset's baseline bars are is read from its records' data description, never
from its name (:func:`baseline_bars`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils.reporting import plots
from lbw_utils.reporting.display import dataset_name, row_name
from lbw_utils.reporting.outputs import save_texts
from lbw_utils.reporting.sentences import describe_change, goal_statement, trajectory_summary
from lbw_utils.reporting.tables import formatted_paired, save_paired_tables, save_tables, to_markdown
from lbw_utils.reporting.tuning import choice_findings
from lbw_utils.runs.experiments import figure_path, table_path
from lbw_utils.stats import (best_by_validation, method_table, paired_table, paired_tpr_change, tpr_by_seed,
                             validation_scores)
from lbw_utils.studies.tuning import read_choice


def save_dataset_tables(records: list[dict], folder: str | Path,
                        baseline: str = "baseline") -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One dataset's method table (``methods``) and, where a baseline ran, its paired table (``paired``) and goal
    statement (``goal.md``), written under ``folder``; returns (method table, paired table, what to print)."""
    dataset = records[0]["dataset"]
    table = method_table(records, baseline)
    seeds = sorted({r["seed"] for r in records})
    save_tables(table, table_path(folder, dataset, "methods"),
                caption=f"{dataset_name(dataset)}: test metrics, mean and 95% interval over seeds {seeds}")
    shown = [f"\n### {dataset_name(dataset)}\n", to_markdown(table)]
    paired = paired_table(records, baseline)
    if len(paired):
        save_paired_tables(paired, table_path(folder, dataset, "paired"))
        goal = goal_statement(paired, dataset, baseline)
        save_texts(folder, dataset, {"goal.md": goal})
        shown += [formatted_paired(paired).to_markdown(index=False), "\n" + goal]
    return table, paired, shown


def baseline_bars(record: dict) -> tuple[str, bool]:
    """(figure name, sort the classes?) of a dataset's baseline TPR bars, from one of its records: image data
    (its description gives an input shape) is the paper's Fig. 1, classes in their label order; any other
    task, such as the names, is Fig. 2, lowest TPR first (42 nationalities have no order of their own)."""
    images = "input_shape" in record["parameters"]["data"]
    return ("fig1_tpr_bars", False) if images else ("fig2_tpr_bars", True)


def save_dataset_figures(records: list[dict], folder: str | Path, table: pd.DataFrame, paired: pd.DataFrame,
                         baseline: str = "baseline") -> list[str]:
    """One dataset's figures: the baseline's TPR bars (:func:`baseline_bars`); where other methods ran, the
    baseline against the weighting best on validation, that weighting's per-class paired change and the Pareto
    plot (``table``, ``paired``: the dataset's method and paired tables); the weight trajectories of the first
    seed. Returns what to print (why figures were skipped)."""
    dataset, classes = records[0]["dataset"], records[0]["classes"]
    name = dataset_name(dataset)
    labels = {r["method_label"] for r in records}
    if baseline not in labels:
        return [f"{dataset}: no '{baseline}' records, skipping its figures"]
    _, base_tpr = tpr_by_seed(records, baseline)
    figure_name, sort = baseline_bars(records[0])
    plots.tpr_bars({baseline: base_tpr}, classes, title=f"{name}: per-class test TPR of the baseline",
                   sort=sort, save_to=figure_path(folder, dataset, figure_name))
    if len(labels) > 1:
        best = best_by_validation(records, exclude=(baseline,))  # weightings only, no reference row
        _, best_tpr = tpr_by_seed(records, best)
        plots.tpr_bars({baseline: base_tpr, best: best_tpr}, classes, sort=sort,
                       title=f"{name}: baseline vs {row_name(best)} (best on validation)",
                       save_to=figure_path(folder, dataset, "baseline_vs_best"))
        plots.paired_change_bars(paired_tpr_change(records, best, baseline),
                                 title=f"{name}: {row_name(best)} minus the same seed's baseline (test TPR)",
                                 save_to=figure_path(folder, dataset, "paired_change_best"))
        plots.pareto_plot(table, paired=paired,
                          title=f"{name}: accuracy vs worst-class TPR (mean ± 95 % CI; ringed: Pareto front)",
                          save_to=figure_path(folder, dataset, "pareto"))
    first_seed = min(r["seed"] for r in records)
    for record in records:
        if (record.get("weights") or {}).get("trajectory") and record["seed"] == first_seed:
            plots.class_curves(np.array(record["weights"]["trajectory"]), classes, xlabel="update",
                               ylabel="class weight", title=f"{name}: {row_name(record['method_label'])} weights",
                               save_to=figure_path(folder, dataset, f"trajectory_{record['method_label']}"))
    return []


def findings(records: list[dict], paired: pd.DataFrame, folder: str | Path, baseline: str = "baseline") -> str | None:
    """One dataset's findings (markdown): the weighting selected on validation and its paired change, whether the
    evaluated rows use the values its tuning seeds chose (where notebook 08 ran in ``folder``), and the CDB
    runs' weight trajectories; None where the dataset has no baseline or nothing to compare with it."""
    dataset = records[0]["dataset"]
    if len(paired) < 2 or baseline not in {r["method_label"] for r in records}:
        return None
    candidates = validation_scores(records, exclude=(baseline,))
    best = best_by_validation(records, exclude=(baseline,))
    lines = [f"**{dataset_name(dataset)}** (generated from {len(records)} run records). Selected on validation (highest mean "
             f"validation worst-class TPR among {len(candidates)} weightings; post-hoc rows cross-fitted): "
             + describe_change(paired, best, dataset)]
    choice = read_choice(folder, dataset)
    if choice is not None:
        lines.append(choice_findings(choice, records))
    lines += [trajectory_summary(records, label)
              for label in sorted({r["method_label"] for r in records if r["method"]["name"] == "cdb"})]
    return "\n\n".join(lines) + "\n"

