"""The training-length study: do loss weights stop acting once a network fits its training set?

The same methods are trained for a ladder of epoch budgets (the learning-rate schedule is
re-planned for each budget), on the same seeds, and every method is compared with the
*same budget's* baseline of the same seed. Two arms run the whole ladder with the first method
(the Q&A question's recipe): without label smoothing, and plain cross-entropy (no label smoothing, no weight
decay), so that whether an effect fades with the budget is a curve, not one point. At the longest
budget one arm switches weight decay off, and one asks whether augmentation helps some classes more
than others (baseline with flip + crop).

Byrd & Lipton (ICML 2019, "What is the effect of importance weighting in deep learning?") report
that for separable data the effect of importance weights on a deep network diminishes with training,
and that L2 regularisation and batch normalisation partly restore it. This module measures the
effect per budget and arm, and a quantity of the mechanism: the focus class's mean training logit
margin and its unweighted training cross-entropy on a fixed training subset, for the weighted run
and the same seed's baseline.

Each (arm, budget) is its own results folder, ``<results_dir>/length/<arm>-epochs<E>/``, so a
budget is part of the run's identity (its record path) as well as of its fingerprint (the
training configuration), static weights read the baseline of the same budget, and an
interrupted ladder resumes without retraining finished budgets.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils import records as run_records
from lbw_utils.runs.experiments import BASELINE, Settings
from lbw_utils.stats import mean_interval

LENGTH_FOLDER = "length"
# The arms and the training options each one changes; "main" keeps the study's own settings.
ARMS = {
    "main": {},
    "no-weight-decay": {"weight_decay": 0.0},
    "no-label-smoothing": {"label_smoothing": 0.0},
    "plain": {"label_smoothing": 0.0, "weight_decay": 0.0},
    "augment": {"augment": True},
}
# Arms trained at every budget of the ladder (the others only at the longest).
LADDER_ARMS = ("no-label-smoothing", "plain")


def check_budgets(budgets) -> list[int]:
    """A non-empty list of distinct positive epoch counts, sorted, or a ValueError naming the value."""
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise ValueError(f"budgets={budgets!r} must be a list of positive epoch counts, e.g. [4, 8, 16, 32] "
                         "(papermill: -y 'budgets: [4, 8, 16]')")
    budgets = list(budgets)
    if not budgets:
        raise ValueError("budgets=[] is empty: give at least one epoch count, e.g. [4, 8, 16, 32]")
    bad = [b for b in budgets if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1]
    if bad:
        raise ValueError(f"budgets={budgets!r}: {bad[0]!r} is not a positive whole number of epochs")
    repeated = sorted({int(b) for b in budgets if budgets.count(b) > 1})
    if repeated:
        raise ValueError(f"budgets={budgets!r} repeats {repeated}: each budget is trained once per seed")
    return sorted(int(b) for b in budgets)


def check_arms(arms) -> list[str]:
    """Arms to run besides "main" (each one of ARMS; those of LADDER_ARMS at every budget, the others at the
    longest)."""
    if isinstance(arms, str) or not hasattr(arms, "__iter__"):
        raise ValueError(f"arms={arms!r} must be a list drawn from {sorted(set(ARMS) - {'main'})}")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ValueError(f"arms {unknown} are not known; choose from {sorted(ARMS)}")
    return [arm for arm in arms if arm != "main"]


def arm_folder(results_dir: str | Path, arm: str, epochs: int) -> Path:
    return Path(results_dir) / LENGTH_FOLDER / f"{arm}-epochs{epochs}"


def plan(budgets: list[int], arms: list[str], methods: list[dict]) -> list[tuple[str, int, list[dict]]]:
    """(arm, budget, methods) for every folder of the study: the ladder, then each arm.

    The regularisation arms train the baseline and the first method (the question's recipe: the arms ask what
    keeps *its* weights effective, and each extra method would cost a run per seed and budget); those of
    :data:`LADDER_ARMS` at every budget, the others at the longest; the augmentation arm trains the
    baseline only (its question is per-class, not about weights)."""
    steps = [("main", budget, [BASELINE, *methods]) for budget in budgets]
    for arm in arms:
        for budget in (budgets if arm in LADDER_ARMS else budgets[-1:]):
            steps.append((arm, budget, [BASELINE] if arm == "augment" else [BASELINE, *methods[:1]]))
    return steps


def run_ladder(params: dict, methods: list[dict], budgets: list[int], arms: list[str], *,
               progress: bool = True) -> list[dict]:
    """Train (or read back) every run of the study; return the records tagged with ``arm`` and ``budget``."""
    settings_by_step = []
    for arm, budget, step_methods in plan(budgets, arms, methods):
        # Build every Settings first: a bad option stops the study before anything trains.
        folder = arm_folder(params["results_dir"], arm, budget)
        settings = Settings.from_params({**params, **ARMS[arm], "epochs": budget, "results_dir": str(folder)})
        settings_by_step.append((arm, budget, step_methods, settings))
    finished = []
    for arm, budget, step_methods, settings in settings_by_step:
        if progress:
            print(f"--- arm {arm}, {budget} epochs ---", flush=True)
        finished += [_tagged(r, arm, budget) for r in settings.run_study(step_methods, progress=progress)]
    return finished


def load_ladder(results_dir: str | Path) -> list[dict]:
    """Every record of the study under ``results_dir``, tagged with its arm and budget (none: [])."""
    found = []
    for folder in sorted((Path(results_dir) / LENGTH_FOLDER).glob("*-epochs*")):
        arm, _, epochs = folder.name.rpartition("-epochs")
        if arm in ARMS and epochs.isdigit():
            found += [_tagged(r, arm, int(epochs)) for r in run_records.load_records(folder)]
    return found


def _tagged(record: dict, arm: str, budget: int) -> dict:
    return {**record, "arm": arm, "budget": budget}


def train_subset_tpr(record: dict, curve: str = "train_tpr") -> list[float] | None:
    """Per-class TPR on the fixed training subset after the last epoch (None when it was not tracked);
    ``curve`` "train_margin" or "train_subset_ce" gives that subset's mean logit margin or cross-entropy."""
    history = record.get("history") or {}
    curves = history.get(curve) or []
    return curves[-1] if curves else None


def ladder_table(records: list[dict], focus_class: str) -> pd.DataFrame:
    """One row per (arm, method, budget): test accuracy, worst-class TPR, ``focus_class``'s test and
    training-subset TPR (means ± 95 % t interval over seeds), and the paired change of accuracy and
    worst-class TPR against the same (arm, budget, seed) baseline."""
    baselines = {(r["arm"], r["budget"], r["seed"]): r for r in records if r["method_label"] == "baseline"}
    rows = []
    for record in records:
        base = baselines.get((record["arm"], record["budget"], record["seed"]))
        focus = record["classes"].index(focus_class)
        train_tpr = train_subset_tpr(record)
        margin, cross_entropy = train_subset_tpr(record, "train_margin"), train_subset_tpr(record, "train_subset_ce")
        rows.append({
            "arm": record["arm"], "method": record["method_label"], "budget": record["budget"],
            "seed": record["seed"],
            "accuracy": record["test"]["accuracy"],
            "worst_class_tpr": record["test"]["worst_class_tpr"],
            "focus_tpr": record["test"]["tpr"][focus],
            "focus_train_tpr": train_tpr[focus] if train_tpr else math.nan,
            "min_train_tpr": float(np.nanmin(train_tpr)) if train_tpr else math.nan,
            "focus_train_margin": margin[focus] if margin else math.nan,
            "focus_train_ce": cross_entropy[focus] if cross_entropy else math.nan,
            "d_accuracy": record["test"]["accuracy"] - base["test"]["accuracy"] if base else math.nan,
            "d_worst_class_tpr": (record["test"]["worst_class_tpr"] - base["test"]["worst_class_tpr"]
                                  if base else math.nan),
        })
    runs = pd.DataFrame(rows)
    # The focus class's training margin against the same (arm, budget, seed) baseline's.
    keys = ["arm", "budget", "seed"]
    base_margin = runs[runs["method"] == "baseline"].set_index(keys)["focus_train_margin"]
    runs["d_focus_train_margin"] = runs["focus_train_margin"].to_numpy() - base_margin.reindex(
        pd.MultiIndex.from_frame(runs[keys])).to_numpy()
    table = []
    for (arm, method, budget), group in runs.groupby(["arm", "method", "budget"], sort=True):
        row = {"arm": arm, "method": method, "budget": budget, "seeds": len(group)}
        for column in ("accuracy", "worst_class_tpr", "focus_tpr", "focus_train_tpr", "min_train_tpr",
                       "focus_train_margin", "focus_train_ce", "d_accuracy", "d_worst_class_tpr",
                       "d_focus_train_margin"):
            row[column], row[f"{column}_ci"] = mean_interval(group[column])
        table.append(row)
    order = {arm: index for index, arm in enumerate(ARMS)}
    frame = pd.DataFrame(table)
    return frame.sort_values(["arm", "method", "budget"], key=lambda c: c.map(order) if c.name == "arm" else c,
                             ignore_index=True)


def per_class_tpr_by_arm(records: list[dict], arms: tuple[str, str], method: str = "baseline") -> dict:
    """Mean test TPR per class of ``method`` at the longest budget, for each of two arms (for side-by-side bars)."""
    longest = max(r["budget"] for r in records)
    return {arm: np.array([r["test"]["tpr"] for r in records
                           if r["arm"] == arm and r["budget"] == longest and r["method_label"] == method])
            for arm in arms}


def overlapping(first, last) -> bool:
    """Do the 95 % intervals of two ladder rows' paired worst-class change overlap?"""
    low = max(first.d_worst_class_tpr - first.d_worst_class_tpr_ci, last.d_worst_class_tpr - last.d_worst_class_tpr_ci)
    high = min(first.d_worst_class_tpr + first.d_worst_class_tpr_ci, last.d_worst_class_tpr + last.d_worst_class_tpr_ci)
    return not (low > high)  # NaN half-widths (one seed) count as overlapping: nothing is told apart


def baseline_value(table: pd.DataFrame, arm: str, budget: int, column: str) -> float:
    """The baseline's mean ``column`` in the ladder table at (``arm``, ``budget``); NaN where it did not run."""
    row = table[(table["arm"] == arm) & (table["method"] == "baseline") & (table["budget"] == budget)]
    return float(row[column].iloc[0]) if len(row) else math.nan


def focus_class(records: list[dict], wanted: str | None = None) -> str:
    """``wanted`` (a class name, any case), or the class with the lowest mean *validation* TPR of the
    main arm's baseline at the shortest budget (validation, never test, picks what the study follows)."""
    classes = records[0]["classes"]
    if wanted is not None:
        matches = [name for name in classes if name.lower() == str(wanted).lower()]
        if not matches:
            raise ValueError(f"focus_class={wanted!r} is not a class of {records[0]['dataset']}; "
                             f"choose one of {classes}")
        return matches[0]
    shortest = min(r["budget"] for r in records if r["arm"] == "main")
    baselines = [r["val"]["tpr"] for r in records
                 if r["arm"] == "main" and r["budget"] == shortest and r["method_label"] == "baseline"]
    return classes[int(np.nanargmin(np.mean(baselines, axis=0)))]
