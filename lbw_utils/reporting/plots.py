"""Every figure of the study, in one style, saved as PNG and PDF as well as shown.

Functions take plain arrays and class names, return the matplotlib Figure, and
save it when given ``save_to`` (a path without suffix).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.patches
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from lbw_utils.ceiling import CEILING_LABEL
from lbw_utils.stats import GOAL_MAX_ACCURACY_LOSS, GOAL_WORST_CLASS_GAIN, mean_interval

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 160,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]


def save_figure(figure: matplotlib.figure.Figure, save_to: str | Path | None) -> list[Path]:
    """Write ``save_to.png`` and ``save_to.pdf``; nothing when ``save_to`` is None."""
    if save_to is None:
        return []
    stem = Path(save_to)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # Append, never replace, a suffix: labels like "ema-alpha0.01" contain dots.
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    for path in paths:
        figure.savefig(path)
    return paths


def _finish(figure, axes, title: str, save_to: str | Path | None):
    """Every plot's last step: its title, saved when ``save_to`` is given, the figure returned."""
    axes.set_title(title)
    save_figure(figure, save_to)
    return figure


def _new_figure(width: float, height: float):
    # The style is set globally (not in a context) because notebooks draw and
    # save figures after this function returns.
    matplotlib.rcParams.update(STYLE)
    return plt.subplots(figsize=(width, height))


def tpr_bars(runs: dict[str, np.ndarray], classes: list[str], *, title: str = "", ylabel: str = "TPR (recall)",
             sort: bool = False, save_to: str | Path | None = None):
    """Grouped bars of per-class TPR; each run is ``[C]`` or ``[seeds, C]`` (bar = mean, whisker = 95 % CI).
    ``sort``: classes from the lowest to the highest mean TPR of the first run."""
    if sort:
        order = np.argsort(np.atleast_2d(np.asarray(next(iter(runs.values())), dtype=float)).mean(0), kind="stable")
        runs = {label: np.atleast_2d(np.asarray(values, dtype=float))[:, order] for label, values in runs.items()}
        classes = [classes[index] for index in order]
    figure, axes = _new_figure(min(14.0, max(6.0, 0.65 * len(classes) * max(1, len(runs)) ** 0.5 + 2)), 3.6)
    width = 0.8 / max(1, len(runs))
    positions = np.arange(len(classes))
    for index, (label, values) in enumerate(runs.items()):
        per_seed = np.atleast_2d(np.asarray(values, dtype=float))
        stats = [mean_interval(per_seed[:, c]) for c in range(len(classes))]
        means = np.array([s[0] for s in stats])
        errors = np.array([0.0 if np.isnan(s[1]) else s[1] for s in stats])
        offset = (index - (len(runs) - 1) / 2) * width
        axes.bar(positions + offset, means, width, yerr=errors if per_seed.shape[0] > 1 else None,
                 color=PALETTE[index % len(PALETTE)], label=f"{label} (n={per_seed.shape[0]})", capsize=2)
    axes.set_xticks(positions, classes, rotation=30 if len(classes) <= 12 else 90, ha="right")
    low = np.nanmin([np.nanmin(np.asarray(v, dtype=float)) for v in runs.values()])
    axes.set_ylim(max(0.0, low - 0.1), 1.0)
    axes.set_ylabel(ylabel)
    if len(runs) > 1 or per_seed.shape[0] > 1:
        axes.legend(loc="lower left", fontsize=8)
    return _finish(figure, axes, title, save_to)


def confusion_matrix_plot(matrix, classes: list[str], *, title: str = "", save_to: str | Path | None = None):
    """Row-normalised confusion matrix (each row: where that class's samples went)."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    size = max(4.5, 0.45 * len(classes) + 2)
    figure, axes = _new_figure(size, size * 0.9)
    axes.grid(False)
    image = axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(classes) <= 15:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if rows[i, j] >= 0.005:
                    axes.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=7,
                              color="white" if rows[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    return _finish(figure, axes, title, save_to)


def pareto_plot(table, *, title: str = "", accuracy_window: float = 0.05, paired=None, baseline: str = "baseline",
                save_to: str | Path | None = None):
    """Accuracy against worst-class TPR per method (means with 95 % intervals); up-right is better.

    Methods more than ``accuracy_window`` below the most accurate one are named in a
    note instead of drawn, so that one collapsed method does not squash the rest. With ``paired``
    (a :func:`lbw_utils.stats.paired_table`), the Pareto front is ringed and the research goal
    (+15 points of worst-class TPR at <= 0.5 points of accuracy lost, from the baseline's means) is
    shaded, and the baseline's ceiling of re-deciding (:mod:`lbw_utils.ceiling`) is a dashed line.
    """
    figure, axes = _new_figure(7.5, 4.4)
    axes.grid(True, alpha=0.3)
    # The baseline is always drawn: the goal region is measured from it.
    shown = table[(table["accuracy"] >= table["accuracy"].max() - accuracy_window) | (table["method"] == baseline)]
    front = set() if paired is None else set(paired.loc[paired["pareto"].astype(bool), "method"])
    for index, row in enumerate(shown.itertuples(index=False)):
        label = row.method + (" (front)" if row.method in front else "")
        axes.errorbar(row.worst_class_tpr, row.accuracy, xerr=_finite(row.worst_class_tpr_ci),
                      yerr=_finite(row.accuracy_ci), fmt=MARKERS[index % len(MARKERS)], capsize=2, ms=6,
                      color=PALETTE[index % len(PALETTE)], label=label)
        if row.method in front:
            axes.scatter(row.worst_class_tpr, row.accuracy, s=220, facecolors="none", edgecolors="#222222", lw=1.0)
    hidden = table[~table.index.isin(shown.index)]
    if len(hidden):
        note = "off the chart (accuracy): " + ", ".join(
            f"{method} ({accuracy:.3f})" for method, accuracy in zip(hidden.method, hidden.accuracy))
        figure.text(0.01, -0.02, note, fontsize=7, color="#555555")
    base = table[table["method"] == baseline]
    if paired is not None and len(base):
        _shade_goal(axes, float(base["worst_class_tpr"].iloc[0]), float(base["accuracy"].iloc[0]))
        _ceiling_line(axes, paired, baseline)
    axes.set_xlabel("worst-class TPR (test)")
    axes.set_ylabel("accuracy (test)")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(figure, axes, title, save_to)


def _ceiling_line(axes, paired, baseline: str) -> None:
    """The baseline's ceiling of re-deciding (mean over seeds) as a vertical line: no method, a reference."""
    row = paired[paired["method"] == baseline]
    if not len(row) or "ceiling_worst_class_tpr" not in row or np.isnan(row["ceiling_worst_class_tpr"].iloc[0]):
        return
    x = float(row["ceiling_worst_class_tpr"].iloc[0])
    axes.axvline(x, color="#8172B2", ls="--", lw=1.2, label=f"{CEILING_LABEL} (baseline)")
    left, right = axes.get_xlim()
    axes.set_xlim(min(left, x - 0.01), max(right, x + 0.01))


def _shade_goal(axes, baseline_worst: float, baseline_accuracy: float) -> None:
    """The research goal's region, up-right of (baseline worst + gain, baseline accuracy - allowed loss)."""
    goal_x, goal_y = baseline_worst + GOAL_WORST_CLASS_GAIN, baseline_accuracy - GOAL_MAX_ACCURACY_LOSS
    (left, right), (bottom, top) = axes.get_xlim(), axes.get_ylim()
    # Widen the view so the region shows even when every method is far from it.
    right, top = max(right, goal_x + 0.02), max(top, goal_y + 0.003)
    label = (f"goal: +{100 * GOAL_WORST_CLASS_GAIN:.0f} pts worst-class TPR, "
             f"≤ {100 * GOAL_MAX_ACCURACY_LOSS:.1f} pts accuracy lost")
    axes.add_patch(matplotlib.patches.Rectangle((goal_x, goal_y), right - goal_x, top - goal_y, color="#55A868",
                                                alpha=0.15, lw=0, label=label))
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)


def paired_change_bars(change, *, title: str = "", save_to: str | Path | None = None):
    """Per class: mean paired TPR change against the same seed's baseline (bar, 95 % CI whisker), next to
    ± the baseline's seed-to-seed std (grey band: the noise a change has to beat).

    ``change`` is a :func:`lbw_utils.stats.paired_tpr_change` table.
    """
    figure, axes = _new_figure(max(6.0, 0.65 * len(change) + 2), 3.4)
    positions = np.arange(len(change))
    noise = np.nan_to_num(change["baseline seed std"].to_numpy(dtype=float))
    axes.bar(positions, 2 * noise, 0.9, bottom=-noise, color="#BBBBBB", alpha=0.5, label="± baseline seed std")
    errors = np.nan_to_num(change["95% CI ±"].to_numpy(dtype=float))
    means = change["mean change"].to_numpy(dtype=float)
    colours = [PALETTE[0] if mean >= 0 else PALETTE[3] for mean in means]
    axes.bar(positions, means, 0.55, yerr=errors, capsize=3, color=colours,
             label=f"mean change ± 95 % CI (n={int(change['seeds'].iloc[0])} seeds)")
    axes.axhline(0.0, color="#333333", lw=0.8)
    axes.set_xticks(positions, change["class"], rotation=30 if len(change) <= 12 else 90, ha="right")
    axes.set_ylabel("Δ TPR vs same seed's baseline")
    axes.legend(loc="best", fontsize=8)
    return _finish(figure, axes, title, save_to)


def _finite(value: float) -> float | None:
    return None if value is None or np.isnan(value) else value


def class_curves(curves: np.ndarray, classes: list[str], *, xlabel: str, ylabel: str, title: str = "",
                 style: str = "-", axes=None, save_to: str | Path | None = None):
    """One line per class over time: ``curves`` is ``[steps, C]`` (EMA importance, TPR per epoch, ...)."""
    curves = np.asarray(curves, dtype=float)
    figure, axes = (_new_figure(6.5, 3.8) if axes is None else (axes.figure, axes))
    steps = np.arange(1, len(curves) + 1)
    for index, name in enumerate(classes):
        axes.plot(steps, curves[:, index], style, color=PALETTE[index % len(PALETTE)], label=name, lw=1.4)
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, ncol=2 if len(classes) > 6 else 1, loc="best")
    return _finish(figure, axes, title, save_to)


def train_vs_val_tpr(train_tpr: np.ndarray, val_tpr: np.ndarray, classes: list[str], *, title: str = "",
                     save_to: str | Path | None = None):
    """Per-class TPR on a training subset (dashed) and on validation (solid) after each epoch."""
    figure, axes = _new_figure(7.0, 4.0)
    class_curves(val_tpr, classes, xlabel="epoch", ylabel="TPR", axes=axes)
    train_tpr = np.asarray(train_tpr, dtype=float)
    for index in range(len(classes)):
        axes.plot(np.arange(1, len(train_tpr) + 1), train_tpr[:, index], "--", color=PALETTE[index % len(PALETTE)],
                  lw=1.0, alpha=0.8)
    return _finish(figure, axes, title or "TPR per class: training subset (dashed) vs validation (solid)", save_to)


def seed_spread(tpr_per_seed: np.ndarray, classes: list[str], *, title: str = "",
                save_to: str | Path | None = None):
    """Each seed's TPR per class as a dot, with the across-seed range as a line."""
    values = np.asarray(tpr_per_seed, dtype=float)
    figure, axes = _new_figure(max(6.0, 0.6 * len(classes) + 2), 3.6)
    positions = np.arange(len(classes))
    axes.vlines(positions, values.min(0), values.max(0), color="#999999", lw=3, alpha=0.5)
    for seed_index, row in enumerate(values):
        axes.plot(positions, row, "o", color=PALETTE[seed_index % len(PALETTE)], ms=4, label=f"seed {seed_index}")
    axes.set_xticks(positions, classes, rotation=30, ha="right")
    axes.set_ylabel("TPR (test)")
    axes.legend(fontsize=7)
    return _finish(figure, axes, title or "TPR per class across seeds (line: range)", save_to)


def budget_curves(table, columns: dict[str, str], *, arm: str = "main", title: str = "",
                  save_to: str | Path | None = None):
    """One panel per column of a training-length table (see :func:`lbw_utils.studies.training_length.ladder_table`):
    the column's mean against the epoch budget, one line per method, a 95 % band (``<column>_ci``)."""
    rows = table[table["arm"] == arm]
    matplotlib.rcParams.update(STYLE)
    figure, panels = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.6), squeeze=False)
    for axes, (column, label) in zip(panels[0], columns.items()):
        for index, (method, group) in enumerate(rows.groupby("method", sort=False)):
            group = group.sort_values("budget")
            x, mean, half = group["budget"].to_numpy(), group[column].to_numpy(), group[f"{column}_ci"].to_numpy()
            color = PALETTE[index % len(PALETTE)]
            axes.plot(x, mean, marker=MARKERS[index % len(MARKERS)], color=color, label=method, lw=1.4)
            if np.isfinite(half).any():
                axes.fill_between(x, mean - half, mean + half, color=color, alpha=0.15, lw=0)
        if column.startswith("d_"):
            axes.axhline(0.0, color="#555555", lw=0.8)
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.set_xticks(sorted(rows["budget"].unique()))
        axes.set_xlabel("epochs (budget)")
        axes.set_ylabel(label)
    panels[0][0].legend(fontsize=7, loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, save_to)
    return figure


def plot_redecision_frontier(curves, validated_points, path: str | Path, *, baseline: str = "baseline"):
    """The re-decision frontier of each trained row (:mod:`lbw_utils.studies.redecision`) at a paper's column
    width: per accuracy level (x, the floor the offsets keep), the mean worst-class TPR over seeds, drawn only
    where every seed of the row reached the level; the baseline's line emphasised. On top, each row's
    ``validated_points`` (columns ``method``, ``accuracy``, ``worst_class_tpr``, optionally ``row``: the trained
    row a point belongs to, e.g. a ``+posthoc`` row's base): circles for a row's own test point, triangles for
    post-hoc rows (test points: the curves are of test scores too). Saved as ``<path>.png`` (200 dpi) and
    ``<path>.pdf`` (a ``.png`` suffix of ``path`` is replaced, any other kept, as labels contain dots)."""
    figure, axes = _new_figure(3.4, 2.6)
    axes.grid(True, alpha=0.3)
    rows = list(dict.fromkeys(curves["method"]))
    rows = [baseline] * (baseline in rows) + [row for row in rows if row != baseline]
    colours = {row: "#222222" if row == baseline else PALETTE[index % len(PALETTE)] for index, row in enumerate(rows)}
    for row in rows:
        own = curves[curves["method"] == row]
        everywhere = own.groupby("level")["reached"].agg(lambda reached: bool(reached.astype(bool).all()))
        shown = own[own["level"].isin(everywhere[everywhere].index)].groupby("level")["worst_class_tpr"].mean()
        # small dots on the levels: a row reached on every seed at one level only is still seen
        axes.plot(100 * shown.index.to_numpy(), 100 * shown.to_numpy(), ".-", ms=2.5, color=colours[row], label=row,
                  lw=2.0 if row == baseline else 1.1, zorder=3 if row == baseline else 2)
    for point in validated_points.itertuples(index=False):
        row = getattr(point, "row", point.method)
        posthoc = point.method != row
        axes.plot(100 * point.accuracy, 100 * point.worst_class_tpr, "^" if posthoc else "o", ms=4,
                  color=colours.get(row, "#888888"), markeredgecolor="white", markeredgewidth=0.4, zorder=4)
    handles, labels = axes.get_legend_handles_labels()
    handles += [matplotlib.lines.Line2D([], [], ls="", marker=m, color="#666666", ms=4) for m in ("o", "^")]
    labels += ["as trained", "+ post-hoc offsets"]
    axes.legend(handles, labels, fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    axes.set_xlabel("test accuracy (%)", fontsize=9)
    axes.set_ylabel("worst-class TPR (%), test", fontsize=9)
    axes.tick_params(labelsize=8)
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix == ".png" else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf"):
        figure.savefig(stem.with_name(stem.name + suffix), dpi=200)
    return figure
