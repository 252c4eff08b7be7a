"""Every figure of the study, in one style fit for a paper, saved as PNG and PDF as well as shown.

Functions take plain arrays, tables and class names, return the matplotlib Figure, and save it when given
``save_to`` (a path without suffix). What a reader sees of a run is its display name
(:func:`lbw_utils.reporting.display.row_name`), never its label; datasets are named as people write them by the
callers' titles. The rules every figure keeps: a distinct colour and marker per series (the baseline black; no
colour repeats within a panel), at most :data:`MAX_SERIES` series of methods a panel (the rest are in the table,
and a note says how many), absolute rates in per cent and changes in points, a reference curve said to be one
("reference, not a method"), and the layout constrained so that no text is clipped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.patches
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from lbw_utils.reporting.display import adjusted_run, row_name
from lbw_utils.stats import GOAL_MAX_ACCURACY_LOSS, GOAL_WORST_CLASS_GAIN, mean_interval

STYLE = {
    "figure.dpi": 110,
    "figure.constrained_layout.use": True,  # labels and legends outside the axes are made room for
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # text stays text in the PDF
}
# A paper's widths in inches: one column of a two-column page, and the whole text width.
COLUMN_WIDTH = 3.4
TEXT_WIDTH = 7.0
# Methods a panel draws at most, the baseline included; the rest are named in the table.
MAX_SERIES = 8
# The baseline's style; the other series take the colours and markers below in order, so none repeats in a panel
# (colour-blind-safe colours, Okabe and Ito; no yellow, which a white page hides).
BASELINE_COLOUR, BASELINE_MARKER = "#222222", "o"
SERIES_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#882255", "#999933"]
SERIES_MARKERS = ["s", "^", "D", "v", "P", "X", "<", ">"]
# Classes and seeds (up to ten colours, then the markers tell them apart) and the markers of their curves.
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]
# What a curve of re-deciding on the test split is, in every legend that draws one.
REFERENCE = "reference, not a method"


def series_styles(labels, baseline: str = "baseline") -> dict[str, tuple[str, str]]:
    """A distinct (colour, marker) per run label, the baseline black with circles, the others in order; a
    ValueError for more than :data:`MAX_SERIES` labels (choose the key rows first: :func:`key_rows`)."""
    labels = list(dict.fromkeys(labels))
    if len(labels) > MAX_SERIES:
        raise ValueError(f"{len(labels)} series in one panel is more than MAX_SERIES={MAX_SERIES}: draw the key rows "
                         "(key_rows) and leave the others to the table")
    others = iter(zip(SERIES_COLOURS, SERIES_MARKERS))
    return {label: (BASELINE_COLOUR, BASELINE_MARKER) if label == baseline else next(others) for label in labels}


def key_rows(labels, *, first=(), baseline: str = "baseline", limit: int = MAX_SERIES) -> list[str]:
    """At most ``limit`` of ``labels`` (in their order of importance): the baseline, then ``first`` (e.g. the
    Pareto front), then the others in the order given; a post-hoc row comes with the run it adjusts (where that
    run is among ``labels``), so its arrow can be drawn, or not at all."""
    labels = list(dict.fromkeys(labels))
    ordered = [baseline] * (baseline in labels) + [label for label in first if label in labels and label != baseline]
    ordered += [label for label in labels if label not in ordered]
    chosen: list[str] = []
    for label in ordered:
        base = adjusted_run(label)
        needed = [label] if base not in labels or base in chosen else [base, label]
        if label not in chosen and len(chosen) + len(needed) <= limit:
            chosen += [needed_label for needed_label in needed if needed_label not in chosen]
    return chosen


def class_style(index: int) -> tuple[str, str]:
    """The colour and marker of the ``index``-th class (or seed): no two classes share both."""
    return PALETTE[index % len(PALETTE)], MARKERS[(index // len(PALETTE)) % len(MARKERS)]


def save_figure(figure: matplotlib.figure.Figure, save_to: str | Path | None) -> list[Path]:
    """Write ``save_to.png`` and ``save_to.pdf``; nothing when ``save_to`` is None. A ``.png`` suffix of
    ``save_to`` is dropped; any other is kept (labels like ``ema-alpha0.01`` contain dots)."""
    if save_to is None:
        return []
    stem = Path(save_to)
    stem = stem.with_suffix("") if stem.suffix == ".png" else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    # Append, never replace, a suffix: labels like "ema-alpha0.01" contain dots.
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    for path in paths:
        figure.savefig(path)
    return paths


def _finish(figure, axes, title: str, save_to: str | Path | None):
    """Every plot's last step: its title, saved when ``save_to`` is given, the figure returned."""
    axes.set_title(title, loc="left")
    save_figure(figure, save_to)
    return figure


def _new_figure(width: float, height: float):
    # The style is set globally (not in a context) because notebooks draw and
    # save figures after this function returns.
    matplotlib.rcParams.update(STYLE)
    return plt.subplots(figsize=(width, height))


def _legend(figure, handles, labels, notes=(), **options):
    """The figure's legend outside its axes (the layout makes room), with ``notes`` (rows left to the table, points
    off the chart) as entries without a marker at its end, each wrapped to the legend's width."""
    blank = matplotlib.lines.Line2D([], [], ls="", marker="")
    notes = [textwrap.fill(note, 70) for note in notes if note]
    return figure.legend([*handles, *[blank] * len(notes)], [*labels, *notes], **options)


def _left_out(left: int) -> str:
    """The note on rows a panel leaves to the table."""
    return f"{left} more row{'s' if left != 1 else ''} in the table" if left else ""


def tpr_bars(runs: dict[str, np.ndarray], classes: list[str], *, title: str = "", ylabel: str = "test TPR (%)",
             sort: bool = False, baseline: str = "baseline", save_to: str | Path | None = None):
    """Grouped bars of per-class TPR in per cent; each run (a label -> ``[C]`` or ``[seeds, C]`` TPRs as
    fractions) is one series (bar = mean, whisker = 95 % CI), at most :data:`MAX_SERIES`. ``sort``: classes from
    the lowest to the highest mean TPR of the first run."""
    if sort:
        order = np.argsort(np.atleast_2d(np.asarray(next(iter(runs.values())), dtype=float)).mean(0), kind="stable")
        runs = {label: np.atleast_2d(np.asarray(values, dtype=float))[:, order] for label, values in runs.items()}
        classes = [classes[index] for index in order]
    styles = series_styles(runs, baseline)
    width_in = min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.3 * len(classes) * max(1, len(runs)) ** 0.5 + 1.2))
    figure, axes = _new_figure(width_in, 2.8)
    width = 0.8 / max(1, len(runs))
    positions = np.arange(len(classes))
    for index, (label, values) in enumerate(runs.items()):
        per_seed = 100 * np.atleast_2d(np.asarray(values, dtype=float))
        stats = [mean_interval(per_seed[:, c]) for c in range(len(classes))]
        means = np.array([s[0] for s in stats])
        errors = np.array([0.0 if np.isnan(s[1]) else s[1] for s in stats])
        offset = (index - (len(runs) - 1) / 2) * width
        colour = styles[label][0]
        axes.bar(positions + offset, means, width, yerr=errors if per_seed.shape[0] > 1 else None, capsize=2,
                 color=colour, edgecolor=colour, hatch=None if index == 0 else "//" * (index % 2),
                 label=f"{row_name(label)} (n = {per_seed.shape[0]})")
    axes.set_xticks(positions, classes, rotation=30 if len(classes) <= 12 else 90, ha="right")
    low = np.nanmin([np.nanmin(np.asarray(v, dtype=float)) for v in runs.values()])
    axes.set_ylim(max(0.0, 100 * low - 10), 100.0)
    axes.set_ylabel(ylabel)
    if len(runs) > 1 or per_seed.shape[0] > 1:
        axes.legend(loc="lower left")
    return _finish(figure, axes, title, save_to)


def confusion_matrix_plot(matrix, classes: list[str], *, title: str = "", save_to: str | Path | None = None):
    """Row-normalised confusion matrix (each row: where that class's samples went)."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    size = min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.4 * len(classes) + 1.5))
    figure, axes = _new_figure(size, size * 0.9)
    axes.grid(False)
    image = axes.imshow(100 * rows, cmap="Blues", vmin=0, vmax=100)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(classes) <= 15:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if rows[i, j] >= 0.005:
                    axes.text(j, i, f"{100 * rows[i, j]:.0f}", ha="center", va="center", fontsize=6,
                              color="white" if rows[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="% of the true class")
    return _finish(figure, axes, title, save_to)


def pareto_plot(table, *, title: str = "", accuracy_window: float = 0.05, paired=None, baseline: str = "baseline",
                save_to: str | Path | None = None):
    """Accuracy against worst-class TPR per method, in per cent (means with 95 % intervals); up-right is better.

    At most :data:`MAX_SERIES` rows are drawn: the baseline, the Pareto front, then the others by worst-class TPR;
    a note says how many are left to the table. Rows more than ``accuracy_window`` below the most accurate one
    are named in the note instead of drawn, so that one collapsed method does not squash the rest. An arrow runs
    from a drawn row to its drawn ``+ post-hoc offsets`` row. With ``paired`` (a
    :func:`lbw_utils.stats.paired_table`), the Pareto front is ringed, the research goal (+15 points of
    worst-class TPR at <= 0.5 points of accuracy lost, from the baseline's means) is shaded, and the baseline's
    ceiling of re-deciding (:mod:`lbw_utils.ceiling`) is a dashed line, said to be a reference.
    """
    figure, axes = _new_figure(TEXT_WIDTH, 4.6)
    axes.grid(True, alpha=0.3)
    # The baseline is always drawn: the goal region is measured from it.
    near = table[(table["accuracy"] >= table["accuracy"].max() - accuracy_window) | (table["method"] == baseline)]
    front = [] if paired is None else list(paired.loc[paired["pareto"].astype(bool), "method"])
    by_worst = near.sort_values("worst_class_tpr", ascending=False)["method"]
    drawn = key_rows(by_worst, first=[m for m in by_worst if m in front], baseline=baseline)
    styles = series_styles(drawn, baseline)
    points = {}
    for label in drawn:
        row = near[near["method"] == label].iloc[0]
        colour, marker = styles[label]
        x, y = 100 * row["worst_class_tpr"], 100 * row["accuracy"]
        axes.errorbar(x, y, xerr=_points(row["worst_class_tpr_ci"]), yerr=_points(row["accuracy_ci"]), fmt=marker,
                      capsize=2, ms=5, color=colour, label=row_name(label) + (" (front)" if label in front else ""),
                      zorder=3)
        if label in front:
            axes.scatter(x, y, s=150, facecolors="none", edgecolors="#222222", lw=0.8, zorder=2)
        points[label] = (x, y)
    _posthoc_arrows(axes, points, styles)
    notes = []
    hidden = table[~table.index.isin(near.index)]
    if len(hidden):
        notes.append("off the chart (accuracy): " + "; ".join(
            f"{row_name(method)} ({100 * accuracy:.1f} %)" for method, accuracy in zip(hidden.method, hidden.accuracy)))
    notes.append(_left_out(len(near) - len(drawn)))
    base = table[table["method"] == baseline]
    if paired is not None and len(base):
        _shade_goal(axes, 100 * float(base["worst_class_tpr"].iloc[0]), 100 * float(base["accuracy"].iloc[0]))
        _ceiling_line(axes, paired, baseline)
    axes.set_xlabel("worst-class TPR (%, test)")
    axes.set_ylabel("accuracy (%, test)")
    _legend(figure, *axes.get_legend_handles_labels(), notes, loc="outside lower center", ncol=2)
    return _finish(figure, axes, title, save_to)


def _points(half_width: float) -> float | None:
    """A 95 % half-width in points (None where there is none)."""
    return None if half_width is None or np.isnan(half_width) else 100 * half_width


def _posthoc_arrows(axes, points: dict[str, tuple[float, float]], styles: dict[str, tuple[str, str]]) -> None:
    """An arrow from each drawn run to its drawn ``+ post-hoc offsets`` row (:func:`adjusted_run`)."""
    for label, end in points.items():
        base = adjusted_run(label)
        if base in points:
            axes.annotate("", xy=end, xytext=points[base], zorder=1,
                          arrowprops={"arrowstyle": "->", "color": styles[base][0], "lw": 0.8, "shrinkA": 4,
                                      "shrinkB": 4})


def _ceiling_line(axes, paired, baseline: str) -> None:
    """The baseline's ceiling of re-deciding (mean over seeds, in per cent) as a vertical line: a reference."""
    row = paired[paired["method"] == baseline]
    if not len(row) or "ceiling_worst_class_tpr" not in row or np.isnan(row["ceiling_worst_class_tpr"].iloc[0]):
        return
    x = 100 * float(row["ceiling_worst_class_tpr"].iloc[0])
    axes.axvline(x, color="#666666", ls="--", lw=1.0,
                 label=f"ceiling of re-deciding the baseline ({REFERENCE})")
    left, right = axes.get_xlim()
    axes.set_xlim(min(left, x - 1), max(right, x + 1))


def _shade_goal(axes, baseline_worst: float, baseline_accuracy: float) -> None:
    """The research goal's region (per cent), up-right of (baseline worst + gain, baseline accuracy - allowed loss)."""
    goal_x, goal_y = baseline_worst + 100 * GOAL_WORST_CLASS_GAIN, baseline_accuracy - 100 * GOAL_MAX_ACCURACY_LOSS
    (left, right), (bottom, top) = axes.get_xlim(), axes.get_ylim()
    # Widen the view so the region shows even when every method is far from it.
    right, top = max(right, goal_x + 2), max(top, goal_y + 0.3)
    label = (f"goal: +{100 * GOAL_WORST_CLASS_GAIN:.0f} pts worst-class TPR, "
             f"≤ {100 * GOAL_MAX_ACCURACY_LOSS:.1f} pts accuracy lost")
    axes.add_patch(matplotlib.patches.Rectangle((goal_x, goal_y), right - goal_x, top - goal_y, color="#55A868",
                                                alpha=0.15, lw=0, label=label))
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)


def paired_change_bars(change, *, title: str = "", save_to: str | Path | None = None):
    """Per class: mean paired TPR change against the same seed's baseline in points (bar, 95 % CI whisker), next to
    ± the baseline's seed-to-seed std (grey band: the noise a change has to beat).

    ``change`` is a :func:`lbw_utils.stats.paired_tpr_change` table (fractions).
    """
    figure, axes = _new_figure(min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.4 * len(change) + 1.2)), 2.8)
    positions = np.arange(len(change))
    noise = 100 * np.nan_to_num(change["baseline seed std"].to_numpy(dtype=float))
    axes.bar(positions, 2 * noise, 0.9, bottom=-noise, color="#BBBBBB", alpha=0.5, label="± baseline seed std")
    errors = 100 * np.nan_to_num(change["95% CI ±"].to_numpy(dtype=float))
    means = 100 * change["mean change"].to_numpy(dtype=float)
    colours = [SERIES_COLOURS[0] if mean >= 0 else SERIES_COLOURS[1] for mean in means]
    axes.bar(positions, means, 0.55, yerr=errors, capsize=3, color=colours,
             label=f"mean change ± 95 % CI (n = {int(change['seeds'].iloc[0])} seeds)")
    axes.axhline(0.0, color="#333333", lw=0.8)
    axes.set_xticks(positions, change["class"], rotation=30 if len(change) <= 12 else 90, ha="right")
    axes.set_ylabel("Δ test TPR (pts)")
    axes.legend(loc="best")
    return _finish(figure, axes, title, save_to)


def class_curves(curves: np.ndarray, classes: list[str], *, xlabel: str, ylabel: str, title: str = "",
                 style: str = "-", axes=None, save_to: str | Path | None = None):
    """One line per class over time: ``curves`` is ``[steps, C]`` (EMA importance, TPR per epoch, ...); each
    class its colour and marker (:func:`class_style`)."""
    curves = np.asarray(curves, dtype=float)
    figure, axes = (_new_figure(COLUMN_WIDTH * 1.5, 3.0) if axes is None else (axes.figure, axes))
    steps = np.arange(1, len(curves) + 1)
    for index, name in enumerate(classes):
        colour, marker = class_style(index)
        axes.plot(steps, curves[:, index], style, color=colour, marker=marker, ms=3,
                  markevery=max(1, len(steps) // 8), label=name, lw=1.2)
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(ncol=2 if len(classes) > 6 else 1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(figure, axes, title, save_to)


def train_vs_val_tpr(train_tpr: np.ndarray, val_tpr: np.ndarray, classes: list[str], *, title: str = "",
                     save_to: str | Path | None = None):
    """Per-class TPR on a training subset (dashed) and on validation (solid) after each epoch."""
    figure, axes = _new_figure(COLUMN_WIDTH * 1.6, 3.0)
    class_curves(val_tpr, classes, xlabel="epoch", ylabel="TPR", axes=axes)
    train_tpr = np.asarray(train_tpr, dtype=float)
    for index in range(len(classes)):
        axes.plot(np.arange(1, len(train_tpr) + 1), train_tpr[:, index], "--", color=class_style(index)[0],
                  lw=1.0, alpha=0.8)
    return _finish(figure, axes, title or "TPR per class: training subset (dashed) vs validation (solid)", save_to)


def seed_spread(tpr_per_seed: np.ndarray, classes: list[str], *, title: str = "",
                save_to: str | Path | None = None):
    """Each seed's TPR per class as a dot, with the across-seed range as a line."""
    values = np.asarray(tpr_per_seed, dtype=float)
    figure, axes = _new_figure(min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.4 * len(classes) + 1.5)), 2.8)
    positions = np.arange(len(classes))
    axes.vlines(positions, values.min(0), values.max(0), color="#999999", lw=3, alpha=0.5)
    for seed_index, row in enumerate(values):
        colour, marker = class_style(seed_index)
        axes.plot(positions, row, marker, color=colour, ms=4, ls="", label=f"seed {seed_index}")
    axes.set_xticks(positions, classes, rotation=30, ha="right")
    axes.set_ylabel("TPR (test)")
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(figure, axes, title or "TPR per class across seeds (line: range)", save_to)


def budget_curves(table, columns: dict[str, str], *, arm: str = "main", title: str = "", percent=(),
                  baseline: str = "baseline", save_to: str | Path | None = None):
    """One panel per column of a training-length table (see :func:`lbw_utils.studies.training_length.ladder_table`):
    the column's mean against the epoch budget, one line per method (its display name; at most
    :data:`MAX_SERIES`, the baseline first, a note counting the others), a 95 % band (``<column>_ci``). The columns named in ``percent`` (fractions: rates and
    their changes) are drawn times 100, so rates read in per cent and changes in points."""
    rows = table[table["arm"] == arm]
    methods = list(dict.fromkeys(rows["method"]))
    drawn = key_rows(methods, baseline=baseline)
    rows = rows[rows["method"].isin(drawn)]
    styles = series_styles(drawn, baseline)
    matplotlib.rcParams.update(STYLE)
    figure, panels = plt.subplots(1, len(columns), figsize=(min(TEXT_WIDTH, 2.4 * len(columns) + 0.4), 2.6),
                                  squeeze=False)
    for axes, (column, label) in zip(panels[0], columns.items()):
        scale = 100.0 if column in percent else 1.0
        for method, group in rows.groupby("method", sort=False):
            group = group.sort_values("budget")
            x = group["budget"].to_numpy()
            mean, half = scale * group[column].to_numpy(), scale * group[f"{column}_ci"].to_numpy()
            colour, marker = styles[method]
            axes.plot(x, mean, marker=marker, color=colour, label=row_name(method), lw=1.2, ms=4)
            if np.isfinite(half).any():
                axes.fill_between(x, mean - half, mean + half, color=colour, alpha=0.15, lw=0)
        if column.startswith("d_"):
            axes.axhline(0.0, color="#555555", lw=0.8)
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.set_xticks(sorted(rows["budget"].unique()))
        axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axes.set_xlabel("epochs (budget)")
        axes.set_ylabel(label)
    handles, labels = panels[0][0].get_legend_handles_labels()
    _legend(figure, handles, labels, [_left_out(len(methods) - len(drawn))], loc="outside lower center",
            ncol=min(len(labels), 3))
    figure.suptitle(title, x=0.0, ha="left", fontsize=9)
    save_figure(figure, save_to)
    return figure


def _reached_curve(curves, method: str):
    """A row's mean worst-class TPR per accuracy level, at the levels every seed of the row reached."""
    own = curves[curves["method"] == method]
    everywhere = own.groupby("level")["reached"].agg(lambda reached: bool(reached.astype(bool).all()))
    return own[own["level"].isin(everywhere[everywhere].index)].groupby("level")["worst_class_tpr"].mean()


def _highest_curves_first(curves, baseline: str) -> list[str]:
    """The rows of ``curves``, the baseline first, then by their mean height above the baseline's curve over the
    levels both reached on every seed (highest first; a row sharing no level with it last): the panel keeps the
    rows that separate best when it cannot keep them all."""
    rows = list(dict.fromkeys(curves["method"]))
    if baseline not in rows:
        return rows
    base = _reached_curve(curves, baseline)

    def gap(method: str) -> float:
        shared = _reached_curve(curves, method).align(base, join="inner")
        return float((shared[0] - shared[1]).mean()) if len(shared[0]) else float("-inf")

    others = sorted((row for row in rows if row != baseline), key=gap, reverse=True)
    return [baseline, *others]


def plot_redecision_frontier(curves, validated_points, path: str | Path, *, baseline: str = "baseline"):
    """The re-decision frontier of each trained row (:mod:`lbw_utils.studies.redecision`, a reference, not a
    method) at a paper's column width: per accuracy level (x, the floor the offsets keep, %), the mean worst-class
    TPR over seeds (%), drawn only where every seed of the row reached the level; the baseline's line black and
    emphasised; at most :data:`MAX_SERIES` rows (the baseline first, then the rows whose curves lie highest above
    its; a note says how many are left to the table).
    On top, each drawn row's ``validated_points`` (columns ``method``, ``accuracy``, ``worst_class_tpr``,
    optionally ``row``: the trained row a point belongs to, e.g. a ``+posthoc`` row's base): its own test point
    filled, a post-hoc row's point hollow in the same colour and marker with an arrow from the row's own point
    (test points: the curves are of test scores too). Saved as ``<path>.png`` and ``<path>.pdf`` (a ``.png``
    suffix of ``path`` is replaced, any other kept, as labels contain dots)."""
    figure, axes = _new_figure(COLUMN_WIDTH, 3.6)
    axes.grid(True, alpha=0.3)
    rows = key_rows(_highest_curves_first(curves, baseline), baseline=baseline)
    styles = series_styles(rows, baseline)
    for row in rows:
        shown = _reached_curve(curves, row)
        colour, marker = styles[row]
        axes.plot(100 * shown.index.to_numpy(), 100 * shown.to_numpy(), "-", marker=marker, ms=2.5, color=colour,
                  label=row_name(row), lw=2.0 if row == baseline else 1.1, zorder=3 if row == baseline else 2)
    own_points = {}
    for point in validated_points.itertuples(index=False):
        row = getattr(point, "row", point.method)
        if row not in styles:
            continue
        colour, marker = styles[row]
        posthoc = point.method != row
        xy = (100 * point.accuracy, 100 * point.worst_class_tpr)
        axes.plot(*xy, marker, ms=5, color=colour, markerfacecolor="white" if posthoc else colour,
                  markeredgewidth=1.0, zorder=4)
        if not posthoc:
            own_points[row] = xy
    for point in validated_points.itertuples(index=False):
        row = getattr(point, "row", point.method)
        if point.method != row and row in own_points:
            axes.annotate("", xy=(100 * point.accuracy, 100 * point.worst_class_tpr), xytext=own_points[row],
                          zorder=3, arrowprops={"arrowstyle": "->", "color": styles[row][0], "lw": 0.8,
                                                "shrinkA": 3, "shrinkB": 3})
    handles, labels = axes.get_legend_handles_labels()
    handles += [matplotlib.lines.Line2D([], [], ls="", marker="o", color="#666666", ms=4),
                matplotlib.lines.Line2D([], [], ls="", marker="o", color="#666666", markerfacecolor="white", ms=4)]
    labels += ["a row's test point, as trained", "→ with post-hoc offsets (validation-fitted)"]
    _legend(figure, handles, labels, [_left_out(len(dict.fromkeys(curves["method"])) - len(rows))],
            loc="outside lower center", ncol=1, title=f"curves: re-decision frontier ({REFERENCE})", title_fontsize=7)
    axes.set_xlabel("test accuracy (%)")
    axes.set_ylabel("worst-class TPR (%, test)")
    save_figure(figure, path)
    return figure
