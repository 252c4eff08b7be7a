"""Distillation of an ensemble of baselines into one network of the baseline's size (method ``distill``).

The teacher is the ensemble of the same seed's baseline and its replicates (``teacher`` networks; the
``ensemble`` method's members, :mod:`lbw_utils.methods.ensemble`), run on each training batch as the student sees
it (the same augmented inputs, through the training loop's ``see_inputs`` hook), in eval mode and without
gradients; its prediction is the mean of the members' softmax outputs.

* ``form="plain"``: Hinton, Vinyals & Dean (2015), ``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) *
  CE(student, y)``, where ``p^T`` is the softmax at temperature ``T`` (the teacher's log-probabilities are its
  logits) and the cross-entropy carries the study's label smoothing.
* ``form="worst"``: a worst-class form after Wang, Narasimhan, Zhou, Hooker, Lukasik & Menon, "Robust distillation
  for worst-class performance" (UAI 2023), written from the paper's description (no official code was found):
  (1) the teacher is calibrated per class first, its log-probabilities shifted by per-class offsets fitted on
  the *validation* split to maximise its worst-class TPR (:func:`lbw_utils.methods.posthoc.fit_logit_offsets`,
  objective ``"worst"``); (2) the student's per-example loss (the same mix as ``plain``) is weighted by
  class-level DRO weights ``C * q`` updated on every batch by exponentiated gradient on the classes' mean losses,
  ``q_c <- q_c * exp(eta * L_c)``, renormalised (as :class:`lbw_utils.methods.robust.ClassDROLoss`). A
  deliberate variant: the paper's student solves the min-max with the teacher's labels on a held-out split.

The student's compute is its own training, its teacher's forward passes (in its training seconds) and the
teacher's training (the record's ``compute``: networks trained, seconds with the teacher's).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.methods.common import _as_list, _check_batch, _label_smoothing, _num_classes
from lbw_utils.methods.ensemble import ENSEMBLE_SIZE
from lbw_utils.methods.kinds import average_probabilities
from lbw_utils.methods.posthoc import fit_logit_offsets
from lbw_utils.methods.spec import MethodSpec, Parameter, choice, fraction, non_negative, positive_number, shown_value
from lbw_utils.speed import autocast

DISTILL_FORMS = ("plain", "worst")


class DistillationLoss(nn.Module):
    """``alpha * T^2 * KL(teacher^T || student^T) + (1 - alpha) * CE``, per example, optionally weighted by
    class-level DRO weights (``eta > 0``); the teacher's log-probabilities come from ``see_inputs``."""

    def __init__(self, networks: list, num_classes: int, *, temperature: float, alpha: float, eta: float = 0.0,
                 offsets: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a distillation loss needs at least one teacher network")
        if not (temperature > 0):
            raise ValueError(f"temperature={temperature!r} is not allowed: expected a number > 0")
        self.num_classes = _num_classes(num_classes)
        self.networks = networks  # a plain list: the teacher's weights are not the loss's parameters or state
        for network in networks:
            network.requires_grad_(False)
        self.temperature, self.alpha, self.eta = float(temperature), float(alpha), float(eta)
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer("offsets", torch.zeros(num_classes) if offsets is None
                             else torch.as_tensor(offsets, dtype=torch.float32))
        self.register_buffer("q", torch.full((num_classes,), 1.0 / num_classes))
        self._teacher_log_probs: torch.Tensor | None = None

    @torch.no_grad()
    def see_inputs(self, inputs: tuple) -> None:
        """Run the teacher on the batch the student is about to see (eval mode, the loop's precision)."""
        device = inputs[0].device
        logits = []
        for network in self.networks:
            with autocast(device, True):
                logits.append(network(*inputs).float())
        log_probs = average_probabilities(logits)  # the ensemble's prediction, as the ensemble method forms it
        self._teacher_log_probs = log_probs + self.offsets.to(device)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.num_classes)
        cross_entropy = F.cross_entropy(logits.float(), targets, reduction="none",
                                        label_smoothing=self.label_smoothing)
        teacher = self._teacher_log_probs
        if teacher is None or not self.training:  # no teacher output for this batch (evaluation): the labels only
            per_example = cross_entropy
        else:
            if teacher.shape != logits.shape:
                raise ValueError(f"the teacher's outputs have shape {tuple(teacher.shape)}, the student's logits "
                                 f"{tuple(logits.shape)}: see_inputs must run on the same batch")
            student = F.log_softmax(logits.float() / self.temperature, dim=1)
            soft_teacher = F.log_softmax(teacher / self.temperature, dim=1)
            divergence = (soft_teacher.exp() * (soft_teacher - student)).sum(1)
            per_example = self.alpha * self.temperature ** 2 * divergence + (1 - self.alpha) * cross_entropy
            self._teacher_log_probs = None
        if self.eta == 0:
            return per_example.mean()
        if self.training:
            with torch.no_grad():
                one_hot = F.one_hot(targets, self.num_classes).to(per_example.dtype)
                class_means = (one_hot * per_example.detach()[:, None]).sum(0) / one_hot.sum(0).clamp_min(1)
                self.q.copy_(torch.softmax(self.q.log() + self.eta * class_means, dim=0))
        return (per_example * (self.num_classes * self.q)[targets]).mean()

    def record(self) -> dict:
        return {"weights": _as_list(self.num_classes * self.q) if self.eta else None,
                "temperature": self.temperature, "alpha": self.alpha, "eta": self.eta,
                "teacher_offsets": _as_list(self.offsets)}


def _distill(options, num_classes, teacher, label_smoothing):
    offsets = None
    if options["form"] == "worst":
        offsets = fit_logit_offsets(teacher.val_log_probs, teacher.val_targets, objective="worst", hold="none")
    loss = DistillationLoss(teacher.networks, num_classes, temperature=options["temperature"], alpha=options["alpha"],
                            eta=options["eta"] if options["form"] == "worst" else 0.0, offsets=offsets,
                            label_smoothing=label_smoothing)
    loss.teacher_labels = teacher.labels
    return loss


def _check_teacher_size(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


SPECS = [
    MethodSpec("distill", "train",
               {"teacher": Parameter(ENSEMBLE_SIZE, _check_teacher_size, "an integer >= 1 (the ensemble's size)"),
                "temperature": positive_number(4.0), "alpha": fraction(0.9), "form": choice("plain", DISTILL_FORMS),
                "eta": non_negative(0.01)},
               build=_distill, needs_baseline_tpr=True, reads="teacher", label_leading=("form",),
               label_short={"temperature": "T"},
               summary="one network of the baseline's size trained on an ensemble's softened outputs (plain), or on a "
                       "per-class calibrated teacher with class-level DRO weights (worst)",
               display=lambda o: ("student" if o["form"] == "plain" else "worst-class student")
                       + f" of the {o['teacher']}-network ensemble, T = {shown_value(o['temperature'])}"),
]
