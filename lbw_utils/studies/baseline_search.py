"""The baseline recipe, chosen by procedure on tuning seeds: what a practitioner would try at the regime's compute.

A weak baseline makes every method look good: a gain then measures a recipe being repaired, not a method
against learnability imbalance. So the baseline of a regime (and the base of every method trained in it: the
methods inherit its schedule, regularisation and augmentation) is the best plain recipe found by a staged
search, scored on the *validation* split of tuning seeds that no table reads (the test split is never read):

* a *stage* varies a few settings (``grid``: every combination of the values listed, or ``choices``: a list
  of setting sets) around the best recipe so far; the candidate with the highest mean validation accuracy
  over the tuning seeds wins the stage (on a tie, the higher mean validation worst-class TPR, then the one
  listed first) and becomes the base of the next stage;
* every candidate must cost the regime's compute, multiply-adds per image x epochs (the training images are
  the same for all), within :data:`COMPUTE_TOLERANCE` of the starting recipe's: a wider network trains fewer
  epochs. A candidate outside that band is refused before anything trains;
* *references* (e.g. the plain script a reader writes, at its own larger compute) train on the same tuning
  seeds and are shown with their compute beside the search; they are never the baseline.

The search varies training and network settings only (TrainConfig fields and ``model_size``); the data
settings stay the regime's. Each candidate's runs go to their own folder under
``<results_dir>/baseline_search/<regime>/``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lbw_utils.models import cnn_multiply_adds
from lbw_utils.runs.experiments import BASELINE, TRAIN_PARAMETERS, Settings, check_seeds, load_data
from lbw_utils.stats import mean_interval
from lbw_utils.studies.tuning import check_tuning_seeds  # noqa: F401 (notebook 00 checks its seeds with it)

SEARCH_FOLDER = "baseline_search"
# The search's table and the recipe it chose, in tables/<dataset>/, one pair per regime (a profile searches
# several regimes of one dataset): baseline_search_<regime>.md and baseline_recipe_<regime>.json.
TABLE_FILE, CHOICE_FILE = "baseline_search_{regime}.md", "baseline_recipe_{regime}.json"
REGIME_NAME = r"[A-Za-z0-9_\-]+"
COMPUTE_TOLERANCE = 0.10
# What a stage or a reference may set: training settings and the CNN's size, never the data.
SEARCHABLE = frozenset(TRAIN_PARAMETERS) | {"model_size"}
EXAMPLE_STAGE = '{"name": "optimiser", "grid": {"lr": [0.1, 0.2], "schedule": ["triangular", "onecycle"]}}'


@dataclass(frozen=True)
class Candidate:
    stage: str
    changes: dict  # the settings this candidate sets on top of the base recipe of its stage
    recipe: dict  # the whole recipe: the regime's settings with every change so far

    def slug(self, regime: dict) -> str:
        """A folder name saying how the recipe differs from the regime, e.g. ``lr_0.2-schedule_onecycle``, with a
        short hash of the whole recipe (two recipes never share a folder)."""
        changed = [f"{key}_{value}" for key, value in sorted(self.recipe.items()) if regime.get(key) != value]
        digest = hashlib.sha256(json.dumps(self.recipe, sort_keys=True).encode()).hexdigest()[:8]
        return "-".join([*changed, digest]).replace("/", "_").replace(" ", "")


def describe_changes(changes: dict) -> str:
    """``lr 0.2, schedule onecycle`` (``as given`` when a candidate changes nothing)."""
    return ", ".join(f"{key} {value}" for key, value in changes.items()) or "as given"


def check_stages(stages) -> list[dict]:
    """Stages as a list of {"name", "grid" or "choices"}; a ValueError names what is wrong and what is allowed."""
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"stages={stages!r} must be a non-empty list of stages, e.g. [{EXAMPLE_STAGE}]")
    names = set()
    for stage in stages:
        if not isinstance(stage, dict) or "name" not in stage or len(set(stage) & {"grid", "choices"}) != 1 \
                or set(stage) - {"name", "grid", "choices"}:
            raise ValueError(f"stage {stage!r} must have a 'name' and exactly one of 'grid' (setting -> values) or "
                             f"'choices' (a list of setting dicts), e.g. {EXAMPLE_STAGE}")
        if stage["name"] in names:
            raise ValueError(f"stage name {stage['name']!r} is used twice; each stage needs its own name")
        names.add(stage["name"])
        for options in stage_options(stage):
            _check_searchable(options, f"stage {stage['name']!r}")
        if len(stage_options(stage)) < 2:
            raise ValueError(f"stage {stage['name']!r} has fewer than two candidates: nothing to choose")
    return stages


def check_references(references) -> list[dict]:
    """References as a list of {"name", "settings"}: recipes shown beside the search, never chosen."""
    if not isinstance(references, list):
        raise ValueError(f"references={references!r} must be a list of {{'name': ..., 'settings': {{...}}}}")
    for reference in references:
        if not isinstance(reference, dict) or set(reference) != {"name", "settings"}:
            raise ValueError(f"reference {reference!r} must have exactly the keys 'name' and 'settings'")
        _check_searchable(reference["settings"], f"reference {reference['name']!r}")
    return references


def _check_searchable(options, where: str) -> None:
    if not isinstance(options, dict):
        raise ValueError(f"{where}: {options!r} must be a dict of settings")
    refused = sorted(set(options) - SEARCHABLE)
    if refused:
        raise ValueError(f"{where} sets {refused}: a baseline search varies only training settings and the CNN's "
                         f"size, {sorted(SEARCHABLE)}; the data settings stay the regime's")


def stage_options(stage: dict) -> list[dict]:
    """Every setting set a stage tries, in order."""
    if "choices" in stage:
        if not isinstance(stage["choices"], list):
            raise ValueError(f"stage {stage['name']!r}: choices={stage['choices']!r} must be a list of setting dicts")
        return [dict(choice) for choice in stage["choices"]]
    grid = stage["grid"]
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"stage {stage['name']!r}: grid={grid!r} must map settings to non-empty lists of values")
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


def compute_of(recipe: dict, input_shape, num_classes: int) -> float:
    """Multiply-adds per image x epochs of a recipe (the training images are the regime's, the same for all)."""
    return cnn_multiply_adds(recipe["model_size"], tuple(input_shape), num_classes) * recipe["epochs"]


def check_compute(stages: list[dict], regime: dict, input_shape, num_classes: int) -> None:
    """Every candidate of every stage within the tolerance of the regime's compute, or a ValueError listing those
    outside (checked on each stage's options applied to the regime: a stage that changes the size must change the
    epochs with it)."""
    reference = compute_of(regime, input_shape, num_classes)
    outside = []
    for stage in stages:
        within = 0
        for options in stage_options(stage):
            ratio = compute_of({**regime, **options}, input_shape, num_classes) / reference
            if abs(ratio - 1) > COMPUTE_TOLERANCE:
                outside.append(f"{stage['name']}: {describe_changes(options)} costs {ratio:.2f}x")
            else:
                within += 1
        if not within:
            outside.append(f"{stage['name']}: no candidate within the compute")
    if outside:
        raise ValueError(f"baseline candidates outside the regime's compute ({regime['model_size']} CNN x "
                         f"{regime['epochs']} epochs, +-{COMPUTE_TOLERANCE:.0%} allowed): {'; '.join(outside)}. "
                         "A larger compute is a reference (references=[...]), never the baseline")


def regime_recipe(params: dict) -> dict:
    """The regime's own training and network settings (the search's starting point), from notebook parameters."""
    settings = Settings.from_params({**params, "results_dir": "."})
    recipe = {key: getattr(settings.train, key) for key in TRAIN_PARAMETERS}
    recipe["model_size"] = settings.model.size
    return recipe


def check_regime_name(regime: str) -> str:
    """A regime's name, used in file and folder names: letters, digits, '_' and '-'."""
    if not isinstance(regime, str) or not re.fullmatch(REGIME_NAME, regime):
        raise ValueError(f"regime={regime!r} must be a short name of letters, digits, '_' or '-' (e.g. 'cpu'); it "
                         "names the search's files")
    return regime


def run_search(params: dict, stages: list[dict], references: list[dict], folder: str | Path, regime_name: str,
               progress: bool = True) -> pd.DataFrame:
    """Train every stage's candidates and every reference on ``params['seeds']``; return one row per candidate and
    seed (validation accuracy and worst-class TPR, compute ratio), with the chosen candidate of each stage marked."""
    stages, references = check_stages(stages), check_references(references)
    regime = regime_recipe(params)
    seeds = check_seeds(params.get("seeds", [0]))
    probe = load_data(Settings.from_params({**params, "results_dir": "."}).data, seeds[0])
    check_compute(stages, regime, probe.input_shape, probe.num_classes)
    base_compute = compute_of(regime, probe.input_shape, probe.num_classes)
    folder = Path(folder) / SEARCH_FOLDER / check_regime_name(regime_name)
    rows, best = [], Candidate("regime", {}, regime)
    for stage in stages:
        candidates = [Candidate(stage["name"], options, {**best.recipe, **options}) for options in stage_options(stage)]
        scores = [_train(candidate, regime, params, folder, progress) for candidate in candidates]
        winner = max(range(len(candidates)), key=lambda i: (_mean(scores[i], "val_accuracy"),
                                                            _mean(scores[i], "val_worst_class_tpr"), -i))
        for index, (candidate, score) in enumerate(zip(candidates, scores)):
            ratio = compute_of(candidate.recipe, probe.input_shape, probe.num_classes) / base_compute
            rows += [{**row, "chosen": index == winner, "compute": ratio} for row in score]
        best = candidates[winner]
    for reference in references:
        candidate = Candidate("reference", reference["settings"], {**best.recipe, **reference["settings"]})
        score = _train(candidate, regime, params, folder, progress, name=reference["name"])
        ratio = compute_of(candidate.recipe, probe.input_shape, probe.num_classes) / base_compute
        rows += [{**row, "chosen": False, "compute": ratio} for row in score]
    return pd.DataFrame(rows)


def _train(candidate: Candidate, regime: dict, params: dict, folder: Path, progress: bool,
           name: str | None = None) -> list[dict]:
    settings = Settings.from_params({**params, **candidate.recipe, "results_dir": str(folder / candidate.slug(regime))})
    records = settings.run_study([BASELINE], progress=progress)
    return [{"stage": candidate.stage, "candidate": name or describe_changes(candidate.changes),
             "recipe": json.dumps(candidate.recipe, sort_keys=True), "seed": record["seed"],
             "val_accuracy": record["val"]["accuracy"], "val_worst_class_tpr": record["val"]["worst_class_tpr"],
             "train_seconds": record["train_seconds"]} for record in records]


def _mean(score: list[dict], key: str) -> float:
    return sum(row[key] for row in score) / len(score)


def search_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: its stage, compute ratio, mean validation accuracy and worst-class TPR with 95 % t
    half-widths over the tuning seeds, mean training seconds, and whether the stage chose it."""
    rows = []
    for (stage, candidate), group in runs.groupby(["stage", "candidate"], sort=False):
        accuracy, accuracy_ci = mean_interval(group["val_accuracy"])
        worst, worst_ci = mean_interval(group["val_worst_class_tpr"])
        rows.append({"stage": stage, "candidate": candidate, "compute": float(group["compute"].iloc[0]),
                     "seeds": len(group), "val_accuracy": accuracy, "val_accuracy_ci": accuracy_ci,
                     "val_worst_class_tpr": worst, "val_worst_class_tpr_ci": worst_ci,
                     "train_seconds": float(group["train_seconds"].mean()), "chosen": bool(group["chosen"].iloc[0]),
                     "recipe": group["recipe"].iloc[0]})
    return pd.DataFrame(rows)


def chosen_recipe(table: pd.DataFrame) -> dict:
    """The recipe of the last stage's chosen candidate: the regime's baseline."""
    chosen = table[table["chosen"]]
    if chosen.empty:
        raise ValueError("the search table has no chosen candidate; run the search first")
    return json.loads(chosen["recipe"].iloc[-1])


def choice_text(seeds: list[int], recipe: dict) -> str:
    """The chosen recipe as the JSON a profile's evaluated study names."""
    return json.dumps({"tuning_seeds": seeds, "recipe": recipe}, indent=2, sort_keys=True) + "\n"


def read_choice(folder: str | Path, dataset: str, regime_name: str) -> dict | None:
    """The recipe a search in ``folder`` chose for ``dataset``'s regime ``regime_name`` (None when none ran there)."""
    path = Path(folder) / "tables" / dataset / CHOICE_FILE.format(regime=check_regime_name(regime_name))
    return json.loads(path.read_text(encoding="utf-8"))["recipe"] if path.exists() else None


def differences(chosen: dict, evaluated: dict) -> dict:
    """Settings where the evaluated study's recipe differs from the chosen one: {key: (chosen, evaluated)}."""
    return {key: (value, evaluated.get(key)) for key, value in chosen.items()
            if key in SEARCHABLE and not _same(value, evaluated.get(key))}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b))
    return a == b
