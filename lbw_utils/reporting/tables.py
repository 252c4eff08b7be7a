"""The tables of the paper as a reader sees them: cells ``mean ± half-width``, markdown, CSV and LaTeX files.

The numbers come from :mod:`lbw_utils.stats` (method and paired tables, group and family changes); here they
are only formatted and written. A saved table is three files beside each other: ``stem.md`` (formatted),
``stem.csv`` (the raw numbers) and ``stem.tex`` (``booktabs``, for the paper). The formatted tables name each row
as a reader does (:func:`lbw_utils.reporting.display.row_name`); the CSV keeps the run labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lbw_utils.ceiling import CEILING_LABEL
from lbw_utils.files import atomic_write_text
from lbw_utils.reporting.display import row_name, with_row_names
from lbw_utils.stats import METRIC_KEYS, baseline_of

# The column title of each metric of a method table (lbw_utils.stats.METRIC_KEYS).
METRIC_TITLES = dict(zip(METRIC_KEYS, ("accuracy", "balanced acc.", "TPR std", "worst-class TPR",
                                       "D = Var(s) - Var(s')")))


def mean_interval_text(mean: float, half_width: float, digits: int = 3) -> str:
    """``mean ± half-width`` (just the mean without an interval, "–" without a mean)."""
    if math.isnan(mean):
        return "–"
    if math.isnan(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"


def points_text(mean: float, half_width: float) -> str:
    """A change given as a fraction, said in points with one decimal: ``mean ± half-width``."""
    return mean_interval_text(100 * mean, 100 * half_width, 1)


def p_text(value: float) -> str:
    """A p-value to three decimals ("<0.001" below, "–" for none)."""
    return "–" if math.isnan(value) else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def markdown_table(table: pd.DataFrame, digits: int | None = None) -> str:
    """A table as markdown (no index), numbers rounded to ``digits`` where given, with a final newline; a
    ``method`` column of run labels is shown by the rows' display names (names already shown stay as they are)."""
    if "method" in table.columns:
        table = with_row_names(table)
    return (table if digits is None else table.round(digits)).to_markdown(index=False) + "\n"


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.stats.method_table` as cells ``mean ± half-width``, one column per metric."""
    shown = pd.DataFrame({"method": [row_name(label) for label in table["method"]], "seeds": table["seeds"]})
    for key, title in METRIC_TITLES.items():
        digits = 4 if key == "D" else 3
        shown[title] = [mean_interval_text(m, h, digits) for m, h in zip(table[key], table[f"{key}_ci"])]
    shown["train s"] = [f"{value:.1f}" for value in table["train_seconds"]]
    return shown


def to_markdown(table: pd.DataFrame) -> str:
    return markdown_table(formatted(table))


# What pdflatex cannot take in a cell as it is: its special characters, and the Unicode signs of the names and
# headers (in this order: the escapes themselves add no character of a later key).
LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "^": r"\^{}", "±": r"$\pm$", "Δ": r"$\Delta$",
                 "γ": r"$\gamma$", "α": r"$\alpha$", "η": r"$\eta$", "τ": r"$\tau$", "≤": r"$\le$", "−": "-"}


def _latex_cell(value) -> str:
    text = str(value)
    for character, escaped in LATEX_ESCAPES.items():
        text = text.replace(character, escaped)
    return text


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A ``booktabs`` table; ``±`` becomes ``$\\pm$``, underscores and ``%`` are escaped."""
    return _latex(formatted(table), caption)


def _latex(shown: pd.DataFrame, caption: str = "") -> str:
    shown = shown.map(_latex_cell)
    shown.columns = [_latex_cell(column) for column in shown.columns]
    return shown.to_latex(index=False, caption=_latex_cell(caption) if caption else None, escape=False,
                          column_format="l" + "r" * (len(shown.columns) - 1), position="t")


def save_tables(table: pd.DataFrame, stem: str | Path, caption: str = "") -> dict[str, Path]:
    """Write ``stem.md`` (formatted), ``stem.csv`` (raw numbers) and ``stem.tex`` of a method table."""
    return _write_tables(formatted(table), table, stem, caption)


def _write_tables(shown: pd.DataFrame, raw: pd.DataFrame, stem: str | Path, caption: str) -> dict[str, Path]:
    stem = Path(stem)
    paths = {"md": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv"), "tex": stem.with_suffix(".tex")}
    atomic_write_text(paths["md"], markdown_table(shown))
    atomic_write_text(paths["csv"], raw.to_csv(index=False))
    atomic_write_text(paths["tex"], _latex(shown, caption))
    return paths


def formatted_paired(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.stats.paired_table` as text: absolute means, changes ``mean ± half-width`` in points
    with their Holm-adjusted p-values, the baseline's seed noise, the ceiling of re-deciding on top of each run,
    the Pareto front and the goal; then one row for the baseline's ceiling, labelled as what it is
    (:data:`lbw_utils.ceiling.CEILING_LABEL`)."""
    shown = pd.DataFrame({
        "method": [row_name(label) for label in table["method"]], "seeds": table["seeds"],
        "accuracy": [f"{value:.3f}" for value in table["accuracy"]],
        "worst-class TPR": [f"{value:.3f}" for value in table["worst_class_tpr"]],
        "Δ accuracy (pts)": [points_text(m, h) for m, h in zip(table["d_accuracy"], table["d_accuracy_ci"])],
        "Δ worst-class TPR (pts)": [points_text(m, h) for m, h in
                                    zip(table["d_worst_class_tpr"], table["d_worst_class_tpr_ci"])],
        "p Holm: acc / worst": [f"{p_text(a)} / {p_text(w)}" for a, w in
                                zip(table["p_accuracy_holm"], table["p_worst_class_tpr_holm"])],
        "ceiling on top: Δ worst (pts)": [points_text(m, h) for m, h in
                                          zip(table["d_ceiling"], table["d_ceiling_ci"])],
        "baseline seed std: acc / worst (pts)": [
            f"{100 * a:.1f} / {100 * w:.1f}" for a, w in
            zip(table["baseline_accuracy_std"], table["baseline_worst_class_tpr_std"])],
        "Pareto front": ["yes" if flag else "" for flag in table["pareto"]],
        "goal met": ["yes" if flag else "" for flag in table["goal_met"]],
    })
    ceilings = [_ceiling_row(shown.columns, row) for row in table.itertuples(index=False)
                if row.d_accuracy == 0 and row.method == baseline_of(table, row.dataset)
                and not math.isnan(row.d_ceiling)]
    return pd.concat([shown, pd.DataFrame(ceilings, columns=shown.columns)], ignore_index=True) if ceilings else shown


def _ceiling_row(columns, row) -> dict:
    cells = dict.fromkeys(columns, "")
    cells.update({"method": CEILING_LABEL, "seeds": row.seeds,
                  "worst-class TPR": f"{row.ceiling_worst_class_tpr:.3f}",
                  "Δ worst-class TPR (pts)": points_text(row.d_ceiling, row.d_ceiling_ci)})
    return cells


def save_paired_tables(table: pd.DataFrame, stem: str | Path, caption: str = "") -> dict[str, Path]:
    """The paired table's ``stem.md`` (formatted), ``stem.csv`` (raw numbers) and ``stem.tex``."""
    return _write_tables(formatted_paired(table), table, stem, caption)


def formatted_group_change(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`lbw_utils.stats.group_tpr_change` table, one row per group: the baseline's mean TPR over the
    group (its first row), then each method's paired change of it, ``mean ± half-width`` in points."""
    rows = []
    for group, part in table.groupby("group", sort=False):
        base = part.iloc[0]
        rows.append({"group": group, "baseline TPR": mean_interval_text(base["tpr"], base["tpr_ci"]),
                     **{f"Δ {row_name(row.method)} (pts)": mean_interval_text(row.d_pts, row.d_pts_ci, digits=1)
                        for row in part.iloc[1:].itertuples()}})
    return pd.DataFrame(rows)


def family_table(paired: pd.DataFrame, other_paired: pd.DataFrame, difference: pd.DataFrame, methods: list[str],
                 families: tuple[str, str] = ("rnn", "bag")) -> pd.DataFrame:
    """Two model families side by side: per method, its paired change of worst-class TPR and accuracy on each
    family (two :func:`lbw_utils.stats.paired_table`), in points, and the first family's change minus the
    second's, paired by seed (a :func:`lbw_utils.stats.family_difference`)."""
    rows = []
    for label in methods:
        row = {"method": row_name(label)}
        for family, table in zip(families, (paired, other_paired)):
            found = table[table["method"] == label]
            if not found.empty:
                row[f"Δ worst ({family}, pts)"] = points_text(found.iloc[0]["d_worst_class_tpr"],
                                                              found.iloc[0]["d_worst_class_tpr_ci"])
                row[f"Δ acc ({family}, pts)"] = points_text(found.iloc[0]["d_accuracy"],
                                                            found.iloc[0]["d_accuracy_ci"])
        rows.append(row)
    shown = pd.DataFrame(rows)
    for _, found in difference.iterrows():
        shown.loc[shown["method"] == row_name(found["method"]), f"{families[0]} minus {families[1]}, Δ worst (pts)"] = (
            points_text(found["diff_worst_class_tpr"], found["diff_worst_class_tpr_ci"]))
    return shown


def class_change_table(changes: dict[str, pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """Per method (``changes``: label -> its :func:`lbw_utils.stats.paired_tpr_change`), the paired change of
    each of ``classes``' test TPR in points, ``mean ± half-width``, and the baseline's seed noise of each."""
    rows = []
    for label, change in changes.items():
        change = change.set_index("class")
        rows.append({"method": row_name(label),
                     **{f"Δ {c} (pts)": points_text(change.loc[c, "mean change"], change.loc[c, "95% CI ±"])
                        for c in classes},
                     **{f"{c}: baseline seed std (pts)": round(100 * change.loc[c, "baseline seed std"], 1)
                        for c in classes}})
    return pd.DataFrame(rows)
