"""Notebook 09 as a reader sees it: the shift of the ceiling of re-deciding and each row's compute as tables and
sentences, what the targeted rows act on, the two planned comparisons, whether the post-hoc rows' accuracy budget
held on test, every re-decided row against re-deciding the baseline, and the generated answer; all from the
numbers of :mod:`lbw_utils.studies.representation` and :mod:`lbw_utils.stats`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import math

import numpy as np
import pandas as pd

from lbw_utils import records as run_records
from lbw_utils.reporting import plots
from lbw_utils.reporting.display import listed, row_name
from lbw_utils.reporting.outputs import save_texts
from lbw_utils.reporting.sentences import change_text, describe_change
from lbw_utils.reporting.separation import describe_separation, formatted_separation
from lbw_utils.reporting.tables import markdown_table, p_text
from lbw_utils.runs.experiments import figure_path
from lbw_utils.studies import redecision, representation
from lbw_utils.stats import (GOAL_MAX_ACCURACY_LOSS, GOAL_WORST_CLASS_GAIN, best_by_validation, paired_table,
                             validation_scores)


def formatted_compute(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.representation.compute_table`: each row's compute beside the baseline's."""
    def ratio(value) -> str:
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f" ({value:.2f}x)"

    return pd.DataFrame({
        "method": [row_name(label) for label in table["method"]], "seeds": table["seeds"],
        "networks trained": [f"{value:.0f}" for value in table.get("networks_trained", [1] * len(table))],
        "networks at inference": [f"{value:.0f}" for value in table.get("networks_at_inference", [1] * len(table))],
        "epochs x images x networks": [f"{value:,.0f}{ratio(r)}" for value, r in
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
            lines.append(f"{row_name(target['method'])}: augments {target['augmented']}")
        if target["pair_margins"] is not None:
            lines.append(f"{row_name(target['method'])}: largest pair margins (logits): "
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
    return (f"{row_name(method)} against {row_name(reference)} ({row['seeds']} seeds, paired by seed; test split): "
            f"{' and '.join(parts)} (paired t-tests, one planned comparison each).")


def _signed_points(mean: float, half_width: float) -> str:
    """A change given as a fraction, in signed points: ``+1.2 ± 0.3`` (no interval from one seed)."""
    return f"{100 * mean:+.1f}" + ("" if math.isnan(half_width) else f" ± {100 * half_width:.1f}")


def formatted_budget_overshoot(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.representation.budget_overshoot_table` in points."""
    def budget(value: float) -> str:
        return "none (objective without a budget)" if math.isnan(value) else f"{100 * value:.2f}"

    return pd.DataFrame({
        "method": [row_name(label) for label in table["method"]],
        "adjusts": [row_name(label) for label in table["adjusts"]], "seeds": table["seeds"],
        "budget held by": [hold if isinstance(hold, str) else "not recorded" for hold in table["hold"]],
        "stated budget (pts)": [budget(value) for value in table["stated_budget"]],
        "internal budget (pts, mean)": ["–" if math.isnan(value) else f"{100 * value:.2f}"
                                        for value in table["internal_budget"]],
        "test accuracy loss (pts)": [_signed_points(m, h) for m, h in zip(table["test_loss"], table["test_loss_ci"])],
        "overshoot (pts)": ["–" if math.isnan(value) else f"{100 * value:+.2f}" for value in table["overshoot"]],
        "seeds over budget": ["–" if math.isnan(k) else f"{int(k)} of {n}"
                              for k, n in zip(table["seeds_over_budget"], table["seeds"])],
    })


def describe_budget_overshoot(table: pd.DataFrame) -> str:
    """Sentences on a :func:`lbw_utils.studies.representation.budget_overshoot_table`: for which post-hoc rows
    the mean test accuracy loss (against the run each adjusts, same seed) stayed within the stated budget,
    for which it went over, each with its loss, budget and the seeds over it."""
    budgeted = table[table["stated_budget"].notna()]
    if budgeted.empty:
        return "No post-hoc row with an accuracy budget to check on test."

    def listed(rows: pd.DataFrame) -> str:
        return "; ".join(f"{row_name(row.method)} lost {_signed_points(row.test_loss, row.test_loss_ci)} points of test "
                         f"accuracy against a budget of {100 * row.stated_budget:.2f} ({row.seeds_over_budget:.0f} of "
                         f"{row.seeds} seeds over)" for row in rows.itertuples())

    over = budgeted[budgeted["over_budget"].astype(bool)]
    held = budgeted[~budgeted["over_budget"].astype(bool)]
    parts = [f"Did the validation budget hold on the test split? Each post-hoc run's test accuracy against the run "
             f"it adjusts (same seed), mean ± 95 % t half-width over seeds, {len(budgeted)} rows."]
    parts.append(f"Over the budget on average: {listed(over)}." if len(over) else "No row went over its budget on "
                 "average.")
    parts.append(f"Within it: {listed(held)}." if len(held) else "No row stayed within its budget on average.")
    return " ".join(parts)


def formatted_posthoc_vs_posthoc(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.representation.posthoc_vs_posthoc_table`: each re-decided row against
    re-deciding the baseline, beside the same row against the bare baseline (points, Holm-adjusted p)."""
    return pd.DataFrame({
        "method": [row_name(label) for label in table["method"]], "seeds": table["seeds"],
        "Δ worst-class TPR vs re-deciding the baseline (pts)": [
            _signed_points(m, h) for m, h in zip(table["d_worst_class_tpr"], table["d_worst_class_tpr_ci"])],
        "p (Holm)": [p_text(p) for p in table["p_worst_class_tpr_holm"]],
        "Δ accuracy vs re-deciding the baseline (pts)": [
            _signed_points(m, h) for m, h in zip(table["d_accuracy"], table["d_accuracy_ci"])],
        "p accuracy (Holm)": [p_text(p) for p in table["p_accuracy_holm"]],
        "Δ worst-class TPR vs baseline (pts)": [
            _signed_points(m, h) for m, h in zip(table["vs_baseline_d_worst_class_tpr"],
                                                 table["vs_baseline_d_worst_class_tpr_ci"])],
        "p vs baseline (Holm)": [p_text(p) for p in table["vs_baseline_p_worst_class_tpr_holm"]],
        "Δ accuracy vs baseline (pts)": [
            _signed_points(m, h) for m, h in zip(table["vs_baseline_d_accuracy"], table["vs_baseline_d_accuracy_ci"])],
    })


def describe_posthoc_vs_posthoc(table: pd.DataFrame, baseline_posthoc_label: str) -> str:
    """Sentences on a :func:`lbw_utils.studies.representation.posthoc_vs_posthoc_table`: which rows, after
    re-deciding, beat re-deciding the baseline (the 95 % interval of the paired worst-class change above 0),
    which fell behind it (below 0), and which show no difference, each with its changes of worst-class TPR and
    accuracy and the Holm-adjusted p."""
    if table.empty:
        return f"No re-decided row to compare with {row_name(baseline_posthoc_label)}."
    low = table["d_worst_class_tpr"] - table["d_worst_class_tpr_ci"]
    high = table["d_worst_class_tpr"] + table["d_worst_class_tpr_ci"]
    groups = {"beat": table[low > 0].sort_values("d_worst_class_tpr", ascending=False),
              "fell behind": table[high < 0].sort_values("d_worst_class_tpr")}
    no_interval = table[table["d_worst_class_tpr_ci"].isna()]
    shown = table[~table.index.isin([*groups["beat"].index, *groups["fell behind"].index, *no_interval.index])]
    seeds = f"{int(table['seeds'].min())}" + ("" if table["seeds"].min() == table["seeds"].max()
                                               else f"-{int(table['seeds'].max())}")
    parts = [f"After re-deciding, against re-deciding the baseline ({row_name(baseline_posthoc_label)}, the same seed's run; "
             f"test split, paired over {seeds} seeds, Holm over {len(table)} rows):"]
    for verdict, rows in groups.items():
        if len(rows):
            parts.append(f"{'Beat it' if verdict == 'beat' else 'Fell behind it'} (95 % interval of the worst-class "
                         "change away from 0): " + "; ".join(f"{row_name(row['method'])} {change_text(row)}"
                                                            for _, row in rows.iterrows()) + ".")
        else:
            parts.append(f"No row {verdict} it beyond its 95 % interval.")
    if len(shown):
        parts.append(f"No difference shown for {listed(map(row_name, shown['method']))}.")
    if len(no_interval):
        parts.append(f"No interval (one seed) for {listed(map(row_name, no_interval['method']))}.")
    return " ".join(parts)


def goal_against_posthoc(table: pd.DataFrame, baseline_posthoc_label: str) -> str:
    """The research goal counted against re-deciding the baseline, from a
    :func:`lbw_utils.studies.representation.posthoc_vs_posthoc_table`: the rows meeting it (mean paired changes,
    as :func:`lbw_utils.stats.paired_table` judges it), and the rows whose worst-class TPR rose (95 % interval
    above 0) while their mean accuracy stayed within the goal's accuracy budget of the reference."""
    goal = (f"+{100 * GOAL_WORST_CLASS_GAIN:.0f} points of worst-class TPR at no more than "
            f"{100 * GOAL_MAX_ACCURACY_LOSS:.1f} points of accuracy lost")
    if table.empty:
        return f"Against re-deciding the baseline ({row_name(baseline_posthoc_label)}): no re-decided row; goal not assessed."
    met = table[table["goal_met"].astype(bool)]
    up = table[(table["d_worst_class_tpr"] - table["d_worst_class_tpr_ci"] > 0)
               & (table["d_accuracy"] >= -GOAL_MAX_ACCURACY_LOSS)].sort_values("d_worst_class_tpr", ascending=False)
    verdict = f"met by {listed(map(row_name, met['method']))}." if len(met) else "not met."
    parts = [f"Goal against re-deciding the baseline ({row_name(baseline_posthoc_label)}, same seed; {goal}, paired, "
             f"mean over seeds; {len(table)} re-decided rows): {verdict}"]
    within = f"accuracy within {100 * GOAL_MAX_ACCURACY_LOSS:.1f} points of it (mean change)"
    if len(up):
        parts.append(f"Worst-class TPR up (95 % interval above 0) with {within}: "
                     + "; ".join(f"{row_name(row['method'])} {change_text(row)}" for _, row in up.iterrows()) + ".")
    else:
        parts.append(f"No re-decided row raised worst-class TPR beyond its 95 % interval with {within}.")
    return " ".join(parts)


def answer(records: list[dict], paired: pd.DataFrame, comparisons: list[tuple[str, str]], frontier_text: str,
           goal: str, posthoc_pairs: pd.DataFrame | None = None, baseline_posthoc_label: str | None = None) -> str:
    """What notebook 09's run says: the method selected on validation and its paired change, which rows' curves lie
    above the baseline's re-decision frontier (``frontier_text``: :func:`describe_frontier`), the ``goal``
    statement, each trained row's paired change (post-hoc rows, labelled with "+", are in the paired table) and
    the planned ``comparisons`` (:func:`lbw_utils.studies.representation.planned_comparisons`). With
    ``posthoc_pairs`` (a :func:`lbw_utils.studies.representation.posthoc_vs_posthoc_table` against ``baseline_posthoc_label``), the
    goal is counted against re-deciding the baseline as well (:func:`goal_against_posthoc`), and the rows that,
    after re-deciding, beat re-deciding the baseline are said (:func:`describe_posthoc_vs_posthoc`)."""
    if (posthoc_pairs is None) != (baseline_posthoc_label is None):
        raise ValueError(f"posthoc_pairs and baseline_posthoc_label={baseline_posthoc_label!r} go together: pass "
                         "both (the table and the label it was paired against) or neither")
    best = best_by_validation(records)
    compared = len(validation_scores(records))
    lines = [f"Selected on validation among {compared} methods: " + describe_change(paired, best),
             frontier_text.strip(), goal.strip()]
    if posthoc_pairs is not None:
        lines += [goal_against_posthoc(posthoc_pairs, baseline_posthoc_label),
                  describe_posthoc_vs_posthoc(posthoc_pairs, baseline_posthoc_label)]
    lines += ["- " + describe_change(paired, method) for method in paired["method"]
              if method != "baseline" and "+" not in method]
    lines += ["- " + head_to_head(records, method, reference) for method, reference in comparisons]
    return "\n\n".join(lines) + "\n"


def formatted_frontier(comparison: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.studies.redecision.frontier_comparison` for a page: per row and accuracy level, both
    rows' worst-class TPR after re-deciding on test (a reference) and the paired difference, in points."""
    return pd.DataFrame({
        "method": [row_name(label) for label in comparison["method"]],
        "accuracy level (%)": [f"{100 * v:.2f}" for v in comparison["level"]],
        "seeds": comparison["seeds"],
        "worst-class TPR (%)": [f"{100 * v:.1f}" for v in comparison["worst_class_tpr"]],
        "baseline's (%)": [f"{100 * v:.1f}" for v in comparison["baseline_worst_class_tpr"]],
        "Δ (pts)": [f"{100 * d:+.1f} ± {100 * c:.1f}" for d, c in
                    zip(comparison["difference"], comparison["difference_ci"])],
    })


def describe_frontier(verdicts: pd.DataFrame, levels: list[float]) -> str:
    """Markdown: what the re-decision frontier is, and per row whether its curve lies above the baseline's."""
    lines = [f"The re-decision frontier: at each test accuracy level from {100 * levels[0]:.2f} % down to "
             f"{100 * levels[-1]:.2f} % (every {100 * (levels[0] - levels[1]):.2f} point), the worst-class TPR that "
             "per-class offsets fitted on the test split itself reach while keeping that accuracy (a reference, not "
             "a method), paired by seed with the baseline's at the same level. A row whose curve lies above the "
             "baseline's at every level compared separates the classes better; one on it moved thresholds at most."]
    for row in verdicts.itertuples(index=False):
        lines.append(f"- {row_name(row.method)}: {row.verdict} ({row.levels_above} of {row.levels_compared} levels above, "
                     f"{row.levels_below} below, 95 % paired intervals).")
    return "\n".join(lines) + "\n"


@dataclass
class Redecision:
    """What :func:`save_redecision` wrote: the frontier's text, all the texts joined, and the pairing of every
    ``X+posthoc`` row with ``reference`` (re-deciding the baseline), None where there is nothing to pair."""

    frontier_text: str
    text: str
    posthoc_pairs: pd.DataFrame | None
    reference: str | None
    comparison: pd.DataFrame | None = None  # the frontier comparison (redecision.frontier_comparison)
    separation_text: str = ""  # does any row lie above the baseline's frontier, per inference cost (separation)
    separation: pd.DataFrame | None = None  # its table (representation.separation_summary)


def save_redecision(records: list[dict], runs_dir: str | Path, folder: str | Path, dataset: str,
                    baseline: str = "baseline", prefix: str = "") -> Redecision | None:
    """One dataset's re-decision frontier (:mod:`lbw_utils.studies.redecision`, from the test logits and labels
    saved beside each trained run under ``runs_dir``), its post-hoc rows' test overshoot of their budgets and every
    ``X+posthoc`` row paired with re-deciding the baseline; written to ``folder``'s ``tables/<dataset>/``
    (``<prefix>frontier.md``, ``<prefix>frontier_curves.csv``, ``<prefix>budget_overshoot.md``,
    ``<prefix>posthoc_vs_posthoc.md``) and its figure ``<prefix>redecision_frontier``. Notebook 06 calls it for
    every dataset, notebook 09 for its own runs (prefix ``beyond_``). None where the baseline has no saved test
    logits."""
    trained = [r for r in redecision.trained_records(records)
               if run_records.artifact_path(runs_dir, dataset, r["method_label"], r["seed"]).exists()]
    if baseline not in {r["method_label"] for r in trained}:
        return None
    levels = redecision.frontier_ladder_for(trained)
    curves = redecision.frontier_runs(runs_dir, trained, levels)
    comparison = redecision.frontier_comparison(curves, baseline)
    frontier_text = describe_frontier(redecision.frontier_verdicts(comparison), levels)
    # counted at the baseline's inference cost (one network) and at any cost (ensembles)
    separation_table = representation.separation_summary(comparison, representation.compute_table(trained), records)
    separation_text = describe_separation(separation_table, len({r["seed"] for r in trained}))
    texts = [frontier_text, separation_text]
    outputs = {"frontier.md": frontier_text + "\n" + markdown_table(formatted_frontier(comparison)),
               "frontier_curves.csv": curves.to_csv(index=False),
               "separation.md": separation_text + "\n" + markdown_table(formatted_separation(separation_table))}
    plots.plot_redecision_frontier(curves, redecision.validated_points(records),
                                   figure_path(folder, dataset, f"{prefix}redecision_frontier.png"), baseline=baseline)
    overshoot = representation.budget_overshoot_table(records)
    if len(overshoot):
        texts.append(describe_budget_overshoot(overshoot))
        outputs["budget_overshoot.md"] = texts[-1] + "\n\n" + markdown_table(formatted_budget_overshoot(overshoot))
    re_decided = [r["method_label"] for r in records if r["method"]["name"] == "posthoc"
                  and r["method"].get("of", {"name": baseline}) == {"name": baseline}]
    pairs, reference = None, None
    if re_decided and len({r["method_label"] for r in records if r["method"]["name"] == "posthoc"}) > 1:
        reference = re_decided[0]
        pairs = representation.posthoc_vs_posthoc_table(records, reference, baseline)
        texts.append(describe_posthoc_vs_posthoc(pairs, reference))
        outputs["posthoc_vs_posthoc.md"] = texts[-1] + "\n\n" + markdown_table(formatted_posthoc_vs_posthoc(pairs))
    save_texts(folder, dataset, {prefix + name: text for name, text in outputs.items()})
    return Redecision(frontier_text, "\n".join(texts), pairs, reference, comparison, separation_text,
                      separation_table)
