"""Did a method change what the network separates, and at what compute? The numbers of notebook 09.

Whether a row's curve lies above the baseline's re-decision frontier (offsets fitted on test at a ladder of
absolute accuracy levels, paired by seed) is :mod:`lbw_utils.studies.redecision`; this module runs notebook
09's rows and says what they cost and what re-deciding on top of them does.

Compute is said, not equalised: epochs x training images x the networks trained to make a row (an ensemble's
members, a student's teacher and itself), training seconds with a teacher's (as measured, so they depend on the
machine and on what ran beside), the networks run at inference, and the parameters, each beside the baseline's.
:func:`separation_summary` answers, from the re-decision frontier, whether any row separates the classes better
than the baseline at equal accuracy, counted at the baseline's inference cost (one network) and at any cost.

Post-hoc offsets on top of a row are fitted on validation within a stated accuracy budget; whether that budget
held on the test split is :func:`budget_overshoot_table` (each post-hoc run's test accuracy against the run it
adjusts, same seed). What a user compares, re-deciding a method against re-deciding the baseline, is
:func:`posthoc_vs_posthoc_table`: every ``X+posthoc`` row paired by seed with ``baseline+posthoc``, beside its
pairing with the bare baseline.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lbw_utils import records as run_records
from lbw_utils.methods import METHODS
from lbw_utils.methods.ensemble import with_members
from lbw_utils.methods.posthoc import BUDGETED_OBJECTIVES
from lbw_utils.runs.experiments import BASELINE as BASELINE_METHOD, Settings, method_label
from lbw_utils.stats import mean_interval, paired_table
from lbw_utils.studies.redecision import ABOVE, MIN_SEEDS

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
    # an ensemble's or a student's members (replicates of the baseline) train first; they are no rows of their own
    name = settings.run_study(with_members(trained_methods))[0]["dataset"]
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
    """(method, reference) labels of notebook 09's planned comparisons, where both rows ran: targeted against
    uniform augmentation (same cost), pairwise confusion margins against per-class margins, class-conditional
    against uniform augmentation strength (same mean), CLAM against the same augmentation unweighted, the
    worst-class student against the plain one."""
    by_name = {m["name"]: method_label(m) for m in reversed(methods)}  # the first of each name
    augments = [m for m in methods if m["name"] == "augment"]
    targeted = [method_label(m) for m in augments if m.get("classes", "confused") == "confused"]
    uniform = [method_label(m) for m in augments if m.get("classes") == "all"]
    pairs = [(targeted[0], uniform[0])] if targeted and uniform else []
    if "pair-margin" in by_name and "margin" in by_name:
        pairs.append((by_name["pair-margin"], by_name["margin"]))
    # class-conditional strength against uniform strength (same mean), CLAM against the same augmentation unweighted
    strengths = [m for m in methods if m["name"] == "augment-strength"]
    conditional = [method_label(m) for m in strengths if m.get("exponent", 1.0) != 0]
    flat = [method_label(m) for m in strengths if m.get("exponent", 1.0) == 0]
    pairs += [(label, flat[0]) for label in conditional[:1] if flat]
    if "clam" in by_name and uniform:
        pairs.append((by_name["clam"], uniform[0]))
    students = [m for m in methods if m["name"] == "distill"]
    plain = [method_label(m) for m in students if m.get("form", "plain") == "plain"]
    pairs += [(method_label(m), plain[0]) for m in students if m.get("form") == "worst" and plain][:1]
    return pairs


def _runs(records: list[dict]) -> pd.DataFrame:
    rows = []
    for record in records:
        ceiling = record.get("ceiling") or {}
        parameters = record.get("parameters") or {}
        train, model = parameters.get("train") or {}, parameters.get("model") or {}
        images = ((parameters.get("data") or {}).get("sizes") or {}).get("train", math.nan)
        compute = record.get("compute") or {}
        rows.append({"method": record["method_label"], "seed": record["seed"],
                     "ceiling": ceiling.get("worst_class_tpr", math.nan),
                     "reached_floor": bool(ceiling.get("reached_floor", True)),
                     "epochs": train.get("epochs", math.nan), "images": images,
                     "networks_trained": compute.get("networks_trained", 1),
                     "networks_at_inference": compute.get("networks_at_inference", 1),
                     "train_seconds": compute.get("seconds_with_teachers", record.get("train_seconds", math.nan)),
                     "parameters": model.get("parameters", math.nan) if isinstance(model, dict) else math.nan})
    return pd.DataFrame(rows)


def compute_table(records: list[dict], baseline: str = BASELINE) -> pd.DataFrame:
    """Per method: epochs, training images, epochs x images x networks trained (an ensemble's members, a student
    and its teacher), mean training seconds (a student's with its teacher's), networks at inference and their
    parameters, and each ratio to the baseline's. Post-hoc rows (no training of their own) show 0 seconds."""
    runs = _runs(records)
    if runs.empty:
        return runs
    runs["epoch_images"] = runs["epochs"] * runs["images"] * runs["networks_trained"]
    means = runs.groupby("method", sort=False)[["epochs", "images", "networks_trained", "epoch_images",
                                                "train_seconds", "networks_at_inference", "parameters"]].mean()
    if baseline in means.index:
        for key in ("epoch_images", "train_seconds", "parameters"):
            means[f"{key}_vs_baseline"] = means[key] / means.loc[baseline, key]
    means.insert(0, "seeds", runs.groupby("method", sort=False)["seed"].nunique())
    order = [baseline] * (baseline in means.index) + [method for method in means.index if method != baseline]
    return means.loc[order].reset_index()


# The two counts of the answer: rows that run one network at inference (the baseline's cost: a distilled student
# competes) and every row (an ensemble competes).
INFERENCE_COSTS = {"one network": lambda networks: networks <= 1, "any": lambda networks: True}


def separation_summary(comparison: pd.DataFrame, compute: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """Does any row lie above the baseline's re-decision frontier (every compared level's paired interval above 0:
    :func:`lbw_utils.studies.redecision.frontier_comparison`'s verdict), counted at the baseline's inference cost and
    at any cost? One row per (``cost``, trained row): ``method``, ``verdict``, ``networks_at_inference``,
    ``epoch_images_vs_baseline`` and ``train_seconds_vs_baseline`` (training compute), the mean paired difference
    at the compared level where it is largest and smallest (``largest`` / ``smallest``, fractions, with
    ``largest_ci``), ``levels_compared`` and ``above`` (the verdict is "above"); post-hoc rows are left out (their
    curve is their base row's). ``records``: the rows' records (post-hoc ones are skipped by their method)."""
    posthoc = {r["method_label"] for r in records if _adjusts_a_run(r)}
    costs = compute.set_index("method")
    rows = []
    for method, levels in comparison.groupby("method", sort=False):
        if method in posthoc or method not in costs.index:
            continue
        compared = levels[levels["seeds"] >= MIN_SEEDS]
        largest = compared.loc[compared["difference"].idxmax()] if len(compared) else None
        networks = float(costs.loc[method, "networks_at_inference"])
        for cost, counts in INFERENCE_COSTS.items():
            if not counts(networks):
                continue
            rows.append({"cost": cost, "method": method, "verdict": levels["verdict"].iloc[0],
                         "above": levels["verdict"].iloc[0] == ABOVE, "networks_at_inference": networks,
                         "epoch_images_vs_baseline": costs.loc[method].get("epoch_images_vs_baseline", math.nan),
                         "train_seconds_vs_baseline": costs.loc[method].get("train_seconds_vs_baseline", math.nan),
                         "levels_compared": len(compared),
                         "largest": math.nan if largest is None else float(largest["difference"]),
                         "largest_ci": math.nan if largest is None else float(largest["difference_ci"]),
                         "largest_level": math.nan if largest is None else float(largest["level"]),
                         "smallest": float(compared["difference"].min()) if len(compared) else math.nan})
    return pd.DataFrame(rows, columns=["cost", "method", "verdict", "above", "networks_at_inference",
                                       "epoch_images_vs_baseline", "train_seconds_vs_baseline", "levels_compared",
                                       "largest", "largest_ci", "largest_level", "smallest"])


# --------------------------------------------------------------------------
# Post-hoc rows: did the budget hold on test, and re-deciding a method against re-deciding the baseline
# --------------------------------------------------------------------------

# An accuracy loss over the budget by less than this is float rounding of two ratios of counts, not an overshoot
# (one test image of 10,000 is 1e-4).
OVERSHOOT_TOLERANCE = 1e-9


def _adjusts_a_run(record: dict) -> bool:
    name = (record.get("method") or {}).get("name")
    return name in METHODS and METHODS[name].kind.adjusts_a_run


def _stated_budget(record: dict) -> float:
    """The accuracy budget a post-hoc run was asked to keep (NaN for an objective without one): its record's
    ``stated_budget`` where it has one, else its method's ``max_accuracy_drop`` (the entry's default filled in)."""
    weights = record.get("weights") or {}
    if "stated_budget" in weights:
        return math.nan if weights["stated_budget"] is None else float(weights["stated_budget"])
    options = METHODS[record["method"]["name"]].options_of(record["method"])
    return float(options["max_accuracy_drop"]) if options.get("objective") in BUDGETED_OBJECTIVES else math.nan


def _adjusted_label(record: dict) -> str:
    """The label of the run a post-hoc record adjusts: its record says (``adjusts``), else its method's ``of``."""
    adjusts = (record.get("weights") or {}).get("adjusts")
    return adjusts if adjusts else method_label(record["method"].get("of", BASELINE_METHOD))


def budget_overshoot_table(records: list[dict]) -> pd.DataFrame:
    """Per post-hoc row (records whose method adjusts another run): did its stated accuracy budget hold on test?

    Per seed, the test accuracy loss is the accuracy of the run it adjusts (its ``"of"``, same dataset and seed)
    minus its own test accuracy, and the overshoot is that loss minus the stated budget (positive: the budget
    did not hold). Columns: ``method``, ``adjusts``, ``seeds`` (with the adjusted run's record), ``hold``
    (how the budget was held, None for records made before it was recorded), ``stated_budget`` (NaN for an
    objective without a budget), ``internal_budget`` (mean over the seeds that recorded one), ``test_loss`` and
    ``test_loss_ci`` (mean and 95 % t half-width), ``overshoot`` (mean), ``over_budget`` (the mean loss above the
    budget by more than float rounding) and ``seeds_over_budget``; fractions, not points. Rows without a seed to
    pair are left out."""
    trained = {(r["dataset"], r["method_label"], r["seed"]): r for r in records}
    per_row: dict[str, list[dict]] = {}
    for record in records:
        if not _adjusts_a_run(record):
            continue
        adjusted = trained.get((record["dataset"], _adjusted_label(record), record["seed"]))
        if adjusted is None:
            continue
        weights = record.get("weights") or {}
        internal = weights.get("internal_budget")
        per_row.setdefault(record["method_label"], []).append({
            "adjusts": adjusted["method_label"], "hold": weights.get("hold"),
            "stated_budget": _stated_budget(record),
            "internal_budget": math.nan if internal is None else float(internal),
            "test_loss": adjusted["test"]["accuracy"] - record["test"]["accuracy"]})
    rows = []
    for method, seeds in per_row.items():
        losses = [seed["test_loss"] for seed in seeds]
        budget = seeds[0]["stated_budget"]
        loss, half_width = mean_interval(losses)
        internal = [seed["internal_budget"] for seed in seeds if not math.isnan(seed["internal_budget"])]
        over = [value - budget > OVERSHOOT_TOLERANCE for value in losses]
        rows.append({"method": method, "adjusts": seeds[0]["adjusts"], "seeds": len(seeds), "hold": seeds[0]["hold"],
                     "stated_budget": budget, "internal_budget": float(np.mean(internal)) if internal else math.nan,
                     "test_loss": loss, "test_loss_ci": half_width,
                     "overshoot": loss - budget if not math.isnan(budget) else math.nan,
                     "over_budget": loss - budget > OVERSHOOT_TOLERANCE if not math.isnan(budget) else math.nan,
                     "seeds_over_budget": sum(over) if not math.isnan(budget) else math.nan})
    return pd.DataFrame(rows, columns=["method", "adjusts", "seeds", "hold", "stated_budget", "internal_budget",
                                       "test_loss", "test_loss_ci", "overshoot", "over_budget", "seeds_over_budget"])


def posthoc_vs_posthoc_table(records: list[dict], baseline_posthoc_label: str,
                             baseline: str = BASELINE) -> pd.DataFrame:
    """Every ``X+posthoc`` row paired by seed with ``baseline_posthoc_label`` (re-deciding the baseline with the
    same adjustment: the same label after the first ``+``), beside its pairing with the bare ``baseline``.

    Columns, from :func:`lbw_utils.stats.paired_table` with ``baseline_posthoc_label`` as the reference (test
    split, last epoch): ``method``, ``seeds``, ``d_worst_class_tpr`` / ``d_accuracy`` with ``_ci`` (mean paired
    change and 95 % t half-width, fractions), ``p_*`` (paired t-test) and ``p_*_holm`` (Holm over the rows of
    this table), ``goal_met`` (the research goal counted against re-deciding the baseline); and the same row's
    pairing with the bare ``baseline``, from the paired table of all ``records`` (its Holm family is that
    table's rows), as ``vs_baseline_d_worst_class_tpr``, ``vs_baseline_d_worst_class_tpr_ci``,
    ``vs_baseline_p_worst_class_tpr_holm``, ``vs_baseline_d_accuracy``, ``vs_baseline_d_accuracy_ci``. The
    reference row itself is left out. The records are one dataset's."""
    datasets = sorted({record["dataset"] for record in records})
    if len(datasets) > 1:
        raise ValueError(f"records of {len(datasets)} datasets {datasets} are not allowed: the table pairs the rows of "
                         "one dataset; pass one dataset's records")
    labels = {record["method_label"] for record in records}
    if "+" not in baseline_posthoc_label or baseline_posthoc_label not in labels:
        raise ValueError(f"baseline_posthoc_label={baseline_posthoc_label!r} is not allowed: expected the label of "
                         f"post-hoc runs on the baseline among the records, e.g. 'baseline+posthoc-budget-drop0.005'"
                         f"; the records have {sorted(labels)}")
    adjustment = "+" + baseline_posthoc_label.split("+", 1)[1]
    rows = [record for record in records if record["method_label"].endswith(adjustment)]
    against_posthoc = paired_table(rows, baseline_label=baseline_posthoc_label)
    against_posthoc = against_posthoc[against_posthoc["method"] != baseline_posthoc_label]
    keys = ["method", "seeds", "d_worst_class_tpr", "d_worst_class_tpr_ci", "p_worst_class_tpr",
            "p_worst_class_tpr_holm", "d_accuracy", "d_accuracy_ci", "p_accuracy", "p_accuracy_holm", "goal_met"]
    table = against_posthoc[keys] if len(against_posthoc) else pd.DataFrame(columns=keys)
    bare = paired_table(records, baseline_label=baseline)
    beside = ["d_worst_class_tpr", "d_worst_class_tpr_ci", "p_worst_class_tpr_holm", "d_accuracy", "d_accuracy_ci"]
    if bare.empty:
        bare = pd.DataFrame(columns=["method", *beside])
    bare = bare[["method", *beside]].rename(columns={key: f"vs_baseline_{key}" for key in beside})
    return table.merge(bare, on="method", how="left").reset_index(drop=True)
