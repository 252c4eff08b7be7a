"""lbw_utils.reporting.plots: the Pareto plot's front and goal region, its series (display names, a colour and marker
each, at most MAX_SERIES, arrows to post-hoc rows), the per-class paired changes in points."""

from __future__ import annotations

import matplotlib.collections
import matplotlib.container
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lbw_utils import stats
from lbw_utils.reporting import plots


def records(rows: dict[str, list[float]] | None = None, shifts=(0.0, 0.02, -0.02)) -> list[dict]:
    """Seeds (one per shift) of each row (label -> its per-class TPRs on the first seed); by default a baseline, a
    method on the front and a dominated one."""
    rows = rows or {"baseline": [0.98, 0.70], "lifted": [0.86, 0.80], "worse": [0.95, 0.68]}
    made = []
    for seed, shift in enumerate(shifts):
        for method, tpr in rows.items():
            tpr = [value + shift for value in tpr]
            summary = {"accuracy": float(np.mean(tpr)), "balanced_accuracy": float(np.mean(tpr)), "tpr": tpr,
                       "tpr_std": float(np.std(tpr)), "worst_class_tpr": min(tpr), "worst_class": "Shirt"}
            made.append({"dataset": "fashion_mnist", "method_label": method, "seed": seed, "test": summary,
                         "val": summary, "classes": ["Bag", "Shirt"], "train_seconds": 1.0})
    return made


def test_pareto_plot_rings_the_front_and_shades_the_goal(tmp_path):
    table, paired = stats.method_table(records()), stats.paired_table(records())
    figure = plots.pareto_plot(table, paired=paired, save_to=tmp_path / "pareto")
    axes = figure.axes[0]
    goal = [p for p in axes.patches if isinstance(p, matplotlib.patches.Rectangle) and "goal" in p.get_label()]
    assert len(goal) == 1
    # per cent on both axes
    assert goal[0].get_x() == pytest.approx(100 * (0.70 + stats.GOAL_WORST_CLASS_GAIN))
    assert goal[0].get_y() == pytest.approx(100 * (0.84 - stats.GOAL_MAX_ACCURACY_LOSS))
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
    assert [bar.get_height() for bar in means] == pytest.approx([-12.0, 10.0])  # points
    assert all(bar.get_height() == pytest.approx(2 * 2.0) for bar in noise)  # ± the baseline's seed std
    assert (tmp_path / "change.png").exists()
    plt.close(figure)


def many_rows() -> list[dict]:
    """Three seeds of a baseline, nine static weightings (one more than a panel draws) and post-hoc offsets on the
    first weighting, all within the accuracy window."""
    rows = {"baseline": [0.95, 0.70]}
    rows.update({f"static-mean-ratio-gamma{gamma}": [0.95 - 0.002 * gamma, 0.70 + 0.01 * gamma]
                 for gamma in range(1, 10)})
    rows["static-mean-ratio-gamma1+posthoc-worst"] = [0.93, 0.80]
    return records(rows, shifts=(0.0, 0.01, -0.01))


def test_a_panel_draws_at_most_max_series_rows_named_for_a_reader_each_its_own_colour_and_marker(tmp_path):
    table, paired = stats.method_table(many_rows()), stats.paired_table(many_rows())
    figure = plots.pareto_plot(table, paired=paired, save_to=tmp_path / "pareto")
    axes = figure.axes[0]
    series = [(handle, label) for handle, label in zip(*axes.get_legend_handles_labels())
              if isinstance(handle, matplotlib.container.ErrorbarContainer)]
    assert len(series) == plots.MAX_SERIES
    styles = [(handle.lines[0].get_color(), handle.lines[0].get_marker()) for handle, _ in series]
    assert len({colour for colour, _ in styles}) == len(styles) and len({m for _, m in styles}) == len(styles)
    names = [label.removesuffix(" (front)") for _, label in series]
    assert names[0] == "baseline" and styles[0] == (plots.BASELINE_COLOUR, plots.BASELINE_MARKER)
    assert not any("static-" in name or "posthoc-" in name for name in names)  # display names, never labels
    assert "TPR weights (Q&A recipe), γ = 9" in names
    # the rows left out are counted under the figure
    assert any("in the table" in text.get_text() for text in figure.legends[0].get_texts())
    # the post-hoc row (on the front) comes with the run it adjusts, joined by an arrow
    assert {"TPR weights (Q&A recipe), γ = 1 + post-hoc offsets (worst class)", "TPR weights (Q&A recipe), γ = 1"} <= set(names)
    assert any(text.arrow_patch is not None for text in axes.texts)
    assert (tmp_path / "pareto.pdf").exists()
    plt.close(figure)


def test_an_arrow_runs_from_a_row_to_its_posthoc_row_and_the_ceiling_is_a_reference(tmp_path):
    made = [r for r in many_rows() if r["method_label"] in ("baseline", "static-mean-ratio-gamma1",
                                                              "static-mean-ratio-gamma1+posthoc-worst")]
    for record in made:
        record["ceiling"] = {"worst_class_tpr": 0.9}
    table, paired = stats.method_table(made), stats.paired_table(made)
    figure = plots.pareto_plot(table, paired=paired)
    axes = figure.axes[0]
    arrows = [text for text in axes.texts if text.arrow_patch is not None]
    assert len(arrows) == 1
    start, end = arrows[0].xyann, arrows[0].xy
    gamma1 = table.set_index("method").loc["static-mean-ratio-gamma1"]
    assert start == pytest.approx((100 * gamma1["worst_class_tpr"], 100 * gamma1["accuracy"]))
    assert end[0] > start[0]
    labels = axes.get_legend_handles_labels()[1]
    assert any("reference, not a method" in label for label in labels)
    plt.close(figure)


def test_series_styles_refuse_more_than_a_panel_draws():
    with pytest.raises(ValueError, match="MAX_SERIES"):
        plots.series_styles([f"row{index}" for index in range(plots.MAX_SERIES + 1)])
    assert plots.key_rows(["a", "baseline", "b", "c"], first=["c"], limit=3) == ["baseline", "c", "a"]
    # a post-hoc row brings the run it adjusts, or is left out when both do not fit
    rows = ["baseline", "ema-alpha0.01+posthoc-worst", "focal", "ema-alpha0.01"]
    assert plots.key_rows(rows, limit=3) == ["baseline", "ema-alpha0.01", "ema-alpha0.01+posthoc-worst"]
    assert plots.key_rows(rows, limit=2) == ["baseline", "focal"]


def test_the_budget_curves_draw_changes_in_points_and_leave_extra_rows_to_the_table():
    import pandas as pd

    rows = []
    for index, method in enumerate(["baseline", *[f"static-mean-ratio-gamma{g}" for g in range(1, 10)]]):
        for budget in (4, 8):
            rows.append({"arm": "main", "method": method, "budget": budget, "d_worst_class_tpr": 0.01 * index,
                         "d_worst_class_tpr_ci": 0.002})
    figure = plots.budget_curves(pd.DataFrame(rows), {"d_worst_class_tpr": "Δ worst-class TPR (pts)"},
                                 percent=("d_worst_class_tpr",))
    lines = [line for line in figure.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert len(lines) == plots.MAX_SERIES and lines[0].get_label() == "baseline"
    assert list(lines[1].get_ydata()) == pytest.approx([1.0, 1.0])  # 0.01 as a fraction: 1 point
    assert lines[1].get_label() == "TPR weights (Q&A recipe), γ = 1"
    assert any(text.get_text() == "2 more rows in the table" for text in figure.legends[0].get_texts())
    plt.close(figure)
