"""Per-class TPR pooled over the folds of a k-fold study: every name counted once, with a Wilson interval.

A k-fold names study (``folds=k``) tests every name exactly once over its k folds, so the test confusion
matrices of one method's k runs add up to one prediction per name: a class's pooled TPR is a binomial
proportion over all of its names (2,000 a class for the author's data), with far less noise than one
fold's 400.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / trials``; (nan, nan) for no trials."""
    if trials <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes} must lie in 0..trials={trials}")
    z = float(norm.ppf(0.5 + level / 2))
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def fold_coverage(records: list[dict], label: str) -> tuple[list[int], int | None]:
    """(fold indices found for ``label``, k) — k None when the records are not fold-based."""
    chosen = [r for r in records if r["method_label"] == label]
    settings = [r["parameters"]["data"] for r in chosen]
    ks = {s.get("folds") for s in settings}
    if len(ks) != 1:
        raise ValueError(f"records of {label!r} mix k-fold settings {sorted(map(str, ks))}")
    k = ks.pop()
    return sorted(int(s.get("fold", r["seed"])) for s, r in zip(settings, chosen)), k


def pooled_tpr(records: list[dict], labels: list[str], level: float = 0.95) -> pd.DataFrame:
    """One row per (method, class): test names, correct ones, pooled TPR and its Wilson interval, summed over
    the method's folds. Refuses records that are not fold-based or that repeat a fold (a name would count
    twice); folds missing from a partial run are allowed and the ``folds`` column says which were pooled."""
    rows = []
    for label in labels:
        chosen = [r for r in records if r["method_label"] == label]
        if not chosen:
            raise ValueError(f"no records of method {label!r}")
        folds, k = fold_coverage(records, label)
        if k is None:
            raise ValueError(f"records of {label!r} are not fold-based (random splits per seed): pooling would "
                             "count names tested in several seeds more than once")
        if len(set(folds)) != len(folds):
            raise ValueError(f"records of {label!r} repeat a fold ({folds}); each name must count once")
        confusion = sum(np.asarray(r["test"]["confusion_matrix"], dtype=np.int64) for r in chosen)
        for index, name in enumerate(chosen[0]["classes"]):
            total, correct = int(confusion[index].sum()), int(confusion[index, index])
            low, high = wilson_interval(correct, total, level)
            rows.append({"method": label, "class": name, "test names": total, "correct": correct,
                         "pooled TPR": correct / total if total else math.nan,
                         f"{level:.0%} Wilson low": low, f"{level:.0%} Wilson high": high,
                         "folds": f"{len(folds)} of {k}"})
    return pd.DataFrame(rows)


def pooled_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: pooled accuracy (every name once) and the worst class's pooled TPR with its interval."""
    rows = []
    low_key = next(c for c in table.columns if c.endswith("Wilson low"))
    high_key = next(c for c in table.columns if c.endswith("Wilson high"))
    for label, part in table.groupby("method", sort=False):
        worst = part.loc[part["pooled TPR"].idxmin()]
        rows.append({"method": label, "test names": int(part["test names"].sum()),
                     "pooled accuracy": part["correct"].sum() / part["test names"].sum(),
                     "worst class": worst["class"], "worst-class pooled TPR": worst["pooled TPR"],
                     low_key: worst[low_key], high_key: worst[high_key], "folds": worst["folds"]})
    return pd.DataFrame(rows)
