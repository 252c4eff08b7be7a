"""Notebook 05 (the names study) as a reader sees it: what the study runs, and the generated answer, from the
numbers of :mod:`lbw_utils.stats` and :mod:`lbw_utils.studies.pooled`; paired sentences said of folds where the
study is k-fold (:func:`lbw_utils.reporting.sentences.fold_wording`)."""

from __future__ import annotations

import pandas as pd

from lbw_utils.reporting.display import listed, row_name
from lbw_utils.reporting.sentences import describe_change, family_difference_statement, fold_wording, goal_statement
from lbw_utils.stats import paired_table, validation_scores
from lbw_utils.studies.names import BAG, NamesStudy


def study_lines(study: NamesStudy) -> list[str]:
    """What the study runs: the baseline's configuration, the splits, the tuning share held out of them, the
    reference rows and the weightings."""
    settings, partition = study.settings, study.settings.data.partition_seed
    lines = ["baseline: " + " ".join(map(str, (
        study.model_config, settings.model.name, settings.model.options or "(default sizes)",
        f"{settings.train.epochs} epochs, batch {settings.train.batch_size}, lr {settings.train.lr}"))),
        "splits: " + (f"{study.folds}-fold cross-fitting (partition {partition}), folds {settings.seeds}"
                      if study.folds else f"random 80/10/10 per seed, seeds {settings.seeds}"),
        _tuning_share_line(settings.data.tuning_share),
        f"reference rows: {listed(map(row_name, study.reference_labels))}",
        f"weighting methods: {listed(map(row_name, study.weighting_labels))}"]
    if study.bag:
        lines.append(f"weighting methods on the n-gram bag: {listed(map(row_name, study.bag_labels))}")
    return lines


def _tuning_share_line(share: float | None) -> str:
    """The share of each class's names held out for tuning: fixed for every fold and partition seed, cut
    before the splits above, so never in an evaluated run's training, validation or test split."""
    if share is None:
        return "tuning share: none (every name is split for evaluation)"
    return (f"tuning share: {100 * share:g} % of each class's names held out for tuning, the same for every fold and "
            "partition seed, never evaluated; the splits cut only the other names")


def answer_lines(study: NamesStudy, records: list[dict], paired: pd.DataFrame, best: str,
                 changes: dict[str, pd.DataFrame], focus: list[str], pooled_best: pd.DataFrame | None = None,
                 bag_paired: pd.DataFrame | None = None, difference: pd.DataFrame | None = None) -> list[str]:
    """The answer, generated from the records: the goal, the weighting selected on validation (``best``), each
    weighting's paired change of the ``focus`` classes (``changes``: label -> its
    :func:`lbw_utils.stats.paired_tpr_change`) and overall, the pooled per-class TPR of the baseline and the
    reference rows (k-fold: ``pooled_best``, a :func:`lbw_utils.studies.pooled.pooled_summary`), and the
    weightings on the n-gram bag (``bag_paired``) with the two families' ``difference``."""
    say = fold_wording if study.folds is not None else (lambda text: text)
    name = records[0]["dataset"]
    lines = [say(goal_statement(paired, name)),
             f"Selected on validation among {len(validation_scores(records))} weightings: "
             + say(describe_change(paired, best))]
    for label, change in changes.items():
        change = change.set_index("class")
        lines.append(f"{row_name(label)}: " + ", ".join(f"{c} {100 * change.loc[c, 'mean change']:+.1f} ± "
                                              f"{100 * change.loc[c, '95% CI ±']:.1f}" for c in focus)
                     + " points of test TPR; " + say(describe_change(paired, label)))
    if study.folds is not None:
        lines += _pooled_lines(pooled_best.set_index("method"), study.reference_labels)
    if study.bag:
        lines += [f"On the n-gram bag, {say(describe_change(bag_paired, label))}" for label in study.bag_labels
                  if label in set(bag_paired["method"])]
        lines.append(family_difference_statement(difference, "the recurrent network", "the n-gram bag", study.unit))
        lines += against_bag_lines(records, study.unit)
    return lines


def against_bag_lines(records: list[dict], unit: str = "fold") -> list[str]:
    """Does an ensemble of recurrent networks, or its distilled student, reach the n-gram bag? Each such row
    paired by ``unit`` with the bag's baseline (the main tables' row ``ngram-bag``): accuracy and worst-class TPR."""
    rows = [r for r in records if r["method"]["name"] in ("ensemble", "distill")]
    if not rows or BAG not in {r["method_label"] for r in records}:
        return []
    paired = paired_table(rows + [r for r in records if r["method_label"] == BAG], baseline_label=BAG)
    lines = []
    for row in paired[paired["method"] != BAG].itertuples(index=False):
        reaches = row.d_accuracy + row.d_accuracy_ci >= 0 and row.d_worst_class_tpr + row.d_worst_class_tpr_ci >= 0
        lines.append(f"{row_name(row.method)} against the n-gram bag (paired by {unit}, {row.seeds} {unit}s): accuracy "
                     f"{100 * row.d_accuracy:+.1f} ± {100 * row.d_accuracy_ci:.1f} points, worst-class TPR "
                     f"{100 * row.d_worst_class_tpr:+.1f} ± {100 * row.d_worst_class_tpr_ci:.1f} points: "
                     + ("no shortfall against the bag shown on either (neither interval lies below 0)." if reaches
                        else "short of the bag on at least one (its interval lies below 0)."))
    return lines


def _pooled_lines(pooled: pd.DataFrame, references: list[str]) -> list[str]:
    """The baseline's pooled accuracy and worst class over every name, then each reference row's."""
    base = pooled.loc["baseline"]
    lines = [f"Pooled over {base['folds']} folds ({base['test names']} test names): the baseline's "
             f"accuracy {base['pooled accuracy']:.3f}, worst class {base['worst class']} at "
             f"{base['worst-class pooled TPR']:.3f} (95 % Wilson {base['95% Wilson low']:.3f}-"
             f"{base['95% Wilson high']:.3f})."]
    for label in references:
        if label in pooled.index:
            row = pooled.loc[label]
            lines.append(f"  {row_name(label)}: accuracy {row['pooled accuracy']:.3f}, worst class {row['worst class']} at "
                         f"{row['worst-class pooled TPR']:.3f} ({row['95% Wilson low']:.3f}-"
                         f"{row['95% Wilson high']:.3f}).")
    return lines
