"""Tests for lbw_utils.methods.posthoc: per-class logit offsets fitted on validation logits."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from lbw_utils.metrics import per_class_tpr
from lbw_utils.methods.posthoc import OFFSET_OBJECTIVES, apply_logit_offsets, fit_logit_offsets


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """Many tiny tensor ops: extra intra-op threads only slow them down on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_logits(num_samples: int, num_classes: int, *, seed: int, margin: float = 2.5,
                     under_predicted: int | None = 3, penalty: float = 1.0):
    """Noisy logits with the true class ``margin`` ahead; one class's logit lowered by ``penalty``."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(num_classes, (num_samples,), generator=generator)
    logits = torch.randn(num_samples, num_classes, generator=generator)
    logits += margin * F.one_hot(targets, num_classes).float()
    if under_predicted is not None:
        logits[:, under_predicted] -= penalty
    return logits, targets


def tpr(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return per_class_tpr(targets, logits.argmax(dim=1), logits.shape[1])


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == targets).double().mean().item()


# --------------------------------------------------------------------------
# What the objectives achieve
# --------------------------------------------------------------------------

def test_worst_objective_lifts_the_under_predicted_class():
    val_logits, val_targets = synthetic_logits(3000, 10, seed=0)
    test_logits, test_targets = synthetic_logits(3000, 10, seed=1)
    offsets = fit_logit_offsets(val_logits, val_targets, "worst")
    adjusted = apply_logit_offsets(test_logits, offsets)
    before, after = tpr(test_logits, test_targets), tpr(adjusted, test_targets)
    assert before.argmin() == 3
    assert after[3] > before[3] + 0.15          # the penalised class recovers on held-out data
    assert after.min() > before.min() + 0.15
    assert offsets.argmax() == 3                # by raising its own offset
    # undoing a penalty of 1.0 on class 3 should also help accuracy
    assert accuracy(adjusted, test_targets) > accuracy(test_logits, test_targets)


def test_worst_objective_never_lowers_the_validation_minimum():
    for seed in range(3):
        logits, targets = synthetic_logits(800, 6, seed=seed, margin=1.0, under_predicted=None)
        offsets = fit_logit_offsets(logits, targets, "worst")
        assert tpr(apply_logit_offsets(logits, offsets), targets).min() >= tpr(logits, targets).min()


def logits_with_a_hard_class(num_samples: int = 2000, num_classes: int = 8, hard: int = 3):
    """Unbiased logits where class ``hard`` is intrinsically hard (its true logit leads by 0.5, not 2):
    lifting its recall must cost the other classes, so an accuracy budget binds."""
    generator = torch.Generator().manual_seed(5)
    targets = torch.randint(num_classes, (num_samples,), generator=generator)
    margins = torch.full((num_classes,), 2.0)
    margins[hard] = 0.5
    logits = torch.randn(num_samples, num_classes, generator=generator)
    return logits + F.one_hot(targets, num_classes).float() * margins[targets][:, None], targets


@pytest.mark.parametrize("max_accuracy_drop", [0.0, 0.01, 0.05])
def test_budget_objective_respects_the_accuracy_budget_on_validation(max_accuracy_drop):
    logits, targets = logits_with_a_hard_class()
    offsets = fit_logit_offsets(logits, targets, "budget", max_accuracy_drop=max_accuracy_drop)
    adjusted = apply_logit_offsets(logits, offsets)
    assert accuracy(adjusted, targets) >= accuracy(logits, targets) - max_accuracy_drop - 1e-12
    # the budget binds: the search spends (nearly) all of it
    assert accuracy(adjusted, targets) < accuracy(logits, targets) - max_accuracy_drop + 0.005


def test_a_looser_budget_buys_a_better_worst_class():
    logits, targets = logits_with_a_hard_class()
    worst, accuracies = [], []
    for objective, drop in [("budget", 0.0), ("budget", 0.01), ("budget", 0.05), ("worst", 0.0)]:
        adjusted = apply_logit_offsets(logits, fit_logit_offsets(logits, targets, objective, drop))
        worst.append(tpr(adjusted, targets).min().item())
        accuracies.append(accuracy(adjusted, targets))
    assert worst[0] > tpr(logits, targets).min() + 0.1      # even a zero budget helps
    assert worst[0] < worst[1] < worst[2] <= worst[3]
    assert accuracies[0] >= accuracy(logits, targets)
    assert accuracies[3] < accuracy(logits, targets) - 0.05  # the unconstrained fit pays for it


def test_zero_budget_keeps_accuracy_and_still_helps_a_biased_class():
    logits, targets = synthetic_logits(2000, 10, seed=6)
    offsets = fit_logit_offsets(logits, targets, "budget", max_accuracy_drop=0.0)
    adjusted = apply_logit_offsets(logits, offsets)
    assert accuracy(adjusted, targets) >= accuracy(logits, targets)
    assert tpr(adjusted, targets)[3] > tpr(logits, targets)[3] + 0.1


def test_equalize_objective_shrinks_the_spread_of_tprs():
    logits, targets = synthetic_logits(2000, 10, seed=7)
    offsets = fit_logit_offsets(logits, targets, "equalize", max_accuracy_drop=0.02)
    adjusted = apply_logit_offsets(logits, offsets)
    assert tpr(adjusted, targets).std() < 0.5 * tpr(logits, targets).std()
    assert accuracy(adjusted, targets) >= accuracy(logits, targets) - 0.02 - 1e-12


def test_unbiased_well_separated_logits_need_no_offsets():
    logits, targets = synthetic_logits(500, 4, seed=8, margin=10.0, under_predicted=None)
    assert tpr(logits, targets).min() == 1.0
    assert torch.equal(fit_logit_offsets(logits, targets, "worst"), torch.zeros(4))


# --------------------------------------------------------------------------
# Form of the result
# --------------------------------------------------------------------------

@pytest.mark.parametrize("objective", OFFSET_OBJECTIVES)
def test_offsets_are_deterministic_float32_with_mean_zero(objective):
    logits, targets = synthetic_logits(1000, 5, seed=9)
    first = fit_logit_offsets(logits, targets, objective)
    assert first.shape == (5,) and first.dtype == torch.float32 and first.device.type == "cpu"
    assert abs(first.double().mean().item()) < 1e-6
    assert torch.equal(first, fit_logit_offsets(logits.clone(), targets.clone(), objective))


def test_a_class_missing_from_validation_is_ignored_by_the_objective():
    logits, targets = synthetic_logits(1000, 5, seed=10)
    keep = targets != 4
    offsets = fit_logit_offsets(logits[keep], targets[keep], "worst")
    assert torch.isfinite(offsets).all()
    before = tpr(logits[keep], targets[keep])
    after = tpr(apply_logit_offsets(logits[keep], offsets), targets[keep])
    assert after[4].isnan() and after[:4].min() > before[:4].min()


def test_apply_logit_offsets_adds_per_class_offsets():
    logits = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.5]], dtype=torch.float64)
    adjusted = apply_logit_offsets(logits, torch.tensor([0.0, -2.0, 1.0]))
    assert adjusted.dtype == torch.float64
    assert adjusted.tolist() == [[1.0, 0.0, 1.0], [3.0, -2.0, 1.5]]
    assert adjusted.argmax(dim=1).tolist() == [0, 0]


@pytest.mark.parametrize("num_samples, num_classes, limit_s", [(5000, 10, 1.0), (2000, 42, 3.0)])
def test_fit_is_fast_enough(num_samples, num_classes, limit_s):
    logits, targets = synthetic_logits(num_samples, num_classes, seed=11)
    start = time.perf_counter()
    fit_logit_offsets(logits, targets, "budget")
    assert time.perf_counter() - start < limit_s


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_logits_give_cpu_offsets_that_apply_on_cuda():
    logits, targets = synthetic_logits(1000, 5, seed=12)
    offsets = fit_logit_offsets(logits.cuda(), targets.cuda(), "worst")
    assert offsets.device.type == "cpu" and torch.equal(offsets, fit_logit_offsets(logits, targets, "worst"))
    assert apply_logit_offsets(logits.cuda(), offsets).is_cuda


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

GOOD_LOGITS, GOOD_TARGETS = synthetic_logits(20, 3, seed=13, under_predicted=None)


@pytest.mark.parametrize(
    "logits, targets, kwargs, message",
    [
        (GOOD_LOGITS[:, 0], GOOD_TARGETS, {}, r"val_logits must be a tensor of shape \[N, C\]"),
        (GOOD_LOGITS.numpy(), GOOD_TARGETS, {}, "val_logits must be a tensor"),
        (GOOD_LOGITS[:, :1], GOOD_TARGETS, {}, "two classes"),
        (GOOD_LOGITS[:0], GOOD_TARGETS[:0], {}, "at least one sample"),
        (GOOD_LOGITS.long(), GOOD_TARGETS, {}, "floating point"),
        (torch.where(GOOD_LOGITS > 2, float("nan"), GOOD_LOGITS), GOOD_TARGETS, {}, "NaN or infinite"),
        (torch.where(GOOD_LOGITS > 2, float("inf"), GOOD_LOGITS), GOOD_TARGETS, {}, "NaN or infinite"),
        (GOOD_LOGITS, GOOD_TARGETS[:-1], {}, r"shape \[N\] = \[20\]"),
        (GOOD_LOGITS, GOOD_TARGETS.float(), {}, "integer class indices"),
        (GOOD_LOGITS, torch.full((20,), 3), {}, r"\[0, 2\]"),
        (GOOD_LOGITS, torch.full((20,), -1), {}, r"\[0, 2\]"),
        (GOOD_LOGITS, GOOD_TARGETS, {"objective": "mean"}, "objective='mean'"),
        (GOOD_LOGITS, GOOD_TARGETS, {"max_accuracy_drop": -0.1}, "max_accuracy_drop=-0.1"),
        (GOOD_LOGITS, GOOD_TARGETS, {"max_accuracy_drop": 1.5}, "max_accuracy_drop=1.5"),
        (GOOD_LOGITS, GOOD_TARGETS, {"max_accuracy_drop": float("nan")}, "max_accuracy_drop=nan"),
        (GOOD_LOGITS, GOOD_TARGETS, {"grid_steps": 0}, "grid_steps=0"),
        (GOOD_LOGITS, GOOD_TARGETS, {"refinements": 1.5}, "refinements=1.5"),
    ],
)
def test_fit_rejects_bad_input(logits, targets, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_logit_offsets(logits, targets, **kwargs)


@pytest.mark.parametrize(
    "logits, offsets, message",
    [
        (torch.zeros(4), torch.zeros(4), r"shape \[N, C\]"),
        (torch.zeros(2, 3), torch.zeros(4), r"shape \[C\] = \[3\]"),
        (torch.zeros(2, 3), torch.zeros(1, 3), r"shape \[C\] = \[3\]"),
        (torch.zeros(2, 3), torch.tensor([0.0, float("nan"), 0.0]), "finite"),
    ],
)
def test_apply_rejects_bad_input(logits, offsets, message):
    with pytest.raises(ValueError, match=message):
        apply_logit_offsets(logits, offsets)
