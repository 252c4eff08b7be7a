"""Hyper-parameters chosen on tuning seeds that are never evaluated.

A *grid* names, for each method family to tune, the method (every option but the tuned one) and the
values to try, e.g.::

    {"margin": {"method": {"name": "margin", "source": "static"}, "key": "gamma", "values": [2, 4, 8]},
     "minrecall": {"method": {"name": "minrecall", "form": "logit-adjusted"}, "key": "eta",
                   "values": [0.1, 0.3, 1.0]}}

Notebook 08 trains the baseline and every candidate on the tuning seeds, into ``<results_dir>/tuning/``
(its own records folder, so no table, front or "best" of the evaluated seeds ever reads them), and
:func:`choose` picks, per family, the value with the highest mean *validation* worst-class TPR among those
whose mean paired validation accuracy stays within the goal's budget of the same seed's baseline (when
none does, the one losing least accuracy). The test split is never read. Notebook 06 checks that the
evaluated rows use the values the tuning seeds chose (:func:`evaluated_values`).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils.methods import METHODS
from lbw_utils.runs.experiments import BASELINE, check_method, check_seeds, method_label, table_path
from lbw_utils.stats import GOAL_MAX_ACCURACY_LOSS

TUNING_FOLDER = "tuning"
# The choice notebook 08 writes beside its table (tables/<dataset>/), which notebooks 06 and 09 read back.
CHOICE_FILE = "tuning.json"
GRID_KEYS = {"method", "key", "values"}


def tuning_folder(results_dir: str | Path) -> Path:
    return Path(results_dir) / TUNING_FOLDER


def check_tuning_seeds(seeds, evaluated_seeds) -> list[int]:
    """Tuning seeds that share no seed with the evaluated ones, or a ValueError naming the overlap."""
    seeds, evaluated = check_seeds(seeds), check_seeds(evaluated_seeds)
    shared = sorted(set(seeds) & set(evaluated))
    if shared:
        raise ValueError(f"tuning seeds {seeds} overlap the evaluated seeds {evaluated} at {shared}: a choice made "
                         "on seeds that are then reported is test-informed; pick tuning seeds no table reads "
                         "(e.g. 100-102)")
    return seeds


def check_grid(grid) -> dict:
    """The grid, each candidate method checked; a ValueError names what is wrong and what is allowed."""
    example = '{"margin": {"method": {"name": "margin"}, "key": "gamma", "values": [2, 4, 8]}}'
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid={grid!r} must be a non-empty mapping of family -> spec, e.g. {example}")
    for family, spec in grid.items():
        if not isinstance(spec, dict) or set(spec) != GRID_KEYS:
            raise ValueError(f"grid[{family!r}]={spec!r} must have exactly the keys {sorted(GRID_KEYS)}, "
                             f"e.g. {example}")
        if not isinstance(spec["method"], dict) or "name" not in spec["method"]:
            raise ValueError(f"grid[{family!r}]['method']={spec['method']!r} must be a method dict with a 'name'")
        if spec["key"] in spec["method"]:
            raise ValueError(f"grid[{family!r}]: the tuned key {spec['key']!r} is also fixed in its method "
                             f"{spec['method']!r}; leave it out of the method")
        values = spec["values"]
        if not isinstance(values, list) or len(values) < 2 or len(set(map(repr, values))) != len(values):
            raise ValueError(f"grid[{family!r}]['values']={values!r} must be a list of at least two distinct values")
        for method in candidates({family: spec}):
            check_method(method)  # an unknown key or a value out of range stops here, before training
    return grid


def candidates(grid: dict) -> list[dict]:
    """Every method of the grid, family by family, in the order of the values."""
    return [{**spec["method"], spec["key"]: value} for spec in grid.values() for value in spec["values"]]


def tuning_table(records: list[dict], grid: dict, budget: float = GOAL_MAX_ACCURACY_LOSS) -> pd.DataFrame:
    """One row per (family, value): tuning seeds, mean validation worst-class TPR and accuracy, the mean
    paired change of validation accuracy against the same seed's baseline, whether it is within ``budget``,
    and which value is chosen per family (:func:`choose`'s rule). Reads validation scores only."""
    baselines = {r["seed"]: r["val"] for r in records if r["method_label"] == method_label(BASELINE)}
    rows = []
    for family, spec in grid.items():
        for value in spec["values"]:
            label = method_label({**spec["method"], spec["key"]: value})
            runs = [r for r in records if r["method_label"] == label and r["seed"] in baselines]
            drops = [r["val"]["accuracy"] - baselines[r["seed"]]["accuracy"] for r in runs]
            rows.append({
                "family": family, "key": spec["key"], "value": value, "method": label, "seeds": len(runs),
                "val_worst_class_tpr": _mean([r["val"]["worst_class_tpr"] for r in runs]),
                "val_accuracy": _mean([r["val"]["accuracy"] for r in runs]),
                "d_val_accuracy": _mean(drops),
            })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # object dtype: a float column would turn gamma 4 into 4.0, another method label
    table["value"] = pd.Series([row["value"] for row in rows], dtype=object)
    table["within_budget"] = table["d_val_accuracy"] >= -budget
    table["chosen"] = False
    for _, group in table.groupby("family", sort=False):
        ready = group[group["seeds"] > 0]
        if ready.empty:
            continue
        within = ready[ready["within_budget"]]
        pick = within["val_worst_class_tpr"].idxmax() if len(within) else ready["d_val_accuracy"].idxmax()
        table.loc[pick, "chosen"] = True
    return table


def choose(records: list[dict], grid: dict, budget: float = GOAL_MAX_ACCURACY_LOSS) -> dict:
    """Family -> {"key", "value", "method"}: the value :func:`tuning_table` marks as chosen."""
    return chosen_in(tuning_table(records, grid, budget), grid)


def chosen_in(table: pd.DataFrame, grid: dict) -> dict:
    """:func:`choose` for a table :func:`tuning_table` already computed."""
    chosen = {}
    for row in table[table["chosen"]].itertuples():
        value = _plain(row.value)
        chosen[row.family] = {"key": row.key, "value": value, "method": {**grid[row.family]["method"], row.key: value}}
    return chosen


def choice_text(seeds: list[int], chosen: dict) -> str:
    """The choice as the JSON text of :data:`CHOICE_FILE`: the tuning seeds and :func:`choose`'s result."""
    return json.dumps({"seeds": seeds, "chosen": chosen}, indent=1) + "\n"


def choice_path(folder: str | Path, dataset: str) -> Path:
    return table_path(folder, dataset, CHOICE_FILE)


def read_choice(folder: str | Path, dataset: str) -> dict | None:
    """The choice notebook 08 wrote for ``dataset`` in the results ``folder`` ({"seeds", "chosen"}), or None."""
    path = choice_path(folder, dataset)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def evaluated_values(chosen: dict, evaluated: list[dict]) -> dict[str, list[str]]:
    """Family -> the values (their ``repr``, sorted) of the tuned key that the evaluated records' methods of that
    family use ([] where none belongs to it).

    A method belongs to a family when it equals the family's method in every option but the tuned key, defaults
    filled in (``{"name": "minrecall", "eta": 0.1}`` and ``{..., "every": 32}`` are the same method)."""
    used = {}
    for family, pick in chosen.items():
        key = pick["key"]
        fixed = {k: v for k, v in _filled(pick["method"]).items() if k != key}
        used[family] = sorted({repr(_plain(_filled(r["method"]).get(key))) for r in evaluated
                               if r["method"].get("name") == pick["method"]["name"]
                               and {k: v for k, v in _filled(r["method"]).items() if k != key} == fixed}, key=str)
    return used


def _filled(method: dict) -> dict:
    """A method dict with its registry defaults filled in (an unknown name is kept as it is)."""
    spec = METHODS.get(method.get("name"))
    if spec is None:
        return dict(method)
    return {"name": method["name"], **spec.with_defaults({k: v for k, v in method.items() if k != "name"})}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _plain(value):
    """numpy scalars from a DataFrame back to Python numbers (labels and JSON compare them)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value
