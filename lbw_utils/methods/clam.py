"""CLAM, class-dependent multiplicative weights against the class-dependent harm of augmentation (method ``clam``).

Jiang, Ban & Weng, "Understanding and Reducing the Class-Dependent Effects of Data Augmentation with a Two-Player
Game Approach" (TMLR 2025, arXiv 2407.03146). Official code followed: the jyp9961/CLAM repository, ``train_CV.py``
(flag ``--CLAM_loss``): class weights ``w`` start at 1; the loss is ``mean_i(w[y_i] * CE_i)``; after every epoch
(from the first: ``CLAM_start_epoch = 0`` for Fashion-MNIST) the per-class accuracy ``a_c`` on the whole training
set, as its training transforms augment it, in eval mode, gives ``d = exp(-a) / mean(exp(-a))``, then
``w_c <- clip(w_c * d_c, 0.5, 2)`` and ``w <- w / mean(w)``.

Here it runs on the strong baseline: its loop, schedule and regularisation (the official script's ResNet-50,
ReduceLROnPlateau and 224-pixel random-resized crops are its own regime), with the augmentation whose class-
dependent effect it undoes (``policy``, the dataset's flip + crop by default, the crop being the official
script's strength parameter) applied on top of the baseline's own for every class, exactly as the uniform
``augment`` row of :mod:`lbw_utils.methods.frontier` does: that row is CLAM's reference at the same cost. The
cross-entropy carries the study's label smoothing (the official one has none). The training loop hands the
per-class training accuracy to :meth:`ClamLoss.on_train_accuracy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lbw_utils.methods.common import _as_list, _check_batch, _Trajectory
from lbw_utils.methods.frontier import AugmentedCrossEntropy
from lbw_utils.methods.spec import MethodSpec, choice
from lbw_utils.train import AUGMENTATIONS

# train_CV.py clips each weight to [0.5, 2] before renormalising.
WEIGHT_RANGE = (0.5, 2.0)


class ClamLoss(AugmentedCrossEntropy):
    """``mean_i(w[y_i] * CE_i)`` with CLAM's multiplicative class weights, the ``policy`` augmentation for every
    class."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, policy: str = "dataset") -> None:
        super().__init__([True] * num_classes, label_smoothing, policy)
        self.register_buffer("class_weights", torch.ones(num_classes))
        self.trajectory = _Trajectory()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.class_weights.numel())
        per_example = F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=self.label_smoothing)
        return (self.class_weights[targets] * per_example).mean()

    @torch.no_grad()
    def on_train_accuracy(self, epoch: int, train_tpr: torch.Tensor) -> None:
        accuracy = torch.as_tensor(train_tpr, dtype=torch.float64)
        if torch.isnan(accuracy).any():
            raise ValueError(f"CLAM needs every class's training accuracy; got {accuracy.tolist()} (a class without "
                             "training examples)")
        change = torch.exp(-accuracy)
        change = change / change.mean()
        weights = (self.class_weights.double().cpu() * change).clamp(*WEIGHT_RANGE)
        self.class_weights.copy_((weights / weights.mean()).to(self.class_weights))
        self.trajectory.append(epoch + 1, self.class_weights)

    def record(self) -> dict:
        steps, rows = self.trajectory.as_lists()
        return {**super().record(), "weights": _as_list(self.class_weights), "trajectory": rows,
                "trajectory_steps": steps}


SPECS = [
    MethodSpec("clam", "train", {"policy": choice("dataset", AUGMENTATIONS)},
               build=lambda o, k, t, ls: ClamLoss(k, ls, o["policy"]),
               summary="CLAM (jyp9961/CLAM train_CV.py): the augmentation policy for every class, with class weights "
                       "multiplied by exp(-training accuracy) after every epoch, clipped to [0.5, 2], mean 1",
               display=lambda o: "CLAM" + ("" if o["policy"] == "dataset" else f" ({o['policy']})")),
]
