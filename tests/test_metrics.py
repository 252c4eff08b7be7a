"""lbw_utils.metrics against scikit-learn and hand-computed numbers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from lbw_utils.metrics import (
    confusion_matrix,
    most_confused_pairs,
    per_class_tpr,
    summarize,
    tpr_variance_reduction,
)

SUMMARY_KEYS = {
    "accuracy", "balanced_accuracy", "macro_f1", "tpr", "precision", "f1", "tpr_std", "tpr_variance",
    "worst_class_tpr", "worst_class", "best_minus_worst_tpr", "confusion_matrix",
}


def random_labels(seed: int):
    """Label vectors with absent classes: some never in y_true, some never predicted."""
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 9))
    size = int(rng.integers(1, 60))
    true_pool = rng.choice(num_classes, size=max(1, num_classes - int(rng.integers(0, 3))), replace=False)
    pred_pool = rng.choice(num_classes, size=max(1, num_classes - int(rng.integers(0, 3))), replace=False)
    y_true = rng.choice(true_pool, size=size)
    # Mostly right, so the diagonal is not empty; otherwise a random allowed class.
    y_pred = np.where(rng.random(size) < 0.5, y_true, rng.choice(pred_pool, size=size))
    return y_true, y_pred, num_classes


def assert_same(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=1e-12, atol=1e-12, equal_nan=True)


SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_scikit_learn(seed):
    y_true, y_pred, num_classes = random_labels(seed)
    labels = list(range(num_classes))
    nan = np.nan

    matrix = confusion_matrix(torch.as_tensor(y_true), torch.as_tensor(y_pred), num_classes)
    assert matrix.shape == (num_classes, num_classes)
    assert not matrix.is_floating_point()
    np.testing.assert_array_equal(matrix.numpy(), skm.confusion_matrix(y_true, y_pred, labels=labels))

    tpr = per_class_tpr(y_true, y_pred, num_classes)
    assert tpr.shape == (num_classes,) and tpr.is_floating_point()
    assert_same(tpr, skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=nan))

    summary = summarize(y_true, y_pred, num_classes)
    assert SUMMARY_KEYS <= set(summary)
    assert_same(summary["tpr"], tpr)
    assert_same(summary["precision"],
                skm.precision_score(y_true, y_pred, labels=labels, average=None, zero_division=nan))
    assert_same(summary["f1"], skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=nan))
    assert summary["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=nan), abs=1e-12)
    assert summary["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about classes absent from y_true: expected here
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    assert summary["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
    assert summary["confusion_matrix"] == matrix.tolist()

    present = tpr[~torch.isnan(tpr)].double().numpy()
    assert summary["tpr_variance"] == pytest.approx(np.var(present, ddof=0), abs=1e-12)
    assert summary["tpr_std"] == pytest.approx(np.std(present, ddof=0), abs=1e-12)
    assert summary["worst_class_tpr"] == pytest.approx(present.min())
    assert summary["best_minus_worst_tpr"] == pytest.approx(present.max() - present.min())
    worst = int(summary["worst_class"])
    assert tpr[worst] == present.min()


def test_random_cases_really_contain_absent_classes():
    """Guard against a generator that stops exercising the NaN paths."""
    never_true = never_predicted = 0
    for seed in SEEDS:
        y_true, y_pred, num_classes = random_labels(seed)
        never_true += len(set(range(num_classes)) - set(y_true.tolist())) > 0
        never_predicted += len(set(range(num_classes)) - set(y_pred.tolist())) > 0
    assert never_true >= 10 and never_predicted >= 10


def test_confusion_matrix_orientation_and_nan_tpr():
    # class 0: 2 samples, one predicted as 1; class 1: 1 sample, right; class 2: never occurs.
    matrix = confusion_matrix([0, 0, 1], [0, 1, 1], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert matrix.dtype == torch.int64
    tpr = per_class_tpr([0, 0, 1], [0, 1, 1], 3)
    assert tpr.dtype == torch.float64
    assert tpr[:2].tolist() == [0.5, 1.0] and math.isnan(tpr[2])


def test_summarize_by_hand_with_class_names():
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
    summary = summarize(y_true, y_pred, 3, class_names=["bag", "shirt", "coat"])
    assert summary["tpr"] == [0.75, 0.5, 0.5]
    assert summary["accuracy"] == pytest.approx(0.6)
    assert summary["balanced_accuracy"] == pytest.approx(1.75 / 3)
    assert summary["worst_class"] == "shirt"  # first of the tied minimum
    assert summary["worst_class_tpr"] == 0.5
    assert summary["best_minus_worst_tpr"] == pytest.approx(0.25)
    mean = 1.75 / 3
    variance = ((0.75 - mean) ** 2 + 2 * (0.5 - mean) ** 2) / 3  # population variance
    assert summary["tpr_variance"] == pytest.approx(variance)
    assert summary["tpr_std"] == pytest.approx(math.sqrt(variance))
    assert summary["precision"] == pytest.approx([3 / 4, 2 / 3, 1 / 3])


def test_summarize_with_no_samples_of_any_class_is_nan_not_an_error():
    summary = summarize([], [], 3)
    assert math.isnan(summary["accuracy"]) and math.isnan(summary["tpr_variance"])
    assert summary["worst_class"] is None
    assert summary["confusion_matrix"] == [[0] * 3] * 3


def test_tpr_variance_reduction_is_the_papers_d():
    baseline = [0.9, 0.7, 0.5]  # mean 0.7, Var = (0.04 + 0 + 0.04) / 3
    weighted = [0.8, 0.7, 0.6]  # Var = (0.01 + 0 + 0.01) / 3
    assert tpr_variance_reduction(baseline, weighted) == pytest.approx(0.08 / 3 - 0.02 / 3, abs=1e-15)
    assert tpr_variance_reduction(weighted, baseline) == pytest.approx(-0.06 / 3, abs=1e-15)
    assert tpr_variance_reduction(baseline, baseline) == 0.0
    # An undefined class (NaN) is left out of the variance, as in summarize.
    assert tpr_variance_reduction([0.9, 0.5, math.nan], [0.7, 0.7, 0.7]) == pytest.approx(0.04)


def test_most_confused_pairs():
    matrix = torch.tensor([[8, 2, 0], [5, 5, 0], [1, 0, 9]])
    pairs = most_confused_pairs(matrix, ["cat", "dog", "ship"], top=5)
    assert pairs == [("dog", "cat", 5, 0.5), ("cat", "dog", 2, 0.2), ("ship", "cat", 1, 0.1)]
    assert most_confused_pairs(matrix, ["cat", "dog", "ship"], top=1) == [("dog", "cat", 5, 0.5)]
    assert most_confused_pairs(torch.eye(3, dtype=torch.long) * 4, ["a", "b", "c"]) == []


@pytest.mark.parametrize(
    "y_true, y_pred, num_classes, words",
    [
        ([0, 1, 2], [0, 1], 3, ["y_true has 3", "y_pred has 2"]),
        ([0, 1, 3], [0, 1, 2], 3, ["y_true", "outside [0, 2]"]),
        ([0, 1, 2], [0, -1, 2], 3, ["y_pred", "outside [0, 2]"]),
        ([0.0, 1.0], [0, 1], 2, ["y_true", "integer", "float"]),
        ([0, 1], [0.5, 1.0], 2, ["y_pred", "integer", "float"]),
        ([[0, 1], [1, 0]], [[0, 1], [1, 0]], 2, ["y_true", "1-D", "(2, 2)"]),
        ([0, 1], [0, 1], 0, ["num_classes=0"]),
    ],
)
def test_bad_input_raises_a_named_value_error(y_true, y_pred, num_classes, words):
    for function in (confusion_matrix, per_class_tpr, summarize):
        with pytest.raises(ValueError) as caught:
            function(y_true, y_pred, num_classes)
        for word in words:
            assert word in str(caught.value), (function.__name__, str(caught.value))
