"""The words a reader sees for what the records name in code: a run (its label -> the registry's display name), a
dataset (``fashion_mnist`` -> "Fashion-MNIST"), and a list of such names. Tables' first columns, figure legends and
titles and the generated sentences use these; CSV files and file names keep the labels and dataset keys."""

from __future__ import annotations

import re

import pandas as pd

from lbw_utils.methods import METHODS, display_name, method_from_label, method_label

# Datasets as people write them; a names task is named by its number of classes (``names5``: its records'
# dataset), any other key is shown with spaces for underscores.
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "mnist": "MNIST",
                 "names_csv": "names (your CSV file)"}
_NAMES_TASK = re.compile(r"names(\d+)")


def dataset_name(dataset: str) -> str:
    """``fashion_mnist`` -> "Fashion-MNIST", ``cifar10`` -> "CIFAR-10", ``names5`` -> "names (5 nationalities)";
    any other dataset key with its underscores as spaces."""
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset={dataset!r} is not allowed: expected a dataset key such as 'fashion_mnist'")
    if dataset in DATASET_NAMES:
        return DATASET_NAMES[dataset]
    found = _NAMES_TASK.fullmatch(dataset)
    if found:
        return f"names ({found.group(1)} nationalities)"
    return dataset.replace("_", " ")


def row_name(label: str) -> str:
    """A table row's or a legend entry's name: the registry's display name of a run label (a label no method
    gives, such as a reference row, is kept)."""
    return display_name(label)


def with_row_names(table: pd.DataFrame, column: str = "method") -> pd.DataFrame:
    """A copy of a formatted table whose ``column`` (run labels) holds the names a reader sees."""
    return table.assign(**{column: [row_name(label) for label in table[column]]})


def listed(names) -> str:
    """Names joined for a sentence: by "; " since a display name may hold a comma ("TPR weights (Q&A recipe),
    γ = 4")."""
    return "; ".join(names)


def adjusted_run(label: str) -> str | None:
    """The label of the run a post-hoc row adjusts (``static-mean-ratio-gamma4+posthoc-worst`` ->
    ``static-mean-ratio-gamma4``); None for any other label."""
    method = method_from_label(label)
    if method is None or not METHODS[method["name"]].kind.adjusts_a_run:
        return None
    return method_label(method.get("of", {"name": "baseline"}))


def examples_noun(dataset: str) -> str:
    """What one training example of ``dataset`` is, in the plural: "names" for a names task, else "images"."""
    return "names" if _NAMES_TASK.fullmatch(dataset) or dataset == "names_csv" else "images"
