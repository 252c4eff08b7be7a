"""The re-decision frontier of each trained row, paired by seed against the baseline's: a reference curve.

The ceiling of re-deciding (:mod:`lbw_utils.ceiling`) counts its accuracy floor from the same seed's baseline,
so a row that is more accurate than the baseline has more accuracy to spend on its worst class, and a higher
ceiling mixes "separates the classes better" with "has more accuracy to spend". The frontier asks instead, at
a ladder of *absolute* accuracy levels (:func:`frontier_ladder_for`), how far per-class offsets fitted on the
run's own test logits lift its worst class (:func:`lbw_utils.ceiling.redecision_frontier`). Two rows compared
at the same level and seed differ only in what their scores separate. Test labels choose the offsets: the
curves describe runs and never select one.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import pandas as pd
import torch

from lbw_utils import records as run_records
from lbw_utils.config import cpu_processes
from lbw_utils.ceiling import LADDER_DEPTH, LADDER_STEP, accuracy_ladder, redecision_frontier
from lbw_utils.runs.experiments import BASELINE as BASELINE_METHOD, method_label
from lbw_utils.stats import mean_interval

BASELINE = "baseline"
POSTHOC = "posthoc"
CURVE_COLUMNS = ["dataset", "method", "seed", "level", "worst_class_tpr", "accuracy", "reached"]
# The seeds a level needs, reached by both rows, before its interval counts towards a verdict.
MIN_SEEDS = 2
ABOVE, BELOW, CROSSES = "above the baseline's curve", "below the baseline's curve", "crosses / no difference shown"
NOT_COMPARED = f"not compared (no level reached by both on {MIN_SEEDS} seeds)"


def trained_records(records: list[dict]) -> list[dict]:
    """The records of trained rows: every record but post-hoc ones."""
    return [record for record in records if record["method"]["name"] != POSTHOC]


def frontier_runs(results_dir: str | Path, records: list[dict], levels: list[float],
                  test_labels: Callable[[int], torch.Tensor] | None = None, processes: int | None = None) -> pd.DataFrame:
    """One row per (method, seed, level) of the trained ``records`` (one dataset): the frontier of the run's
    saved test logits (its artifact under ``results_dir``), columns :data:`CURVE_COLUMNS`.

    Post-hoc records are skipped: a post-hoc row's test logits are its base run's plus a constant shift per
    class, and offsets fitted on top absorb that shift, so its frontier *is* its base run's.
    ``test_labels(seed)`` gives the test labels of that seed's split (records hold no labels), e.g.
    ``lambda seed: load_data(settings.data, seed).labels("test")``, or a dict's ``__getitem__``; it is called
    once per seed, and labels that do not reproduce a record's test accuracy from its logits are refused; None:
    the labels saved beside the logits (``test_targets`` of the artifact, written since fingerprint version 3).
    About 0.25 s per (run, level) on 10,000 x 10 logits, each run's search single-threaded: the runs are shared
    among ``processes`` worker processes (None: :func:`lbw_utils.config.cpu_processes`); the curves do not
    depend on how many."""
    trained = trained_records(records)
    datasets = sorted({record["dataset"] for record in trained})
    if len(datasets) > 1:
        raise ValueError(f"records of datasets {datasets}: a frontier ladder is one dataset's; pass one at a time")
    labels_of_seed: dict[int, torch.Tensor] = {}
    splits = []
    for record in trained:  # every run's logits and labels checked before the first fit
        seed = record["seed"]
        if test_labels is None:
            logits, labels = _saved_test_split(results_dir, record)
        else:
            if seed not in labels_of_seed:
                labels_of_seed[seed] = torch.as_tensor(test_labels(seed)).cpu()
            logits, labels = _test_logits(results_dir, record), labels_of_seed[seed]
        _check_labels(record, logits, labels)
        splits.append((logits, labels))
    processes = min(cpu_processes() if processes is None else processes, len(splits))
    arguments = ([logits for logits, _ in splits], [labels for _, labels in splits], repeat(levels))
    if processes > 1:
        # spawn, not fork: a forked child of a process whose torch has started its thread pool can hang
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            curves = list(pool.map(redecision_frontier, *arguments))
    else:
        curves = list(map(redecision_frontier, *arguments))
    rows = [{"dataset": record["dataset"], "method": record["method_label"], "seed": record["seed"], **point}
            for record, curve in zip(trained, curves) for point in curve]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _saved_test_split(results_dir: str | Path, record: dict) -> tuple[torch.Tensor, torch.Tensor]:
    path = run_records.artifact_path(results_dir, record["dataset"], record["method_label"], record["seed"])
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if "test_targets" not in saved:
        raise ValueError(f"{path} holds no test labels (written before fingerprint version 3); pass test_labels")
    return saved["test_logits"].float(), saved["test_targets"].long()


def _test_logits(results_dir: str | Path, record: dict) -> torch.Tensor:
    path = run_records.artifact_path(results_dir, record["dataset"], record["method_label"], record["seed"])
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the frontier of {record['method_label']} seed {record['seed']} "
                                "needs the test logits its run saved beside its record; rerun it with redo=True")
    return torch.load(path, map_location="cpu", weights_only=True)["test_logits"].float()


def _check_labels(record: dict, logits: torch.Tensor, labels: torch.Tensor) -> None:
    """The labels must be the run's: as many as its logits, and giving back its recorded test accuracy."""
    if len(labels) != len(logits):
        raise ValueError(f"test_labels({record['seed']}) has {len(labels)} labels, the test logits of "
                         f"{record['method_label']} have {len(logits)} rows: not the run's test split")
    accuracy = int((logits.argmax(1) == labels).sum()) / len(labels)
    if abs(accuracy - record["test"]["accuracy"]) > 1e-9:
        raise ValueError(f"test_labels({record['seed']}) give {record['method_label']} an accuracy of {accuracy:.4f}, "
                         f"its record says {record['test']['accuracy']:.4f}: not the run's test labels")


def frontier_ladder_for(records: list[dict]) -> list[float]:
    """The ladder for ``records``: from the most accurate trained row's mean test accuracy over seeds, rounded
    down to the :data:`~lbw_utils.ceiling.LADDER_STEP` grid, :data:`~lbw_utils.ceiling.LADDER_DEPTH` down."""
    trained = trained_records(records)
    if not trained:
        raise ValueError("no trained record among the records: the ladder starts at a trained row's accuracy")
    means = pd.DataFrame([(r["method_label"], r["test"]["accuracy"]) for r in trained], columns=["method", "accuracy"])
    top = float(means.groupby("method")["accuracy"].mean().max())
    return accuracy_ladder(round(math.floor(round(top / LADDER_STEP, 9)) * LADDER_STEP, 4), LADDER_DEPTH, LADDER_STEP)


def frontier_comparison(curves: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Per (method, level) of one dataset's ``curves`` (:func:`frontier_runs`): the paired (same seed) difference
    method - ``baseline`` of the worst-class TPR on the seeds where both reached the level, mean and 95 % t
    half-width (``difference``, ``difference_ci``), ``seeds``, both rows' means on those seeds, and the method's
    ``verdict`` over the levels both reached on at least :data:`MIN_SEEDS` seeds: :data:`ABOVE` (every interval
    above 0), :data:`BELOW` (every one below 0) or :data:`CROSSES`; :data:`NOT_COMPARED` when no level qualifies."""
    if baseline not in set(curves["method"]):
        raise ValueError(f"baseline={baseline!r} has no curve; rows with curves: {sorted(set(curves['method']))}")
    reached = curves[curves["reached"].astype(bool)]
    base = reached.loc[reached["method"] == baseline, ["level", "seed", "worst_class_tpr"]]
    paired = reached[reached["method"] != baseline].merge(base, on=["level", "seed"], suffixes=("", "_baseline"))
    paired["difference"] = paired["worst_class_tpr"] - paired["worst_class_tpr_baseline"]
    rows = []
    # every (method, level) of the curves, so a level neither reached shows 0 seeds instead of vanishing
    for (method, level), _ in curves[curves["method"] != baseline].groupby(["method", "level"], sort=False):
        pairs = paired[(paired["method"] == method) & (paired["level"] == level)]
        difference, half_width = mean_interval(pairs["difference"])
        rows.append({"method": method, "level": level, "seeds": len(pairs), "difference": difference,
                     "difference_ci": half_width, "worst_class_tpr": pairs["worst_class_tpr"].mean(),
                     "baseline_worst_class_tpr": pairs["worst_class_tpr_baseline"].mean()})
    table = pd.DataFrame(rows, columns=["method", "level", "seeds", "difference", "difference_ci", "worst_class_tpr",
                                        "baseline_worst_class_tpr"])
    verdicts = {method: _verdict(group) for method, group in table.groupby("method")}
    table["verdict"] = table["method"].map(verdicts)
    return table


def frontier_verdicts(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per method of a :func:`frontier_comparison`: the levels compared (both reached on >= :data:`MIN_SEEDS`
    seeds), how many of them lie above and below the baseline's curve (interval excluding 0), the verdict."""
    rows = []
    for method, group in comparison.groupby("method", sort=False):
        compared = group[group["seeds"] >= MIN_SEEDS]
        rows.append({"method": method, "levels_compared": len(compared),
                     "levels_above": int((compared["difference"] - compared["difference_ci"] > 0).sum()),
                     "levels_below": int((compared["difference"] + compared["difference_ci"] < 0).sum()),
                     "verdict": group["verdict"].iloc[0]})
    return pd.DataFrame(rows, columns=["method", "levels_compared", "levels_above", "levels_below", "verdict"])


def _verdict(levels: pd.DataFrame) -> str:
    compared = levels[levels["seeds"] >= MIN_SEEDS]
    if compared.empty:
        return NOT_COMPARED
    if (compared["difference"] - compared["difference_ci"] > 0).all():
        return ABOVE
    if (compared["difference"] + compared["difference_ci"] < 0).all():
        return BELOW
    return CROSSES


def validated_points(records: list[dict]) -> pd.DataFrame:
    """Each row's own test point, means over seeds: ``method``, ``row`` (the trained row it belongs to: itself,
    or the run a post-hoc row adjusts), ``accuracy``, ``worst_class_tpr``; for :func:`plot_redecision_frontier`
    (:mod:`lbw_utils.reporting.plots`) to draw on the curves."""
    rows = [{"method": r["method_label"], "accuracy": r["test"]["accuracy"],
             "worst_class_tpr": r["test"]["worst_class_tpr"],
             "row": (method_label(r["method"].get("of", BASELINE_METHOD)) if r["method"]["name"] == POSTHOC
                     else r["method_label"])} for r in records]
    frame = pd.DataFrame(rows, columns=["method", "row", "accuracy", "worst_class_tpr"])
    return frame.groupby(["method", "row"], sort=False)[["accuracy", "worst_class_tpr"]].mean().reset_index()
