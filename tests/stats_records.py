"""Run records for the tests of lbw_utils.stats and lbw_utils.reporting: a small study of three methods over three
seeds, and a paired study whose seeds shift every method alike (the noise that pairing removes)."""

from __future__ import annotations

import numpy as np

BASE = {0: [0.9, 0.7, 0.5], 1: [0.95, 0.75, 0.6], 2: [0.92, 0.8, 0.55]}
STATIC = {0: [0.85, 0.75, 0.65], 1: [0.9, 0.8, 0.6], 2: [0.88, 0.8, 0.7]}


def record(method: str, seed: int, tpr: list[float], dataset: str = "fashion_mnist", seconds: float = 10.0) -> dict:
    mean = float(np.mean(tpr))
    return {
        "dataset": dataset,
        "method_label": method,
        "seed": seed,
        "test": {
            "accuracy": mean, "balanced_accuracy": mean, "tpr": tpr, "tpr_std": float(np.std(tpr)),
            "worst_class_tpr": min(tpr), "worst_class": f"class{int(np.argmin(tpr))}",
        },
        "train_seconds": seconds,
    }


def study() -> list[dict]:
    # The weighted runs come first and the baseline last: the tables must not depend on record order.
    runs = [record("static", seed, tpr, seconds=12.0) for seed, tpr in STATIC.items()]
    runs += [record("ema", seed, [0.9, 0.72, 0.52]) for seed in (0, 1)]
    runs += [record("baseline", seed, tpr) for seed, tpr in BASE.items()]
    runs.append(record("baseline", 0, [0.5, 0.5], dataset="names"))
    return runs


def paired_study() -> list[dict]:
    """Three seeds; each seed shifts every method by the same amount (seed noise that pairing removes)."""
    records = []
    for seed, shift in enumerate((0.0, 0.05, -0.05)):
        records.append(record("baseline", seed, [0.99 + shift, 0.99 + shift, 0.6 + shift]))
        records.append(record("strong", seed, [0.85 + shift, 0.85 + shift, 0.78 + shift]))  # +18 worst, -3.3 acc
        records.append(record("gentle", seed, [0.99 + shift, 0.99 + shift, 0.64 + shift]))  # +4 worst, +1.3 acc
        records.append(record("worse", seed, [0.97 + shift, 0.97 + shift, 0.55 + shift]))   # dominated
    return records


def two_families() -> tuple[list[dict], list[dict]]:
    """A weighting that raises the worst class by 10-12 points on the first family and not at all on the second
    ("lifts"), and one that does the same on both ("same")."""
    first, second = [], []
    for seed, tpr in BASE.items():
        first += [record("baseline", seed, tpr), record("lifts", seed, [tpr[0], tpr[1], tpr[2] + 0.1 + 0.01 * seed]),
                  record("same", seed, [tpr[0], tpr[1], tpr[2] + 0.05 * (seed % 2)])]
        bag = [t - 0.02 for t in tpr]
        second += [record("baseline", seed, bag), record("lifts", seed, bag),
                   record("same", seed, [bag[0], bag[1], bag[2] + 0.05 * (seed % 2)])]
    return first, second


def with_trajectory(label: str, seed: int, trajectory: list[list[float]], tau: list[float] | None = None) -> dict:
    """A record of ``label`` whose class weights went through ``trajectory`` (one row per update)."""
    weights = {"trajectory": trajectory, **({"tau": tau} if tau else {})}
    return {**record(label, seed, [0.9, 0.5, 0.7]), "weights": weights}
