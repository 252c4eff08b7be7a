"""lbw_utils.reporting.plots: the Pareto plot's front and goal region, and the per-class paired changes."""

from __future__ import annotations

import matplotlib.collections
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lbw_utils import stats
from lbw_utils.reporting import plots


def records() -> list[dict]:
    """Three seeds of a baseline, a method on the front and a dominated one."""
    made = []
    for seed, shift in enumerate((0.0, 0.02, -0.02)):
        for method, tpr in (("baseline", [0.98, 0.70]), ("lifted", [0.86, 0.80]), ("worse", [0.95, 0.68])):
            tpr = [value + shift for value in tpr]
            summary = {"accuracy": float(np.mean(tpr)), "balanced_accuracy": float(np.mean(tpr)), "tpr": tpr,
                       "tpr_std": float(np.std(tpr)), "worst_class_tpr": min(tpr), "worst_class": "shirt"}
            made.append({"dataset": "fashion_mnist", "method_label": method, "seed": seed, "test": summary,
                         "val": summary, "classes": ["bag", "shirt"], "train_seconds": 1.0})
    return made


def test_pareto_plot_rings_the_front_and_shades_the_goal(tmp_path):
    table, paired = stats.method_table(records()), stats.paired_table(records())
    figure = plots.pareto_plot(table, paired=paired, save_to=tmp_path / "pareto")
    axes = figure.axes[0]
    goal = [p for p in axes.patches if isinstance(p, matplotlib.patches.Rectangle) and "goal" in p.get_label()]
    assert len(goal) == 1
    assert goal[0].get_x() == pytest.approx(0.70 + stats.GOAL_WORST_CLASS_GAIN)
    assert goal[0].get_y() == pytest.approx(0.84 - stats.GOAL_MAX_ACCURACY_LOSS)
    assert axes.get_xlim()[1] > goal[0].get_x()  # widened so that the region shows
    rings = [c for c in axes.collections if isinstance(c, matplotlib.collections.PathCollection)]
    assert len(rings) == int(paired["pareto"].sum()) == 2  # baseline (most accurate) and lifted
    labels = axes.get_legend_handles_labels()[1]
    assert "lifted (front)" in labels and "worse" in labels
    assert (tmp_path / "pareto.png").exists() and (tmp_path / "pareto.pdf").exists()
    plt.close(figure)


def test_paired_change_bars_draw_the_mean_changes_and_the_noise_band(tmp_path):
    change = stats.paired_tpr_change(records(), "lifted")
    figure = plots.paired_change_bars(change, title="lifted vs baseline", save_to=tmp_path / "change")
    bars = figure.axes[0].patches
    noise, means = bars[: len(change)], bars[len(change):]
    assert [bar.get_height() for bar in means] == pytest.approx([-0.12, 0.10])
    assert all(bar.get_height() == pytest.approx(2 * 0.02) for bar in noise)  # ± the baseline's seed std
    assert (tmp_path / "change.png").exists()
    plt.close(figure)
