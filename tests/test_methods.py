"""Tests for lbw_utils.methods: static weights, the weighted losses, and every loss method of the registry
(iterated, so that a new method file is tested without editing this one)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lbw_utils.methods.kinds import Teacher
from lbw_utils.methods import (
    LOSS_METHODS,
    METHODS,
    DynamicMarginLoss,
    LogitAdjustedLoss,
    MinRecallLoss,
    MAX_TRAJECTORY_ROWS,
    MIN_BASE,
    CDBLoss,
    ClassDROLoss,
    CrossEntropy,
    EMAWeightedCrossEntropy,
    FocalLoss,
    WeightedCrossEntropy,
    cdb_dynamic_tau,
    make_loss,
    static_weights,
)

@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """These tests run thousands of tiny tensor ops; with several intra-op threads on a
    busy 2-core machine the thread hand-offs made them ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Seed 000's true-positive rates (car, dog, cat) and the weights they give.
SEED_TPR = [0.9560878243512974, 0.7365384615384616, 0.7807933194154488]
SEED_WEIGHTS_GAMMA_2 = [0.743631046434835, 1.2530321887900169, 1.1150155156144919]  # printed in the seed
SEED_WEIGHTS_GAMMA_4 = [0.5529871332217677, 1.5700896661439006, 1.2432596000610514]


def random_batch(batch_size: int, num_classes: int, generator: torch.Generator,
                 classes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and targets; ``classes`` restricts the targets to those classes."""
    logits = torch.randn(batch_size, num_classes, generator=generator) * 2
    pool = torch.tensor(classes if classes is not None else list(range(num_classes)))
    targets = pool[torch.randint(len(pool), (batch_size,), generator=generator)]
    return logits, targets


# --------------------------------------------------------------------------
# static_weights
# --------------------------------------------------------------------------

@pytest.mark.parametrize("gamma, expected", [(2, SEED_WEIGHTS_GAMMA_2), (4, SEED_WEIGHTS_GAMMA_4)])
def test_static_weights_reproduce_seed_000_vector(gamma, expected):
    weights = static_weights(SEED_TPR, "mean-ratio", gamma=gamma)
    assert weights.dtype == torch.float32 and weights.shape == (3,)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=0, atol=1e-6)


def test_mean_ratio_weights_are_inverse_tpr_weights_up_to_a_constant():
    s = np.array(SEED_TPR)
    mean_ratio = static_weights(s, "mean-ratio", gamma=3).double().numpy()
    inverse = static_weights(s, "inverse", gamma=3).double().numpy()
    np.testing.assert_allclose(mean_ratio, (s.mean() / s) ** 3, rtol=1e-6)
    np.testing.assert_allclose(mean_ratio / inverse, np.full(3, s.mean() ** 3), rtol=1e-6)


def test_static_weights_accept_list_array_and_tensor_alike():
    as_list = static_weights(SEED_TPR, gamma=2)
    assert torch.equal(as_list, static_weights(np.array(SEED_TPR), gamma=2))
    assert torch.equal(as_list, static_weights(torch.tensor(SEED_TPR, dtype=torch.float64), gamma=2))


def test_cdb_and_fnr_schemes_and_their_floor():
    s = [0.5, 0.9, 1.0]
    np.testing.assert_allclose(static_weights(s, "cdb", gamma=2).numpy(), [0.25, 0.01, MIN_BASE ** 2],
                               rtol=1e-6)
    # fnr ignores gamma
    for gamma in (0.5, 4.0):
        np.testing.assert_allclose(static_weights(s, "fnr", gamma=gamma).numpy(), [0.5, 0.1, MIN_BASE],
                                   rtol=1e-6)
    # A TPR of 0 is fine for the difficulty schemes: weight (1 - 0) ** gamma = 1.
    assert static_weights([0.0, 0.5], "cdb", gamma=3).tolist() == [1.0, 0.125]


def test_gamma_zero_gives_equal_weights_and_normalize_gives_mean_one():
    assert static_weights(SEED_TPR, "mean-ratio", gamma=0).tolist() == [1.0, 1.0, 1.0]
    for scheme in ("mean-ratio", "inverse", "cdb", "fnr"):
        weights = static_weights(SEED_TPR, scheme, gamma=4, normalize=True)
        assert weights.double().mean().item() == pytest.approx(1.0, abs=1e-6)
    # normalize only rescales: ratios are kept
    raw = static_weights(SEED_TPR, "inverse", gamma=2)
    normed = static_weights(SEED_TPR, "inverse", gamma=2, normalize=True)
    np.testing.assert_allclose((normed / raw).numpy(), np.full(3, (normed / raw)[0].item()), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tpr": SEED_TPR, "scheme": "sqrt"}, "scheme='sqrt'"),
        ({"tpr": [[0.5, 0.6]]}, "1-D"),
        ({"tpr": []}, "non-empty"),
        ({"tpr": 0.5}, "1-D"),
        ({"tpr": ["a", "b"]}, "tpr="),
        ({"tpr": SEED_TPR, "num_classes": 4}, "num_classes=4"),
        ({"tpr": [0.5, float("nan")]}, "class index 1"),
        ({"tpr": [0.5, float("inf")]}, "class index 1"),
        ({"tpr": [0.5, 1.2]}, "class index 1"),
        ({"tpr": [-0.1, 0.5]}, "class index 0"),
        ({"tpr": [0.5, 0.0], "scheme": "mean-ratio"}, "class index 1 has TPR 0"),
        ({"tpr": [0.0, 0.5], "scheme": "inverse"}, "class index 0 has TPR 0"),
        ({"tpr": SEED_TPR, "gamma": -1}, "gamma=-1"),
        ({"tpr": SEED_TPR, "gamma": float("nan")}, "gamma=nan"),
        ({"tpr": SEED_TPR, "gamma": float("inf")}, "gamma=inf"),
        ({"tpr": SEED_TPR, "gamma": "4"}, "gamma='4'"),
        ({"tpr": [1e-300, 0.9], "scheme": "inverse", "gamma": 4}, "class index 0"),
        ({"tpr": [1e-200, 0.9], "scheme": "mean-ratio", "gamma": 4}, "class index"),
    ],
)
def test_static_weights_reject_bad_input_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        static_weights(**kwargs)


def test_static_weights_overflow_error_names_the_class():
    with pytest.raises(ValueError, match="class index 2") as error:
        static_weights([0.9, 0.8, 1e-120], "inverse", gamma=3)
    assert "lower gamma" in str(error.value)


# --------------------------------------------------------------------------
# CrossEntropy and WeightedCrossEntropy
# --------------------------------------------------------------------------

def test_cross_entropy_is_pytorch_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits, targets = random_batch(32, 5, generator)
    loss = CrossEntropy(label_smoothing=0.1)(logits, targets)
    assert torch.allclose(loss, F.cross_entropy(logits, targets, label_smoothing=0.1))
    assert CrossEntropy().record() == {"weights": None}


def test_weighted_cross_entropy_is_the_weighted_mean_and_blind_to_scale():
    generator = torch.Generator().manual_seed(1)
    logits, targets = random_batch(64, 3, generator)
    weights = torch.tensor([0.5, 2.0, 1.0])
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    expected = (per_sample * weights[targets]).sum() / weights[targets].sum()
    loss = WeightedCrossEntropy(weights)(logits, targets)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(WeightedCrossEntropy(weights * 10)(logits, targets), loss, atol=1e-6)
    assert WeightedCrossEntropy([0.5, 2.0, 1.0]).record() == {"weights": [0.5, 2.0, 1.0]}


def test_weighted_cross_entropy_checks_its_weights():
    loss = WeightedCrossEntropy([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="4 classes"):
        loss(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class index 1"):
        WeightedCrossEntropy([1.0, 0.0])
    with pytest.raises(ValueError, match="class index 0"):
        WeightedCrossEntropy([-1.0, 1.0])
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        WeightedCrossEntropy([1.0, 1.0], label_smoothing=1.5)


def test_losses_check_batch_shapes():
    loss = CrossEntropy()
    with pytest.raises(ValueError, match=r"shape \[B, C\]"):
        loss(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        loss(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        loss(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int32))


# --------------------------------------------------------------------------
# EMAWeightedCrossEntropy (the blog post)
# --------------------------------------------------------------------------

class Seed003Reference:
    """Seed 003's algorithm, step by step: unique classes, their counts, their miss counts."""

    def __init__(self, num_classes: int, alpha: float) -> None:
        self.alpha = alpha
        self.importance = torch.ones(num_classes)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        missed = targets != logits.argmax(dim=1)
        classes, counts = targets.unique(return_counts=True)
        missed_classes, missed_counts = targets[missed].unique(return_counts=True)
        false_negatives = torch.zeros(len(classes), dtype=torch.long)
        for position, cls in enumerate(classes.tolist()):
            match = (missed_classes == cls).nonzero()
            if len(match):
                false_negatives[position] = missed_counts[match[0, 0]]
        rate = false_negatives / counts
        self.importance[classes] = self.alpha * rate + (1 - self.alpha) * self.importance[classes]
        per_sample = F.cross_entropy(logits, targets, reduction="none")
        return (per_sample * self.importance[targets]).mean()


def test_ema_loss_matches_the_seed_algorithm_batch_by_batch():
    num_classes, alpha = 7, 0.05
    generator = torch.Generator().manual_seed(3)
    loss, reference = EMAWeightedCrossEntropy(num_classes, alpha=alpha), Seed003Reference(num_classes, alpha)
    for step in range(200):
        if step == 50:
            logits, targets = random_batch(16, num_classes, generator, classes=[4])  # a single class
        elif step % 3 == 0:
            logits, targets = random_batch(24, num_classes, generator, classes=[0, 2, 5])  # classes missing
        else:
            logits, targets = random_batch(int(torch.randint(1, 40, (1,), generator=generator)),
                                           num_classes, generator)
        ours, theirs = loss(logits, targets), reference(logits, targets)
        assert torch.equal(loss.importance, reference.importance), f"importance differs at batch {step}"
        assert torch.allclose(ours, theirs, rtol=1e-7, atol=0), f"loss differs at batch {step}"
    assert not torch.equal(loss.importance, torch.ones(num_classes))  # it did move


def test_ema_absent_classes_keep_their_importance():
    loss = EMAWeightedCrossEntropy(4, alpha=0.5)
    logits = torch.tensor([[5.0, 0, 0, 0], [5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    loss(logits, torch.tensor([0, 1, 1]))  # class 0: FNR 0; class 1: FNR 1/2
    assert loss.importance.tolist() == [0.5, 0.75, 1.0, 1.0]


def test_ema_normalized_weights_have_mean_one_and_training_stays_finite():
    generator = torch.Generator().manual_seed(4)
    loss = EMAWeightedCrossEntropy(5, alpha=0.2, normalize=True)
    for _ in range(30):
        logits, targets = random_batch(20, 5, generator, classes=[1, 3])
        logits.requires_grad_(True)
        value = loss(logits, targets)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
        assert loss.class_weights().mean().item() == pytest.approx(1.0, abs=1e-6)
    assert not loss.importance.requires_grad
    # unnormalised importance has fallen for the trained classes; the weights are rescaled
    assert loss.importance.mean().item() < 1.0


def test_ema_single_class_batch_is_finite_in_both_modes():
    for normalize in (False, True):
        loss = EMAWeightedCrossEntropy(3, alpha=1.0, normalize=normalize)
        logits = torch.tensor([[4.0, 0.0, 0.0]] * 6, requires_grad=True)
        value = loss(logits, torch.zeros(6, dtype=torch.long))  # all right: importance_0 -> 0
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
        assert loss.importance.tolist() == [0.0, 1.0, 1.0]


def test_ema_eval_mode_does_not_update():
    generator = torch.Generator().manual_seed(5)
    loss = EMAWeightedCrossEntropy(4, alpha=0.5).eval()
    logits, targets = random_batch(32, 4, generator)
    value = loss(logits, targets)
    assert loss.importance.tolist() == [1.0] * 4 and len(loss.trajectory) == 0
    assert torch.allclose(value, F.cross_entropy(logits, targets))


def test_ema_record_subsamples_the_trajectory_evenly():
    generator = torch.Generator().manual_seed(6)
    loss = EMAWeightedCrossEntropy(3, alpha=0.1)
    updates = MAX_TRAJECTORY_ROWS * 2 + 7
    for _ in range(updates):
        loss(*random_batch(8, 3, generator))
    record = json.loads(json.dumps(loss.record()))
    assert len(record["trajectory"]) <= MAX_TRAJECTORY_ROWS
    assert record["trajectory_steps"][0] == 1 and record["trajectory_steps"][-1] == updates
    assert record["trajectory"][-1] == pytest.approx(record["weights"])
    assert all(len(row) == 3 for row in record["trajectory"])


@pytest.mark.parametrize("kwargs, message", [({"alpha": 0}, "alpha=0"), ({"alpha": 1.5}, "alpha=1.5"),
                                             ({"alpha": float("nan")}, "alpha=nan")])
def test_ema_rejects_bad_alpha(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EMAWeightedCrossEntropy(3, **kwargs)


def test_dynamic_losses_reject_too_few_classes():
    for cls in (EMAWeightedCrossEntropy, CDBLoss, ClassDROLoss):
        with pytest.raises(ValueError, match="num_classes=1"):
            cls(1)


# --------------------------------------------------------------------------
# FocalLoss
# --------------------------------------------------------------------------

@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_focal_loss_with_gamma_zero_is_cross_entropy(label_smoothing):
    generator = torch.Generator().manual_seed(7)
    logits, targets = random_batch(50, 6, generator)
    focal = FocalLoss(gamma=0.0, label_smoothing=label_smoothing)(logits, targets)
    assert torch.allclose(focal, F.cross_entropy(logits, targets, label_smoothing=label_smoothing), atol=1e-6)


def test_focal_loss_matches_its_formula_and_downweights_easy_samples():
    generator = torch.Generator().manual_seed(8)
    logits, targets = random_batch(50, 4, generator)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5])
    p = torch.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    expected = (-weights[targets] * (1 - p) ** 2 * p.log()).mean()
    assert torch.allclose(FocalLoss(gamma=2.0, weights=weights)(logits, targets), expected, atol=1e-6)
    easy = torch.tensor([[6.0, 0.0], [0.0, 6.0]])
    hard = torch.tensor([[0.2, 0.0], [0.0, 0.2]])
    ratio = lambda l: (FocalLoss(2.0)(l, torch.tensor([0, 1])) / F.cross_entropy(l, torch.tensor([0, 1])))
    assert ratio(easy) < 1e-4 < ratio(hard) < 1


def test_focal_loss_gradient_stays_finite_for_confident_predictions():
    logits = torch.tensor([[60.0, 0.0, 0.0], [0.0, 0.0, 60.0]], requires_grad=True)
    FocalLoss(gamma=0.5)(logits, torch.tensor([0, 2])).backward()
    assert torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------
# CDBLoss
# --------------------------------------------------------------------------

def validation_logits_with_accuracies(hits_per_class: list[int], per_class: int = 10):
    """Validation logits where class c is predicted right for ``hits_per_class[c]`` of its samples."""
    num_classes = len(hits_per_class)
    targets = torch.arange(num_classes).repeat_interleave(per_class)
    predictions = targets.clone()
    for c, hits in enumerate(hits_per_class):
        wrong = slice(c * per_class + hits, (c + 1) * per_class)
        predictions[wrong] = (c + 1) % num_classes
    return F.one_hot(predictions, num_classes).float() * 5, targets


def test_cdb_weights_start_at_one_and_follow_validation_accuracy():
    loss = CDBLoss(3, tau=2.0, floor=MIN_BASE)
    assert loss.weights.tolist() == [1.0, 1.0, 1.0]
    val_logits, val_targets = validation_logits_with_accuracies([5, 8, 10])  # acc 0.5, 0.8, 1.0
    loss.on_epoch_end(0, val_logits, val_targets)
    raw = np.array([0.5 ** 2, 0.2 ** 2, MIN_BASE ** 2])
    np.testing.assert_allclose(loss.weights.numpy(), raw / raw.mean(), rtol=1e-5)
    assert loss.weights.double().mean().item() == pytest.approx(1.0, abs=1e-6)
    # the same numbers as static_weights' cdb scheme, normalised
    np.testing.assert_allclose(loss.weights.numpy(),
                               static_weights([0.5, 0.8, 1.0], "cdb", gamma=2, normalize=True).numpy(),
                               rtol=1e-5)


def test_cdb_without_floor_gives_a_perfect_class_weight_zero_as_the_official_code():
    # Both official files: weights = d ** tau, d = 1 - accuracy, scaled to sum K; d = 0 -> weight 0.
    loss = CDBLoss(3, tau=2.0)
    loss.on_epoch_end(0, *validation_logits_with_accuracies([5, 8, 10]))
    d = np.array([0.5, 0.2, 0.0])
    np.testing.assert_allclose(loss.weights.numpy(), d ** 2 / (d ** 2).sum() * 3, rtol=1e-6)
    assert loss.weights[2].item() == 0.0
    every_class_perfect = CDBLoss(3, tau=1.0)  # the official code would divide by zero here
    every_class_perfect.on_epoch_end(0, *validation_logits_with_accuracies([10, 10, 10]))
    assert every_class_perfect.weights.tolist() == [1.0, 1.0, 1.0]


def test_cdb_cifar_form_by_hand():
    # CIFAR-LT/cifar_train.py + CIFAR-LT/losses/cdb_loss.py: tau = sigmoid(bias),
    # bias = (1 - min d) / (1 - max d + 0.01); CrossEntropyLoss(weight=w, reduction='none'), then mean.
    loss = CDBLoss(3)  # tau="dynamic", variant="cifar"
    loss.on_epoch_end(0, *validation_logits_with_accuracies([4, 9, 7]))  # acc 0.4, 0.9, 0.7
    d = np.array([0.6, 0.1, 0.3])
    tau = 1 / (1 + math.exp(-((1 - d.min()) / (1 - d.max() + 0.01))))
    weights = d ** tau / (d ** tau).sum() * 3
    np.testing.assert_allclose(loss.weights.numpy(), weights, rtol=1e-6)
    assert loss.record()["tau"] == [pytest.approx(tau, rel=1e-6)]
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0], [0.0, 3.0, 1.0]])
    targets = torch.tensor([0, 2, 2, 1])
    log_p = torch.log_softmax(logits.double(), dim=1)
    ce = -log_p[torch.arange(4), targets].numpy()
    expected = float(np.mean(weights[targets.numpy()] * ce))
    assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-5)


def test_cdb_imagenet_form_by_hand():
    # ImageNet-LT/loss/CDBSoftmaxLoss.py: tau = 2 sigmoid(bias - 1); nn.CrossEntropyLoss(weight=w):
    # PyTorch's weighted mean, sum w_y CE / sum w_y.
    loss = CDBLoss(3, variant="imagenet")
    loss.on_epoch_end(0, *validation_logits_with_accuracies([4, 9, 7]))
    d = np.array([0.6, 0.1, 0.3])
    tau = 2 / (1 + math.exp(-((1 - d.min()) / (1 - d.max() + 0.01) - 1)))
    weights = d ** tau / (d ** tau).sum() * 3
    np.testing.assert_allclose(loss.weights.numpy(), weights, rtol=1e-6)
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0], [0.0, 3.0, 1.0]])
    targets = torch.tensor([0, 2, 2, 1])
    expected = F.cross_entropy(logits, targets, weight=torch.tensor(weights, dtype=torch.float32))
    assert loss(logits, targets).item() == pytest.approx(expected.item(), rel=1e-5)
    # a batch of a class at weight 0 only: 0, not 0/0
    zero = CDBLoss(2, tau=1.0, variant="imagenet")
    zero.on_epoch_end(0, *validation_logits_with_accuracies([10, 5]))
    assert zero(torch.randn(3, 2), torch.tensor([0, 0, 0])).item() == 0.0


def test_cdb_loss_is_weighted_cross_entropy_with_its_current_weights():
    generator = torch.Generator().manual_seed(9)
    loss = CDBLoss(3, tau=1.0, label_smoothing=0.05, variant="imagenet")
    loss.on_epoch_end(0, *validation_logits_with_accuracies([4, 9, 7]))
    logits, targets = random_batch(40, 3, generator)
    per_sample = F.cross_entropy(logits, targets, reduction="none", label_smoothing=0.05)
    sample_weights = loss.weights[targets]
    expected = (per_sample * sample_weights).sum() / sample_weights.sum()
    assert torch.allclose(loss(logits, targets), expected)


def test_cdb_dynamic_tau_follows_the_official_rule():
    accuracy = torch.tensor([0.5, 0.8, 0.9])
    expected = 2 / (1 + math.exp(-(0.9 / (0.5 + 0.01) - 1)))
    assert cdb_dynamic_tau(accuracy).item() == pytest.approx(expected, rel=1e-6)
    assert cdb_dynamic_tau(torch.tensor([0.99, 0.99])).item() == pytest.approx(1.0, abs=0.02)
    loss = CDBLoss(3, tau="dynamic", variant="imagenet")
    loss.on_epoch_end(0, *validation_logits_with_accuracies([5, 8, 9]))
    assert loss.record()["tau"] == [pytest.approx(expected, rel=1e-6)]
    cifar = 1 / (1 + math.exp(-(0.9 / (0.5 + 0.01))))
    assert cdb_dynamic_tau(accuracy, "cifar").item() == pytest.approx(cifar, rel=1e-6)
    with pytest.raises(ValueError, match="variant="):
        cdb_dynamic_tau(accuracy, "cifar10")


def test_cdb_records_one_row_per_epoch_as_json():
    loss = CDBLoss(3, tau=1.0)
    for epoch, hits in enumerate([[5, 8, 10], [6, 8, 9], [7, 7, 7]]):
        loss.on_epoch_end(epoch, *validation_logits_with_accuracies(hits))
    record = json.loads(json.dumps(loss.record()))
    assert record["trajectory_epochs"] == [0, 1, 2]
    assert len(record["trajectory"]) == 3 and record["trajectory"][-1] == pytest.approx([1.0] * 3)
    assert record["weights"] == record["trajectory"][-1] and record["tau"] == [1.0] * 3


def test_cdb_rejects_bad_tau_and_bad_validation_targets():
    for tau in (-1.0, "auto", float("nan")):
        with pytest.raises(ValueError, match="tau="):
            CDBLoss(3, tau=tau)
    with pytest.raises(ValueError, match=r"val_targets must lie in \[0, 2\]"):
        CDBLoss(3).on_epoch_end(0, torch.zeros(2, 3), torch.tensor([0, 3]))


# --------------------------------------------------------------------------
# ClassDROLoss
# --------------------------------------------------------------------------

def test_dro_with_uniform_q_is_plain_cross_entropy():
    generator = torch.Generator().manual_seed(10)
    logits, targets = random_batch(30, 4, generator, classes=[0, 1, 3])
    assert torch.allclose(ClassDROLoss(4).eval()(logits, targets), F.cross_entropy(logits, targets))
    no_steps = ClassDROLoss(4, eta=0.0)
    for _ in range(5):
        logits, targets = random_batch(30, 4, generator)
        assert torch.allclose(no_steps(logits, targets), F.cross_entropy(logits, targets), atol=1e-6)


def test_dro_updates_q_by_exponentiated_class_losses():
    generator = torch.Generator().manual_seed(11)
    loss = ClassDROLoss(4, eta=0.5)
    logits, targets = random_batch(30, 4, generator, classes=[0, 1, 2])  # class 3 absent
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    class_means = torch.stack([per_sample[targets == c].mean() for c in range(3)] + [torch.tensor(0.0)])
    q = 0.25 * torch.exp(0.5 * class_means)
    q = q / q.sum()
    value = loss(logits, targets)
    assert torch.allclose(loss.q, q, atol=1e-6) and loss.q.sum().item() == pytest.approx(1.0)
    assert torch.allclose(value, (per_sample * 4 * q[targets]).mean(), atol=1e-6)


def test_dro_shifts_weight_to_the_class_with_the_highest_loss():
    generator = torch.Generator().manual_seed(12)
    loss = ClassDROLoss(3, eta=0.1)
    for _ in range(50):
        logits, targets = random_batch(30, 3, generator)
        logits[targets == 2] -= 3 * F.one_hot(targets[targets == 2], 3).float()  # class 2 is hard
        loss(logits, targets)
    weights = loss.class_weights()
    assert weights[2] > 1.5 and weights.mean().item() == pytest.approx(1.0, abs=1e-5)
    record = json.loads(json.dumps(loss.record()))
    assert len(record["trajectory"]) == 50 and record["trajectory_steps"][-1] == 50


def test_dro_rejects_a_negative_step_size():
    with pytest.raises(ValueError, match="eta=-0.1"):
        ClassDROLoss(3, eta=-0.1)


# --------------------------------------------------------------------------
# Every loss: float32 under low precision, JSON records
# --------------------------------------------------------------------------

def every_loss(num_classes: int):
    return [CrossEntropy(), WeightedCrossEntropy(torch.ones(num_classes)),
            EMAWeightedCrossEntropy(num_classes), EMAWeightedCrossEntropy(num_classes, normalize=True),
            FocalLoss(), CDBLoss(num_classes), ClassDROLoss(num_classes)]


def test_every_loss_computes_in_float32_from_bfloat16_logits_and_records_json():
    generator = torch.Generator().manual_seed(13)
    logits, targets = random_batch(16, 4, generator)
    logits = logits.bfloat16().requires_grad_(True)
    for loss in every_loss(4):
        value = loss(logits, targets)
        assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value)
        value.backward()
        record = json.loads(json.dumps(loss.record()))
        assert "weights" in record


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_loss_runs_on_cuda_without_host_syncs():
    generator = torch.Generator().manual_seed(14)
    batches = [tuple(t.cuda() for t in random_batch(64, 5, generator)) for _ in range(3)]
    for loss in every_loss(5):
        loss = loss.cuda()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for logits, targets in batches:
                logits = logits.clone().requires_grad_(True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    value = loss(logits @ torch.eye(5, device="cuda"), targets)
                value.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert torch.isfinite(value).item()
    cdb = CDBLoss(5).cuda()
    cdb.on_epoch_end(0, batches[0][0], batches[0][1])
    assert cdb.weights.is_cuda and cdb.record()["trajectory_epochs"] == [0]


# --------------------------------------------------------------------------
# make_loss
# --------------------------------------------------------------------------

# What a loss method may read of the same seed's baseline (MethodSpec.reads), for a 5-class problem: its
# validation TPRs or its validation confusion matrix (rows: true class).
FIVE_CLASSES = 5
class _PixelTeacher(torch.nn.Module):
    """A fixed teacher for the contract tests: the first five input values of each example as its logits."""

    def forward(self, inputs, *rest):
        return inputs.flatten(1)[:, :FIVE_CLASSES].float()


BASELINE_READS = {
    "tpr": [0.95, 0.6, 0.8, 0.7, 0.9],
    "confusion": [[19, 1, 0, 0, 0], [3, 12, 2, 3, 0], [0, 2, 16, 2, 0], [0, 4, 2, 14, 0], [0, 0, 0, 2, 18]],
    "teacher": Teacher(networks=[_PixelTeacher()], val_log_probs=torch.log_softmax(torch.randn(40, FIVE_CLASSES), 1),
                       val_targets=torch.arange(40) % FIVE_CLASSES, labels=["baseline"], train_seconds=1.0),
}


def test_every_trained_method_is_a_loss_method():
    assert LOSS_METHODS == tuple(name for name, spec in METHODS.items() if spec.kind.trains_a_loss)
    assert {"baseline", "static", "ema", "cdb", "minrecall", "margin"} <= set(LOSS_METHODS)


def build_with_defaults(name: str, **kwargs) -> torch.nn.Module:
    return make_loss({"name": name}, FIVE_CLASSES, tpr=BASELINE_READS[METHODS[name].reads], **kwargs)


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_every_loss_method_builds_with_its_defaults_and_keeps_the_loss_contract(name):
    loss = build_with_defaults(name, label_smoothing=0.1)
    assert isinstance(loss, torch.nn.Module)
    logits, targets = random_batch(32, FIVE_CLASSES, torch.Generator().manual_seed(3))
    logits = logits.bfloat16().requires_grad_(True)
    value = loss(logits, targets)  # the loss computes in float32, whatever the logits' precision
    assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(logits.grad.float()).all()
    val_logits, val_targets = random_batch(50, FIVE_CLASSES, torch.Generator().manual_seed(4))
    for hook in ("on_epoch_end", "on_validation"):
        if hasattr(loss, hook):
            getattr(loss, hook)(0, val_logits, val_targets)
    if hasattr(loss, "record"):
        assert "weights" in json.loads(json.dumps(loss.record()))


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_every_loss_method_trains_with_its_defaults_on_tiny_data(name, tiny_data):
    from lbw_utils.models import make_model
    from lbw_utils.train import TrainConfig, fit

    data = tiny_data(num_classes=FIVE_CLASSES, per_class={"train": 12, "val": 6, "test": 4})
    loss = build_with_defaults(name)
    model = make_model("cnn", num_classes=FIVE_CLASSES, input_shape=(1, 8, 8), size="tiny")
    history = fit(model, data, loss, TrainConfig(epochs=1, batch_size=20, augment=False), progress=False)
    assert len(history.train_loss) == 1 and math.isfinite(history.train_loss[0])


class HookSpy(torch.nn.Module):
    """Cross-entropy with every hook of LossHooks, each call written down."""

    validation_every = 2

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.calls = []
        self.register_buffer("augment_classes", torch.tensor([True] + [False] * (num_classes - 1)))

    def forward(self, logits, targets):
        return F.cross_entropy(logits.float(), targets)

    def on_validation(self, step, val_logits, val_targets):
        self.calls.append(("on_validation", step, len(val_targets)))

    def on_epoch_end(self, epoch, val_logits, val_targets):
        self.calls.append(("on_epoch_end", epoch, len(val_targets)))

    def record(self):
        return {"weights": None}


def test_the_training_loop_calls_the_hooks_that_loss_hooks_describes(tiny_data):
    from lbw_utils.methods import LossHooks
    from lbw_utils.models import make_model
    from lbw_utils.train import LOSS_HOOKS, TrainConfig, fit, loss_hook

    described = {name for name in vars(LossHooks) if not name.startswith("_")} | set(LossHooks.__annotations__)
    assert described == set(LOSS_HOOKS) == {"validation_every", "augment_classes", "targeted_augmentation",
                                            "on_validation", "on_epoch_end", "see_inputs", "on_train_accuracy",
                                            "record"}
    with pytest.raises(ValueError, match="loss hook 'on_step' is not known: expected one of"):
        loss_hook(HookSpy(3), "on_step")
    data = tiny_data(num_classes=3, per_class={"train": 20, "val": 10, "test": 5})
    spy = HookSpy(3)
    model = make_model("cnn", num_classes=3, input_shape=(1, 8, 8), size="tiny")
    fit(model, data, spy, TrainConfig(epochs=2, batch_size=20, augment=False), progress=False)
    # 60 training images / batch 20 = 3 steps an epoch: steps 2, 4 and 6 validate on a slice, every epoch ends
    assert spy.calls == [("on_validation", 2, 30), ("on_epoch_end", 0, 30), ("on_validation", 4, 30),
                         ("on_validation", 6, 30), ("on_epoch_end", 1, 30)]
    plain = fit(make_model("cnn", num_classes=3, input_shape=(1, 8, 8), size="tiny"), data,
                torch.nn.CrossEntropyLoss(), TrainConfig(epochs=1, batch_size=20, augment=False), progress=False)
    assert math.isfinite(plain.train_loss[0])  # a loss with no hook at all trains too


def test_make_loss_passes_the_method_options_on():
    method = {"name": "static", "scheme": "mean-ratio", "gamma": 2, "normalize": False}
    static = make_loss(method, 3, tpr=SEED_TPR)
    np.testing.assert_allclose(static.weights.numpy(), SEED_WEIGHTS_GAMMA_2, atol=1e-6)
    ema = make_loss({"name": "ema", "alpha": 0.2, "normalize": True}, 3)
    assert ema.alpha == 0.2 and ema.normalize
    assert make_loss({"name": "focal", "gamma": 1}, 3).gamma == 1.0
    assert make_loss({"name": "cdb", "tau": "dynamic"}, 3).tau == "dynamic"
    assert make_loss({"name": "dro", "eta": 0.3}, 3).eta == 0.3


@pytest.mark.parametrize(
    "method, kwargs, message",
    [
        ({"name": "static", "gamma": 2}, {}, "needs tpr="),
        ({"name": "static"}, {"tpr": [0.5, 0.6]}, "num_classes=3"),
        ({"name": "mixup"}, {}, "'mixup' is unknown"),
        ({"name": "ema", "beta": 1}, {}, r"unknown key\(s\) \['beta'\]"),
        ({"name": "baseline", "gamma": 2}, {}, "unknown key"),
        ({"gamma": 2}, {}, "'name' key"),
        ("baseline", {}, "'name' key"),
    ],
)
def test_make_loss_rejects_bad_methods(method, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_loss(method, 3, **kwargs)


# --------------------------------------------------------------------------
# Worst-class recall (minrecall), difficulty margins, group DRO
# --------------------------------------------------------------------------

def test_minrecall_multipliers_follow_exponentiated_gradient_on_validation_recall():
    loss = MinRecallLoss(3, eta=2.0, form="weighted", every="epoch")
    assert loss.class_weights().tolist() == pytest.approx([1.0, 1.0, 1.0])
    loss.on_epoch_end(0, *validation_logits_with_accuracies([4, 9, 7]))  # recall 0.4, 0.9, 0.7
    raw = np.array([1 / 3] * 3) * np.exp(2.0 * (1 - np.array([0.4, 0.9, 0.7])))
    multipliers = raw / raw.sum()
    np.testing.assert_allclose(loss.multipliers.numpy(), multipliers, rtol=1e-6)
    np.testing.assert_allclose(loss.class_weights().numpy(), 3 * multipliers, rtol=1e-6)
    logits, targets = random_batch(16, 3, torch.Generator().manual_seed(1))
    expected = (F.cross_entropy(logits, targets, reduction="none") * loss.class_weights()[targets]).mean()
    assert torch.allclose(loss(logits, targets), expected)
    record = json.loads(json.dumps(loss.record()))
    assert record["trajectory_steps"] == [0] and record["lambda"] == pytest.approx(multipliers.tolist())


def test_minrecall_logit_adjusted_form_subtracts_log_costs_in_training():
    loss = MinRecallLoss(3, eta=1.0)  # form="logit-adjusted"
    loss.on_epoch_end(0, *validation_logits_with_accuracies([4, 9, 7]))
    logits, targets = random_batch(16, 3, torch.Generator().manual_seed(2))
    expected = F.cross_entropy(logits - loss.class_weights().log(), targets)
    assert torch.allclose(loss(logits, targets), expected)


def test_minrecall_every_k_steps_is_driven_by_the_training_loop(tiny_data):
    from lbw_utils.models import make_model
    from lbw_utils.train import TrainConfig, fit

    data = tiny_data(num_classes=3, per_class={"train": 40, "val": 20, "test": 10})
    loss = MinRecallLoss(3, eta=0.5, every=2)
    model = make_model("cnn", num_classes=3, input_shape=(1, 8, 8), size="tiny")
    fit(model, data, loss, TrainConfig(epochs=2, batch_size=20, augment=False), progress=False)
    # 120 training images / batch 20 = 6 steps an epoch, 12 in all: an update every 2 steps
    assert loss.record()["trajectory_steps"] == [2, 4, 6, 8, 10, 12]
    assert loss.multipliers.sum().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"eta": -1.0}, "eta="), ({"form": "hinge"}, "form="), ({"every": 0}, "every="), ({"every": "batch"}, "every="),
])
def test_minrecall_refuses_bad_parameters(options, message):
    with pytest.raises(ValueError, match=message):
        MinRecallLoss(3, **options)


def test_minrecall_refuses_nan_recall():
    loss = MinRecallLoss(2, every="epoch")
    with pytest.raises(ValueError, match="val_targets must lie in"):
        loss.on_epoch_end(0, torch.zeros(2, 2), torch.tensor([0, 5]))


def test_static_margin_uses_the_seed_formula_as_logit_adjustment_costs():
    loss = make_loss({"name": "margin", "source": "static", "gamma": 2}, 3, tpr=SEED_TPR)
    assert isinstance(loss, LogitAdjustedLoss)
    np.testing.assert_allclose(loss.costs.numpy(), SEED_WEIGHTS_GAMMA_2, rtol=1e-6)
    logits, targets = random_batch(8, 3, torch.Generator().manual_seed(3))
    expected = F.cross_entropy(logits - torch.tensor(SEED_WEIGHTS_GAMMA_2).float().log(), targets)
    assert torch.allclose(loss(logits, targets), expected)
    with pytest.raises(ValueError, match="needs tpr="):
        make_loss({"name": "margin"}, 3)
    with pytest.raises(ValueError, match="costs must be finite and > 0"):
        LogitAdjustedLoss([1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="logits have 3 classes"):
        LogitAdjustedLoss([1.0, 2.0])(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="source="):
        make_loss({"name": "margin", "source": "oracle"}, 3, tpr=SEED_TPR)


def test_dynamic_margin_follows_the_smoothed_batch_recall():
    loss = make_loss({"name": "margin", "source": "dynamic", "gamma": 1, "alpha": 0.5}, 3).train()
    assert isinstance(loss, DynamicMarginLoss) and loss.costs().tolist() == pytest.approx([1.0, 1.0, 1.0])
    logits = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0]])
    targets = torch.tensor([0, 1, 1, 0])  # class 0: 2/2 right, class 1: 1/2, class 2 absent
    loss(logits, targets)
    recall = np.array([1.0, 0.75, 1.0])  # 0.5 * batch recall + 0.5 * 1; absent class keeps 1
    np.testing.assert_allclose(loss.recall.numpy(), recall)
    np.testing.assert_allclose(loss.costs().numpy(), recall.mean() / recall, rtol=1e-6)


def test_group_dro_is_the_q_weighted_sum_of_per_class_mean_losses():
    # kohpangwei/group_DRO loss.py: q <- q * exp(eta * L_c), normalised; robust loss = sum_c q_c L_c.
    loss = ClassDROLoss(3, eta=0.5, form="group").train()
    logits, targets = random_batch(12, 3, torch.Generator().manual_seed(4))
    targets[targets == 2] = 0  # class 2 absent
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    means = torch.stack([per_sample[targets == c].mean() if (targets == c).any() else torch.tensor(0.0)
                         for c in range(3)])
    q = torch.full((3,), 1 / 3) * torch.exp(0.5 * means)
    q = q / q.sum()
    assert torch.allclose(loss(logits, targets), (q * means).sum(), atol=1e-6)
    assert torch.allclose(loss.q, q, atol=1e-6)
    with pytest.raises(ValueError, match="form="):
        ClassDROLoss(3, form="groups")


def test_ldam_form_lowers_only_the_true_logit_by_the_shifted_log_cost():
    costs = [2.0, 0.5, 1.0]
    loss = LogitAdjustedLoss(costs, form="ldam")
    logits, targets = random_batch(10, 3, torch.Generator().manual_seed(5))
    margins = np.log(costs) - np.log(costs).min()  # the easiest class (cost 0.5) needs no margin
    shifted = logits.clone()
    for i, y in enumerate(targets.tolist()):
        shifted[i, y] -= float(margins[y])
    assert torch.allclose(loss(logits, targets), F.cross_entropy(shifted, targets), atol=1e-6)
    dynamic = make_loss({"name": "margin", "source": "dynamic", "form": "ldam"}, 3)
    assert isinstance(dynamic, DynamicMarginLoss) and dynamic.form == "ldam"
    with pytest.raises(ValueError, match="form='hinge'"):
        LogitAdjustedLoss(costs, form="hinge")


def test_margins_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="tpr has 2 entries but num_classes=3"):
        make_loss({"name": "margin", "source": "static"}, 3, tpr=[0.5, 0.6])


def test_minrecall_refuses_nan_or_misshapen_recall_and_nan_validation_logits():
    loss = MinRecallLoss(3, every="epoch")
    with pytest.raises(ValueError, match=r"recall must be finite and in \[0, 1\]"):
        loss.step_on_recall(0, torch.tensor([0.5, float("nan"), 0.7]))
    with pytest.raises(ValueError, match=r"one value per class \(3\)"):
        loss.step_on_recall(0, torch.tensor([0.5, 0.7]))
    with pytest.raises(ValueError, match="val_logits contain NaN"):
        loss.on_epoch_end(0, torch.full((3, 3), float("nan")), torch.tensor([0, 1, 2]))
    assert loss.multipliers.tolist() == pytest.approx([1 / 3] * 3)  # nothing moved


def test_minrecall_updates_every_32_steps_by_default():
    """The official non_decomp/main.py interval (update_freq 32) is the default; per epoch is the named variant."""
    loss = MinRecallLoss(3)
    assert loss.every == 32 and loss.validation_every == 32
    assert MinRecallLoss(3, every="epoch").validation_every is None
