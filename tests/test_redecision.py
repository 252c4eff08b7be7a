"""The re-decision frontier: the accuracy ladder, the curve of one run's test logits, the curves of a study's
trained runs from their artifacts, the paired comparison's verdicts and the figure."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from lbw_utils.ceiling import accuracy_ladder, redecision_frontier
from lbw_utils.records import artifact_path
from lbw_utils.reporting.plots import plot_redecision_frontier
from lbw_utils.studies import redecision


def _scores(n: int = 2000, classes: int = 4, seed: int = 0):
    """Noisy logits whose class 0 is hard: its own logit is raised less than the others'."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(n) % classes
    logits = torch.randn(n, classes, generator=generator)
    logits[torch.arange(n), targets] += torch.where(targets == 0, 0.6, 2.0)
    return logits, targets


def _accuracy_and_worst(logits, targets) -> tuple[float, float]:
    predictions = logits.argmax(1)
    worst = min(float((predictions[targets == c] == c).double().mean()) for c in range(logits.shape[1]))
    return float((predictions == targets).double().mean()), worst


def test_the_ladder_steps_down_a_quarter_point_two_points_deep():
    assert accuracy_ladder(0.9125) == [0.9125, 0.91, 0.9075, 0.905, 0.9025, 0.9, 0.8975, 0.895, 0.8925]
    assert accuracy_ladder(0.5, depth=0.01, step=0.004) == [0.5, 0.496, 0.492]  # stops above top - depth
    assert accuracy_ladder(0.02, depth=0.02, step=0.01) == [0.02, 0.01, 0.0]
    assert accuracy_ladder(0.7, depth=0) == [0.7]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"top": 1.2}, r"top=1\.2 must be an accuracy in \[0, 1\]"),
    ({"top": -0.1}, r"top=-0\.1 must be an accuracy"),
    ({"top": math.nan}, r"top=nan must be an accuracy"),
    ({"top": 0.9, "depth": -0.01}, r"depth=-0\.01 must be a number >= 0"),
    ({"top": 0.9, "step": 0}, r"step=0 must be at least 0\.0001"),
    ({"top": 0.9, "step": -0.0025}, r"step=-0\.0025 must be at least"),
    ({"top": 0.01}, r"puts a level at -0\.0100, below 0"),
])
def test_a_bad_ladder_is_refused_naming_the_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        accuracy_ladder(**arguments)


def test_the_frontier_lifts_the_worst_class_where_reached_and_falls_with_the_level():
    logits, targets = _scores()
    accuracy, worst = _accuracy_and_worst(logits, targets)
    reachable = math.floor(accuracy * 400) / 400  # the logits themselves are at least this accurate
    higher = round(reachable + 0.02, 4)
    low, high, impossible = redecision_frontier(logits, targets, [reachable, higher, 1.0])
    assert low["level"] == reachable and low["reached"] and low["accuracy"] >= reachable
    assert low["worst_class_tpr"] >= worst + 0.05  # the hard class is lifted, not only kept
    assert high["worst_class_tpr"] <= low["worst_class_tpr"]
    assert high["accuracy"] >= higher if high["reached"] else high["accuracy"] < higher
    assert not impossible["reached"] and impossible["accuracy"] < 1.0
    curve = redecision_frontier(logits, targets, accuracy_ladder(higher, depth=0.03))
    assert all(point["accuracy"] >= point["level"] for point in curve if point["reached"])
    worst_by_level = [point["worst_class_tpr"] for point in curve if point["reached"]]  # levels falling
    assert worst_by_level == sorted(worst_by_level) and len(worst_by_level) >= 8


def test_a_level_outside_0_1_is_refused_before_any_fit():
    logits, targets = _scores(n=40)
    with pytest.raises(ValueError, match=r"level 1\.5 is not allowed: a level is an accuracy in \[0, 1\]"):
        redecision_frontier(logits, targets, [0.9, 1.5])


def _study(tmp_path, seeds=(0, 1)):
    """A baseline and a weighting per seed with their test logits saved as artifacts, and a post-hoc row with
    no artifact; the test labels per seed."""
    labels, records = {}, []
    for seed in seeds:
        for offset, method in enumerate(({"name": "baseline"}, {"name": "margin", "gamma": 2})):
            logits, targets = _scores(n=400, seed=10 * seed + offset)
            labels[seed] = targets
            label = "baseline" if offset == 0 else "margin-gamma2"
            path = artifact_path(tmp_path, "toy", label, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"test_logits": logits}, path)
            records.append({"dataset": "toy", "method": method, "method_label": label, "seed": seed,
                            "test": {"accuracy": _accuracy_and_worst(logits, targets)[0], "worst_class_tpr": 0.5}})
        records.append({"dataset": "toy", "method": {"name": "posthoc", "objective": "worst"},
                        "method_label": "baseline+posthoc-worst", "seed": seed,
                        "test": {"accuracy": 0.5, "worst_class_tpr": 0.6}})
    return records, labels


def test_frontier_runs_reads_each_trained_runs_logits_and_skips_post_hoc_rows(tmp_path):
    records, labels = _study(tmp_path)
    curves = redecision.frontier_runs(tmp_path, records, [0.7, 0.6], labels.__getitem__)
    assert list(curves.columns) == redecision.CURVE_COLUMNS
    assert len(curves) == 2 * 2 * 2 and set(curves["method"]) == {"baseline", "margin-gamma2"}
    logits = torch.load(artifact_path(tmp_path, "toy", "baseline", 1))["test_logits"]
    expected = redecision_frontier(logits, labels[1], [0.7, 0.6])
    got = curves[(curves["method"] == "baseline") & (curves["seed"] == 1)]
    assert got["worst_class_tpr"].tolist() == [point["worst_class_tpr"] for point in expected]


def test_labels_that_are_not_the_runs_are_refused(tmp_path):
    records, labels = _study(tmp_path, seeds=(0,))
    shuffled = {0: labels[0].roll(1)}
    with pytest.raises(ValueError, match="not the run's test labels"):
        redecision.frontier_runs(tmp_path, records, [0.7], shuffled.__getitem__)
    with pytest.raises(ValueError, match="not the run's test split"):
        redecision.frontier_runs(tmp_path, records, [0.7], {0: labels[0][:10]}.__getitem__)


def test_the_ladder_starts_at_the_most_accurate_trained_rows_mean_on_the_grid():
    records = [{"dataset": "toy", "method": {"name": name}, "method_label": name, "seed": seed,
                "test": {"accuracy": accuracy}}
               for name, seed, accuracy in (("baseline", 0, 0.910), ("baseline", 1, 0.916),  # mean 0.913
                                            ("margin", 0, 0.905), ("margin", 1, 0.907),
                                            ("posthoc", 0, 0.99), ("posthoc", 1, 0.99))]  # not trained: ignored
    ladder = redecision.frontier_ladder_for(records)
    assert ladder[0] == 0.9125 and ladder[-1] == 0.8925 and len(ladder) == 9


def _curves() -> pd.DataFrame:
    """Known differences against the baseline on three seeds at two levels: "up" +5 points at both, "down" -5
    at both, "mixed" +5 then -5, "rare" reached on one seed only; "up" misses level 0.89 on seed 2."""
    base = {0.9: [0.70, 0.72, 0.74], 0.89: [0.75, 0.76, 0.78]}
    shifts = {"up": {0.9: 0.05, 0.89: 0.05}, "down": {0.9: -0.05, 0.89: -0.05}, "mixed": {0.9: 0.05, 0.89: -0.05},
              "rare": {0.9: 0.1, 0.89: 0.1}}
    rows = [("baseline", seed, level, tprs[seed], True) for level, tprs in base.items() for seed in range(3)]
    for method, by_level in shifts.items():
        for level, shift in by_level.items():
            for seed in range(3):
                noise = 0.004 * (seed - 1)  # differences not all equal: a finite, non-zero interval
                reached = not (method == "rare" and seed > 0) and not (method == "up" and level == 0.89 and seed == 2)
                rows.append((method, seed, level, base[level][seed] + shift + noise, reached))
    frame = pd.DataFrame(rows, columns=["method", "seed", "level", "worst_class_tpr", "reached"])
    return frame.assign(dataset="toy", accuracy=frame["level"] + 0.001)


def test_the_comparison_pairs_by_seed_where_both_reached_and_gives_each_method_its_verdict():
    comparison = redecision.frontier_comparison(_curves())
    up = comparison[comparison["method"] == "up"].set_index("level")
    assert up.loc[0.9, "seeds"] == 3 and up.loc[0.89, "seeds"] == 2
    assert up.loc[0.9, "difference"] == pytest.approx(0.05)
    assert up.loc[0.89, "difference"] == pytest.approx(0.05 + 0.004 * (-1 + 0) / 2)  # seeds 0 and 1 only
    assert up.loc[0.9, "difference_ci"] > 0
    verdicts = redecision.frontier_verdicts(comparison).set_index("method")
    assert verdicts.loc["up", "verdict"] == redecision.ABOVE
    assert verdicts.loc["down", "verdict"] == redecision.BELOW
    assert verdicts.loc["mixed", "verdict"] == redecision.CROSSES
    assert verdicts.loc["rare", "verdict"] == redecision.NOT_COMPARED
    assert verdicts.loc["mixed", ["levels_compared", "levels_above", "levels_below"]].tolist() == [2, 1, 1]
    assert verdicts.loc["rare", "levels_compared"] == 0
    with pytest.raises(ValueError, match="baseline='plain' has no curve"):
        redecision.frontier_comparison(_curves(), baseline="plain")


def test_the_figure_draws_a_line_per_row_where_every_seed_reached_and_writes_png_and_pdf(tmp_path):
    points = pd.DataFrame({"method": ["baseline", "baseline+posthoc-worst", "up"],
                           "row": ["baseline", "baseline", "up"],
                           "accuracy": [0.905, 0.9, 0.895], "worst_class_tpr": [0.6, 0.7, 0.8]})
    figure = plot_redecision_frontier(_curves(), points, tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").stat().st_size > 0 and (tmp_path / "frontier.pdf").stat().st_size > 0
    lines = {line.get_label(): line for line in figure.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert sorted(lines["up"].get_xdata()) == [90.0]  # level 0.89 missed on seed 2: not drawn
    assert "rare" in lines and len(lines["rare"].get_xdata()) == 0
    assert lines["baseline"].get_linewidth() > max(line.get_linewidth() for name, line in lines.items()
                                                   if name != "baseline")
    assert figure.get_size_inches()[0] == pytest.approx(3.4)  # a paper's column


def test_frontier_runs_give_the_same_curves_in_worker_processes(tmp_path, monkeypatch):
    records, labels = _study(tmp_path)
    alone = redecision.frontier_runs(tmp_path, records, [0.7, 0.6], labels.__getitem__, processes=1)
    shared = redecision.frontier_runs(tmp_path, records, [0.7, 0.6], labels.__getitem__, processes=2)
    pd.testing.assert_frame_equal(alone, shared)
    monkeypatch.setenv("LBW_CPU_PROCESSES", "0")
    with pytest.raises(ValueError, match="LBW_CPU_PROCESSES='0' is not allowed: a positive integer"):
        redecision.frontier_runs(tmp_path, records, [0.7], labels.__getitem__)
