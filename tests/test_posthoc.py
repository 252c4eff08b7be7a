"""Tests for lbw_utils.methods.posthoc: per-class logit offsets fitted on validation logits."""

from __future__ import annotations

import json
import time

import pytest
import torch
import torch.nn.functional as F

from lbw_utils import records
from lbw_utils.methods import METHODS, check_method, kinds, method_label
from lbw_utils.methods.kinds import stratified_halves
from lbw_utils.metrics import per_class_tpr
from lbw_utils.methods.posthoc import (BUDGET_LADDER, OFFSET_OBJECTIVES, apply_logit_offsets, fit_logit_offsets,
                                       fit_on_validation)


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
    # the search at the stated budget (hold="none"); the held budget is tested below
    offsets = fit_logit_offsets(logits, targets, "budget", max_accuracy_drop=max_accuracy_drop, hold="none")
    adjusted = apply_logit_offsets(logits, offsets)
    assert accuracy(adjusted, targets) >= accuracy(logits, targets) - max_accuracy_drop - 1e-12
    # the budget binds: the search spends (nearly) all of it
    assert accuracy(adjusted, targets) < accuracy(logits, targets) - max_accuracy_drop + 0.005


def test_a_looser_budget_buys_a_better_worst_class():
    logits, targets = logits_with_a_hard_class()
    worst, accuracies = [], []
    for objective, drop in [("budget", 0.0), ("budget", 0.01), ("budget", 0.05), ("worst", 0.0)]:
        adjusted = apply_logit_offsets(logits, fit_logit_offsets(logits, targets, objective, drop, hold="none"))
        worst.append(tpr(adjusted, targets).min().item())
        accuracies.append(accuracy(adjusted, targets))
    assert worst[0] > tpr(logits, targets).min() + 0.1      # even a zero budget helps
    assert worst[0] < worst[1] < worst[2] <= worst[3]
    assert accuracies[0] >= accuracy(logits, targets)
    assert accuracies[3] < accuracy(logits, targets) - 0.05  # the unconstrained fit pays for it


def test_zero_budget_keeps_accuracy_and_still_helps_a_biased_class():
    logits, targets = synthetic_logits(2000, 10, seed=6)
    offsets = fit_logit_offsets(logits, targets, "budget", max_accuracy_drop=0.0, hold="none")
    adjusted = apply_logit_offsets(logits, offsets)
    assert accuracy(adjusted, targets) >= accuracy(logits, targets)
    assert tpr(adjusted, targets)[3] > tpr(logits, targets)[3] + 0.1


def test_equalize_objective_shrinks_the_spread_of_tprs():
    logits, targets = synthetic_logits(2000, 10, seed=7)
    offsets = fit_logit_offsets(logits, targets, "equalize", max_accuracy_drop=0.02, hold="none")
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
    fit_logit_offsets(logits, targets, "budget", hold="none")
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


# --------------------------------------------------------------------------
# The budget held on unseen data (hold="cross-fit")
# --------------------------------------------------------------------------

# Four classes, one hard: fitted at a 1.6-point budget on one half, the offsets lose more than that on the other
# half; the next rung (1.2 points) holds.
HELD_CASE = {"data": lambda: logits_with_a_hard_class(num_samples=2000, num_classes=4), "stated": 0.016}


def halves_of(targets: torch.Tensor, seed: int = 0):
    return stratified_halves(targets, seed)


def cross_fitted_accuracy_drop(logits, targets, halves, budget):
    """Unadjusted minus cross-fitted accuracy of offsets fitted at ``budget`` on each half, predicting the other."""
    predicted = logits.clone()
    for fit_on, predict_on in (halves, halves[::-1]):
        offsets = fit_logit_offsets(logits[fit_on], targets[fit_on], "budget", budget, hold="none")
        predicted[predict_on] = apply_logit_offsets(logits[predict_on], offsets)
    return accuracy(logits, targets) - accuracy(predicted, targets)


def test_a_budget_that_overshoots_on_the_held_out_half_is_held_by_a_smaller_internal_one():
    logits, targets = HELD_CASE["data"]()
    stated = HELD_CASE["stated"]
    halves = halves_of(targets)
    # the setting of the test: fitted at the stated budget, the offsets lose more than it on the other half
    assert cross_fitted_accuracy_drop(logits, targets, halves, stated) > stated
    fitted = fit_on_validation(logits, targets, halves, objective="budget", max_accuracy_drop=stated)
    details = fitted.details
    assert details["hold"] == "cross-fit" and details["stated_budget"] == stated
    ladder = details["budget_ladder"]
    assert [rung[0] for rung in ladder] == [share * stated for share in BUDGET_LADDER][:len(ladder)]
    for budget, drop, standard_error in ladder:  # each rung's drop is the cross-fitted one, its error > 0
        assert drop == pytest.approx(cross_fitted_accuracy_drop(logits, targets, halves, budget))
        assert standard_error > 0
    # a rung holds when its drop plus one standard error is within the stated budget; the ladder stops there
    assert all(drop + se > stated for _, drop, se in ladder[:-1])
    if details["adjusted"]:
        internal = details["internal_budget"]
        assert internal == ladder[-1][0] < stated and ladder[-1][1] + ladder[-1][2] <= stated + 1e-12
    else:  # no rung held (here even offsets fitted at no budget lose accuracy on the other half): no offsets
        assert details["internal_budget"] is None and len(ladder) == len(BUDGET_LADDER)
        assert ladder[-1][1] + ladder[-1][2] > stated and torch.equal(fitted.offsets, torch.zeros(4))
    # a budget wide enough for the overfitting holds at its first rung
    wide = fit_on_validation(logits, targets, halves, objective="budget", max_accuracy_drop=0.03).details
    assert wide["adjusted"] and wide["internal_budget"] == 0.03 and len(wide["budget_ladder"]) == 1


def test_where_no_rung_holds_the_offsets_stay_at_zero():
    logits, targets = logits_with_a_hard_class()
    fitted = fit_on_validation(logits, targets, halves_of(targets), objective="budget", max_accuracy_drop=0.0)
    details = fitted.details
    # a zero budget is one rung; fitted on one half it still costs accuracy on the other here
    assert len(details["budget_ladder"]) == 1 and details["budget_ladder"][0][1] > 0
    assert details["internal_budget"] is None and details["adjusted"] is False
    assert torch.equal(fitted.offsets, torch.zeros(logits.shape[1]))
    assert torch.equal(fitted.cross_fitted_logits, logits) and details["cross_fitted_drop"] == 0.0


def test_hold_none_is_the_fit_at_the_stated_budget_with_its_cross_fitted_scores():
    logits, targets = synthetic_logits(1200, 6, seed=21)
    halves = halves_of(targets, seed=3)
    fitted = fit_on_validation(logits, targets, halves, hold="none", objective="budget", max_accuracy_drop=0.02)
    assert torch.equal(fitted.offsets, fit_logit_offsets(logits, targets, "budget", 0.02, hold="none"))
    expected = logits.clone()
    for fit_on, predict_on in (halves, halves[::-1]):
        offsets = fit_logit_offsets(logits[fit_on], targets[fit_on], "budget", 0.02, hold="none")
        expected[predict_on] = apply_logit_offsets(logits[predict_on], offsets)
    assert torch.equal(fitted.cross_fitted_logits, expected)
    assert fitted.details["internal_budget"] == 0.02 and fitted.details["budget_ladder"] == []


def test_the_worst_objective_has_no_budget_to_hold():
    logits, targets = synthetic_logits(800, 5, seed=22)
    fitted = fit_on_validation(logits, targets, halves_of(targets), objective="worst")
    assert fitted.details["stated_budget"] is None and fitted.details["internal_budget"] is None
    assert fitted.details["adjusted"] and fitted.details["budget_ladder"] == []
    assert torch.equal(fitted.offsets, fit_logit_offsets(logits, targets, "worst"))


def test_an_absolute_floor_is_taken_as_given():
    logits, targets = logits_with_a_hard_class()
    floor = accuracy(logits, targets) - 0.01
    assert torch.equal(fit_logit_offsets(logits, targets, "budget", min_accuracy=floor),
                       fit_logit_offsets(logits, targets, "budget", min_accuracy=floor, hold="none"))


def test_the_held_fit_is_fast_enough():
    # notebook 09's size (2,000 validation images, 10 classes); at most 10 half-split fits and one whole
    logits, targets = logits_with_a_hard_class(num_samples=2000, num_classes=10)
    start = time.perf_counter()
    fit_on_validation(logits, targets, halves_of(targets), objective="budget", max_accuracy_drop=0.005)
    assert time.perf_counter() - start < 3.0


def test_the_entry_holds_by_default_and_labels_only_the_old_behaviour():
    budget = {"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.005}
    assert METHODS["posthoc"].defaults()["hold"] == "cross-fit"
    assert method_label(budget) == "baseline+posthoc-budget-drop0.005"  # the default leaves labels as they were
    assert method_label({**budget, "hold": "none"}) == "baseline+posthoc-budget-holdnone-drop0.005"
    with pytest.raises(ValueError, match=r"hold='always' is not allowed: expected one of \('cross-fit', 'none'\)"):
        check_method({**budget, "hold": "always"})


class _ValidationAndTest:
    """What the post-hoc kind reads of a dataset: its name and the labels of a split."""

    name = "toy"

    def __init__(self, val_targets, test_targets):
        self._labels = {"val": val_targets, "test": test_targets}

    def labels(self, split):
        return self._labels[split]


def test_the_kind_records_the_budget_stated_and_held(tmp_path):
    val_logits, val_targets = HELD_CASE["data"]()
    test_logits, test_targets = synthetic_logits(500, val_logits.shape[1], seed=30)
    path = records.artifact_path(tmp_path, "toy", "baseline", 0)
    path.parent.mkdir(parents=True)
    torch.save({"val_logits": val_logits, "test_logits": test_logits}, path)
    context = kinds.RunContext(tmp_path, None, None, False, method_label)
    method = {"name": "posthoc", "objective": "budget", "max_accuracy_drop": HELD_CASE["stated"]}
    outcome = kinds.POSTHOC.outcome(METHODS["posthoc"], method, _ValidationAndTest(val_targets, test_targets), 0,
                                    context)
    held = fit_on_validation(val_logits, val_targets, stratified_halves(val_targets, 0), objective="budget",
                             max_accuracy_drop=HELD_CASE["stated"])
    record = outcome["loss_record"]
    assert record["adjusts"] == "baseline" and record["offsets"] == held.offsets.tolist()
    assert {key: record[key] for key in held.details} == held.details
    assert record["stated_budget"] == HELD_CASE["stated"]
    assert record["internal_budget"] is None or record["internal_budget"] < HELD_CASE["stated"]
    assert torch.equal(outcome["val_logits"], held.cross_fitted_logits)
    assert torch.equal(outcome["test_logits"], apply_logit_offsets(test_logits, held.offsets))
    json.dumps(record)  # the record is written as JSON


@pytest.mark.parametrize("halves, message", [
    ((torch.arange(10),), "two 1-d index tensors"),
    ((torch.arange(10), torch.arange(10, 20)[None]), "two 1-d index tensors"),
    ((torch.arange(0), torch.arange(20)), "each half must hold at least one sample"),
    ((torch.arange(10), torch.arange(10, 21)), r"expected indices in \[0, 19\]"),
    ((torch.arange(11), torch.arange(10, 20)), "disjoint"),
])
def test_fit_on_validation_rejects_bad_halves(halves, message):
    with pytest.raises(ValueError, match=message):
        fit_on_validation(GOOD_LOGITS, GOOD_TARGETS, halves, objective="budget")


def test_an_unknown_hold_is_refused():
    with pytest.raises(ValueError, match=r"hold='sometimes' is not allowed"):
        fit_logit_offsets(GOOD_LOGITS, GOOD_TARGETS, "budget", hold="sometimes")
    with pytest.raises(ValueError, match=r"hold='sometimes' is not allowed"):
        fit_on_validation(GOOD_LOGITS, GOOD_TARGETS, halves_of(GOOD_TARGETS), hold="sometimes")
