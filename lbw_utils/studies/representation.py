"""Did a method change what the network separates, and at what compute? The numbers of notebook 09.

The ceiling of re-deciding (:mod:`lbw_utils.ceiling`) of a run is the most that per-class offsets fitted on
its own test split can lift its worst class within the accuracy budget. A method that only moves thresholds
leaves it where the baseline's is; a method that separates the classes better raises it. So the question
"did the ceiling move?" is the paired change ``ceiling(method, seed) - ceiling(baseline, seed)``, with its
95 % t interval over seeds and a paired t-test (Holm-adjusted over the methods compared). The ceiling is a
reference computed with test labels: it describes runs and never selects one.

Compute is said, not equalised: epochs x training images, training seconds (as measured, so they depend on
the machine and on what ran beside), and the network's parameters, each beside the baseline's.
"""

from __future__ import annotations

import math

import pandas as pd

from lbw_utils import records as run_records
from lbw_utils.runs.experiments import BASELINE as BASELINE_METHOD, Settings, method_label
from lbw_utils.stats import holm, mean_interval, paired_p_value

BASELINE = "baseline"
EXAMPLE_METHODS = '[{"name": "augment", "classes": "confused"}, {"name": "pair-margin", "gamma": 1.0}]'


def check_methods(methods) -> list[dict]:
    """The methods notebook 09 compares with the baseline: a non-empty list of method dicts."""
    if not isinstance(methods, list) or not methods or not all(isinstance(m, dict) and "name" in m for m in methods):
        raise ValueError(f"methods={methods!r} is not allowed: expected a non-empty list of method dicts, "
                         f"e.g. {EXAMPLE_METHODS}")
    return methods


def run_beyond(settings: Settings, methods: list[dict], combination_budget: float) -> tuple[list[dict], list[dict]]:
    """Train (or read back) the baseline and every method of ``settings``' seeds, then post-hoc offsets within
    ``combination_budget`` of validation accuracy on top of each; return (every record of those rows and seeds
    in the results folder, the trained rows' records)."""
    trained_methods = [BASELINE_METHOD] + methods
    name = settings.run_study(trained_methods)[0]["dataset"]
    combinations = [{"name": "posthoc", "objective": "budget", "max_accuracy_drop": combination_budget, "of": m}
                    for m in trained_methods]
    settings.run_study(combinations)
    trained_labels = [method_label(m) for m in trained_methods]
    labels = trained_labels + [method_label(c) for c in combinations]
    everything = [r for r in run_records.load_records(settings.results_dir, name)
                  if r["seed"] in settings.seeds and r["method_label"] in labels]
    return everything, [r for r in everything if r["method_label"] in trained_labels]


def targeted_classes(records: list[dict], classes: list[str], seed: int, top: int = 6) -> list[dict]:
    """What the targeted rows of ``seed`` act on, from their records (in record order): per record that has them,
    ``augmented`` (the class names its augmentation covers) and ``pair_margins`` (the ``top`` largest pairwise
    margins, in logits, as (class, rival, margin), each pair once)."""
    found = []
    for record in records:
        weights = record.get("weights") or {}
        if record["seed"] != seed or not {"augmented_classes", "pair_margins"} & set(weights):
            continue
        row = {"method": record["method_label"], "augmented": None, "pair_margins": None}
        if "augmented_classes" in weights:
            row["augmented"] = [classes[i] for i in weights["augmented_classes"]]
        if "pair_margins" in weights:
            margins = pd.DataFrame(weights["pair_margins"], index=classes, columns=classes)
            largest = margins.stack().sort_values(ascending=False).head(top)
            row["pair_margins"] = [(a, b, value) for (a, b), value in largest.items() if a < b]
        found.append(row)
    return found


def planned_comparisons(methods: list[dict]) -> list[tuple[str, str]]:
    """(method, reference) labels of notebook 09's two planned comparisons, where both rows ran: targeted against
    uniform augmentation (same cost), pairwise confusion margins against per-class margins."""
    by_name = {m["name"]: method_label(m) for m in reversed(methods)}  # the first of each name
    augments = [m for m in methods if m["name"] == "augment"]
    targeted = [method_label(m) for m in augments if m.get("classes", "confused") == "confused"]
    uniform = [method_label(m) for m in augments if m.get("classes") == "all"]
    pairs = [(targeted[0], uniform[0])] if targeted and uniform else []
    if "pair-margin" in by_name and "margin" in by_name:
        pairs.append((by_name["pair-margin"], by_name["margin"]))
    return pairs


def _runs(records: list[dict]) -> pd.DataFrame:
    rows = []
    for record in records:
        ceiling = record.get("ceiling") or {}
        parameters = record.get("parameters") or {}
        train, model = parameters.get("train") or {}, parameters.get("model") or {}
        images = ((parameters.get("data") or {}).get("sizes") or {}).get("train", math.nan)
        rows.append({"method": record["method_label"], "seed": record["seed"],
                     "ceiling": ceiling.get("worst_class_tpr", math.nan),
                     "reached_floor": bool(ceiling.get("reached_floor", True)),
                     "epochs": train.get("epochs", math.nan), "images": images,
                     "train_seconds": record.get("train_seconds", math.nan),
                     "parameters": model.get("parameters", math.nan) if isinstance(model, dict) else math.nan})
    return pd.DataFrame(rows)


def ceiling_shift_table(records: list[dict], baseline: str = BASELINE) -> pd.DataFrame:
    """Per method: its ceiling minus the same seed's baseline ceiling (worst-class TPR), mean and 95 %
    half-width over the seeds both have, the paired t-test's p-value and its Holm adjustment over the
    methods in the table, and a word: ``"raised"`` / ``"lowered"`` (the interval excludes 0) or ``"no change
    shown"``; ``floor_reached``: on how many of those seeds the offsets reached the accuracy floor (the
    baseline's accuracy minus the budget). A run less accurate than that floor cannot be re-decided back into
    the budget, and its ceiling is then what offsets reach on the way, lower than a threshold shift would
    give within the budget. Runs without a ceiling are left out."""
    runs = _runs(records)
    runs = runs[runs["ceiling"].notna()] if len(runs) else runs
    base = runs[runs["method"] == baseline].set_index("seed")["ceiling"] if len(runs) else pd.Series(dtype=float)
    if base.empty:
        raise ValueError(f"no {baseline!r} run with a ceiling among the records: the shift needs the same seed's "
                         "baseline")
    rows = []
    for method, group in runs[runs["method"] != baseline].groupby("method", sort=False):
        own = group.set_index("seed")["ceiling"]
        seeds = own.index.intersection(base.index)
        if not len(seeds):
            continue
        shift, half_width = mean_interval(own[seeds] - base[seeds])
        reached = group.set_index("seed")["reached_floor"]
        rows.append({"method": method, "seeds": len(seeds), "ceiling": float(own[seeds].mean()),
                     "baseline_ceiling": float(base[seeds].mean()), "shift": shift, "shift_ci": half_width,
                     "p": paired_p_value(own[seeds], base[seeds]), "floor_reached": int(reached[seeds].sum())})
    table = pd.DataFrame(rows, columns=["method", "seeds", "ceiling", "baseline_ceiling", "shift", "shift_ci", "p",
                                        "floor_reached"])
    table["p_holm"] = holm(table["p"]) if len(table) else []
    table["verdict"] = [_verdict(row.shift, row.shift_ci) for row in table.itertuples()]
    return table


def _verdict(shift: float, half_width: float) -> str:
    if math.isnan(half_width):
        return "no interval (one seed)"
    if shift - half_width > 0:
        return "raised"
    if shift + half_width < 0:
        return "lowered"
    return "no change shown"


def compute_table(records: list[dict], baseline: str = BASELINE) -> pd.DataFrame:
    """Per method: epochs, training images, epochs x images, mean training seconds and network parameters,
    and each ratio to the baseline's. Post-hoc rows (no training of their own) show 0 seconds."""
    runs = _runs(records)
    if runs.empty:
        return runs
    runs["epoch_images"] = runs["epochs"] * runs["images"]
    means = runs.groupby("method", sort=False)[["epochs", "images", "epoch_images", "train_seconds",
                                                "parameters"]].mean()
    if baseline in means.index:
        for key in ("epoch_images", "train_seconds", "parameters"):
            means[f"{key}_vs_baseline"] = means[key] / means.loc[baseline, key]
    means.insert(0, "seeds", runs.groupby("method", sort=False)["seed"].nunique())
    order = [baseline] * (baseline in means.index) + [method for method in means.index if method != baseline]
    return means.loc[order].reset_index()
