"""Every evaluated run's per-seed (per-fold) numbers in one compact CSV, so a reader can recompute any table.

One row per run record: where it lies (``study_folder``, relative to the results folder), dataset, method,
seed (the fold of a k-fold study, ``folds`` then says k), test accuracy, worst-class TPR and per-class TPR,
validation accuracy and worst-class TPR, the ceiling of re-deciding where the run has one, post-hoc offsets
where the run fitted them, epochs and training images. No logits. The lists and the method are JSON in their
cells (``classes``, ``tpr``, ``method``, ``offsets``): ``pandas.read_csv`` reads the file, :func:`read_per_seed`
also parses those cells, and :func:`as_records` turns the rows back into the records the statistics read
(:func:`lbw_utils.stats.paired_table` gives the published paired table from them). Tuning seeds (their own
folder, :data:`lbw_utils.studies.tuning.TUNING_FOLDER`) are never evaluated and stay out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils.files import atomic_write_text
from lbw_utils.records import load_records, records_dir
from lbw_utils.studies.tuning import TUNING_FOLDER

PER_SEED_FILE = "per_seed.csv"
JSON_COLUMNS = ("method", "classes", "tpr", "offsets")
COLUMNS = ["study_folder", "dataset", "method_label", "method", "seed", "folds", "classes", "accuracy",
           "worst_class_tpr", "worst_class", "tpr", "val_accuracy", "val_worst_class_tpr", "ceiling_worst_class_tpr",
           "ceiling_accuracy", "offsets", "epochs", "train_images"]
SKIPPED_FOLDERS = (TUNING_FOLDER,)
TOP = "."  # the study folder of the records directly under the results folder


def evaluated_records(results_folder: str | Path, skip: tuple[str, ...] = SKIPPED_FOLDERS) -> list[dict]:
    """Every record of ``results_folder`` and of the study folders under it (any folder holding a records
    folder), each tagged with ``study_folder`` (relative, ``"."`` for the top); a folder with a name in ``skip``
    is left out with everything under it."""
    root = Path(results_folder)
    found = []
    for folder in sorted(root.rglob(records_dir(root).name), key=lambda found: (found.parent != root, found)):
        study = folder.parent.relative_to(root)
        if folder.is_dir() and not set(study.parts) & set(skip):
            found += [{**record, "study_folder": study.as_posix()} for record in load_records(folder.parent)]
    return found


def per_seed_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record, columns :data:`COLUMNS` (JSON text in :data:`JSON_COLUMNS`), in record order."""
    rows = []
    for record in records:
        test, val, ceiling = record["test"], record.get("val") or {}, record.get("ceiling") or {}
        parameters = record.get("parameters") or {}
        data = parameters.get("data") or {}
        offsets = (record.get("weights") or {}).get("offsets")
        rows.append({
            "study_folder": record.get("study_folder", TOP), "dataset": record["dataset"],
            "method_label": record["method_label"], "method": json.dumps(record.get("method"), sort_keys=True),
            "seed": record["seed"], "folds": data.get("folds"), "classes": json.dumps(record.get("classes")),
            "accuracy": test["accuracy"], "worst_class_tpr": test["worst_class_tpr"],
            "worst_class": test.get("worst_class"), "tpr": json.dumps(test["tpr"]),
            "val_accuracy": val.get("accuracy"), "val_worst_class_tpr": val.get("worst_class_tpr"),
            "ceiling_worst_class_tpr": ceiling.get("worst_class_tpr"), "ceiling_accuracy": ceiling.get("accuracy"),
            "offsets": None if offsets is None else json.dumps(offsets),
            "epochs": (parameters.get("train") or {}).get("epochs"),
            "train_images": (data.get("sizes") or {}).get("train"),
        })
    # whole numbers stay whole in the CSV ("5", not "5.0"), an absent one an empty cell
    return pd.DataFrame(rows, columns=COLUMNS).astype({"folds": "Int64", "epochs": "Int64", "train_images": "Int64"})


def write_per_seed(results_folder: str | Path, path: str | Path,
                   skip: tuple[str, ...] = SKIPPED_FOLDERS) -> pd.DataFrame:
    """Write :func:`per_seed_frame` of ``results_folder``'s evaluated records (:func:`evaluated_records`) to
    ``path`` as CSV, atomically; return the frame written."""
    frame = per_seed_frame(evaluated_records(results_folder, skip))
    atomic_write_text(path, frame.to_csv(index=False))
    return frame


def read_per_seed(path: str | Path) -> pd.DataFrame:
    """The file :func:`write_per_seed` wrote, its JSON cells parsed (an empty ``offsets`` cell is None)."""
    # only an empty cell is missing: a class or method named "NA" or "None" stays a name
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for column in JSON_COLUMNS:
        frame[column] = [json.loads(cell) if isinstance(cell, str) else None for cell in frame[column]]
    return frame


def as_records(frame: pd.DataFrame) -> list[dict]:
    """The rows of a :func:`read_per_seed` frame as the records :mod:`lbw_utils.stats` reads: test and
    validation summaries, the ceiling, ``study_folder``. The test's balanced accuracy and TPR spread are
    recomputed from ``tpr`` in float64 (a record's own come from float32 sums: they may differ in the 7th
    digit); the file holds no training time."""
    found = []
    for row in frame.itertuples(index=False):
        tpr = np.asarray(row.tpr, dtype=float)
        ceiling = {"worst_class_tpr": row.ceiling_worst_class_tpr, "accuracy": row.ceiling_accuracy}
        found.append({
            "study_folder": row.study_folder, "dataset": row.dataset, "method_label": row.method_label,
            "method": row.method, "seed": int(row.seed), "classes": row.classes,
            "test": {"accuracy": row.accuracy, "worst_class_tpr": row.worst_class_tpr, "worst_class": row.worst_class,
                     "tpr": list(row.tpr), "balanced_accuracy": float(np.nanmean(tpr)),
                     "tpr_std": float(np.nanstd(tpr))},
            "val": {"accuracy": row.val_accuracy, "worst_class_tpr": row.val_worst_class_tpr},
            "ceiling": None if math.isnan(row.ceiling_worst_class_tpr) else ceiling,
        })
    return found


def per_seed_line(frame: pd.DataFrame, link: str) -> str:
    """The results page's line on the file: how many runs of which datasets, and how to read it."""
    datasets = ", ".join(dict.fromkeys(frame["dataset"])) or "none"
    return (f"Every run's own numbers, one row per seed (fold): [{PER_SEED_FILE}]({link}), {len(frame)} runs "
            f"(datasets: {datasets}; tuning seeds left out); `pandas.read_csv` reads it, "
            "`lbw_utils.reporting.per_seed.read_per_seed` also parses its JSON cells.")
