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

from lbw_utils.reporting import plots
from lbw_utils.runs import records as run_records
from lbw_utils.compare import mean_interval, mean_interval_text
from lbw_utils.runs.experiments import BASELINE, Settings, figure_path, table_path
from lbw_utils.files import atomic_write_text

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


def formatted_ladder(table: pd.DataFrame, focus_class: str) -> pd.DataFrame:
    """The ladder table as strings "mean ± half-width", for display and markdown."""
    shown = {
        "accuracy": "accuracy", "worst_class_tpr": "worst-class TPR", "focus_tpr": f"{focus_class} TPR",
        "focus_train_tpr": f"{focus_class} train-subset TPR",
        "focus_train_margin": f"{focus_class} train-subset logit margin",
        "focus_train_ce": f"{focus_class} train-subset CE", "d_accuracy": "Δ accuracy (paired)",
        "d_worst_class_tpr": "Δ worst-class TPR (paired)",
    }
    rows = []
    for _, row in table.iterrows():
        rows.append({"arm": row["arm"], "method": row["method"], "epochs": int(row["budget"]),
                     "seeds": int(row["seeds"]),
                     **{label: mean_interval_text(row[column], row[f"{column}_ci"]) for column, label in shown.items()}})
    return pd.DataFrame(rows)


def write_ladder_outputs(records: list[dict], folder: str | Path, focus: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's table (``tables/<dataset>/length.md`` formatted, ``length.csv`` raw), its generated answer
    (``length_answer.md``: :func:`answer` for every method) and its figures (``length_arms``: the first
    method's effect and margin in each arm of the whole ladder, where the study ran such arms; and these two)
    (``length_effect``: worst-class TPR and paired changes against the budget; ``length_train_vs_test``:
    the focus class's training-subset and test TPR); returns (table, formatted table). Notebooks 07 and 06
    both call it, so the paper's figures and the study's own are the same."""
    name = records[0]["dataset"]
    table = ladder_table(records, focus)
    shown = formatted_ladder(table, focus)
    atomic_write_text(table_path(folder, name, "length.md"), shown.to_markdown(index=False) + "\n")
    atomic_write_text(table_path(folder, name, "length.csv"), table.to_csv(index=False))
    # The study's answer, generated from the same table (the README and docs quote this file, never a typed number).
    answers = [answer(table, method, focus) for method in table["method"].unique() if method != "baseline"]
    atomic_write_text(table_path(folder, name, "length_answer.md"), "\n\n".join(answers) + "\n")
    plots.budget_curves(table, {"worst_class_tpr": "worst-class TPR (test)",
                                "d_worst_class_tpr": "Δ worst-class TPR vs baseline",
                                "d_accuracy": "Δ accuracy vs baseline"},
                        title=f"{name}: effect of each method against the epoch budget (mean ± 95 % CI, paired)",
                        save_to=figure_path(folder, name, "length_effect"))
    # The arms over the whole ladder, one line per arm: the first method's effect and the focus class's margin.
    weighted = [m for m in table[table["arm"] != "main"]["method"].unique() if m != "baseline"]
    ladder_arms = table[table["arm"].isin(["main", *LADDER_ARMS]) & table["method"].isin(weighted[:1])]
    if len(weighted) and ladder_arms["arm"].nunique() > 1:
        by_arm = ladder_arms.assign(method=ladder_arms["arm"], arm="main")  # budget_curves draws one line per "method"
        plots.budget_curves(by_arm, {"d_worst_class_tpr": f"Δ worst-class TPR vs baseline ({weighted[0]})",
                                     "d_focus_train_margin": f"Δ {focus} training logit margin vs baseline",
                                     "focus_train_ce": f"{focus}: unweighted training CE"},
                            title=f"{name}: {weighted[0]} in each arm against the epoch budget (mean ± 95 % CI, paired)",
                            save_to=figure_path(folder, name, "length_arms"))
    plots.budget_curves(table, {"focus_train_tpr": f"{focus}: training-subset TPR", "focus_tpr": f"{focus}: test TPR"},
                        title=f"{name}: does the network fit {focus} on its training images?",
                        save_to=figure_path(folder, name, "length_train_vs_test"))
    return table, shown


def per_class_tpr_by_arm(records: list[dict], arms: tuple[str, str], method: str = "baseline") -> dict:
    """Mean test TPR per class of ``method`` at the longest budget, for each of two arms (for side-by-side bars)."""
    longest = max(r["budget"] for r in records)
    return {arm: np.array([r["test"]["tpr"] for r in records
                           if r["arm"] == arm and r["budget"] == longest and r["method_label"] == method])
            for arm in arms}


def answer(table: pd.DataFrame, method: str, focus_class: str) -> str:
    """One paragraph, from the numbers, on how ``method``'s paired effect on the worst class changes with the
    budget in each arm, and what the focus class's training margin does meanwhile. It states what the arms
    show (changes with their 95 % intervals, whether the intervals at the two ends of the ladder overlap)
    and claims no mechanism beyond the margins measured."""
    rows = table[table["method"] == method]
    if rows.empty:
        return f"no runs of {method} in the ladder"
    sentences = [f"Paired change of the worst-class TPR for {method} against the same budget's and arm's baseline "
                 f"(mean ± 95 % interval over seeds):"]
    for arm in [arm for arm in ARMS if arm in set(rows["arm"])]:
        ladder = rows[rows["arm"] == arm].sort_values("budget")
        steps = ", ".join(f"{int(r.budget)} epochs {r.d_worst_class_tpr:+.3f} ± {_half(r.d_worst_class_tpr_ci)}"
                          for r in ladder.itertuples())
        text = f"arm '{arm}' ({_arm_words(arm)}): {steps}"
        if len(ladder) > 1:
            first, last = ladder.iloc[0], ladder.iloc[-1]
            text += (f"; from {int(first.budget)} to {int(last.budget)} epochs the mean goes "
                     f"{first.d_worst_class_tpr:+.3f} -> {last.d_worst_class_tpr:+.3f}, "
                     f"{'intervals overlapping' if _overlap(first, last) else 'intervals apart'}")
        sentences.append(text + ".")
    longest = int(rows["budget"].max())
    margins = []
    for r in rows[rows["budget"] == longest].itertuples():
        if math.isnan(r.focus_train_margin):
            continue
        base = table[(table["arm"] == r.arm) & (table["budget"] == longest) & (table["method"] == "baseline")]
        base_tpr = float(base["focus_train_tpr"].iloc[0]) if len(base) else math.nan
        margins.append(f"'{r.arm}': baseline {focus_class} train-subset TPR {base_tpr:.3f}, its mean training logit "
                       f"margin {_baseline_value(table, r.arm, longest, 'focus_train_margin'):.2f} against "
                       f"{r.focus_train_margin:.2f} under {method} (paired {r.d_focus_train_margin:+.2f} ± "
                       f"{_half(r.d_focus_train_margin_ci)}), unweighted training cross-entropy "
                       f"{_baseline_value(table, r.arm, longest, 'focus_train_ce'):.3f} against {r.focus_train_ce:.3f}")
    if margins:
        sentences.append(f"At {longest} epochs, measured on a fixed training subset: " + "; ".join(margins) + ".")
    return " ".join(sentences)


def _arm_words(arm: str) -> str:
    changes = ARMS[arm]
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in changes.items()) or "the study's settings"


def _overlap(first, last) -> bool:
    low = max(first.d_worst_class_tpr - first.d_worst_class_tpr_ci, last.d_worst_class_tpr - last.d_worst_class_tpr_ci)
    high = min(first.d_worst_class_tpr + first.d_worst_class_tpr_ci, last.d_worst_class_tpr + last.d_worst_class_tpr_ci)
    return not (low > high)  # NaN half-widths (one seed) count as overlapping: nothing is told apart


def _baseline_value(table: pd.DataFrame, arm: str, budget: int, column: str) -> float:
    row = table[(table["arm"] == arm) & (table["method"] == "baseline") & (table["budget"] == budget)]
    return float(row[column].iloc[0]) if len(row) else math.nan


def _half(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


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
