"""Every method a study can run: training losses that weight classes by how hard they are to learn (one
module per family), the post-hoc logit offsets, and the registry that declares them all with their kind
(a loss trained by the loop, a model fitted directly such as the linear yardstick, or a post-hoc
adjustment of another run). Formerly ``lbw_utils.losses``: not everything here is a loss.

Every loss is an ``nn.Module`` called as ``loss(logits, targets)`` with float logits ``[B, C]`` and
int64 targets ``[B]``; it returns a scalar. The forward pass never waits for the device (no
``.item()``, no Python loop over classes), so the training loop stays asynchronous on a GPU. Under
autocast the loss is computed in float32.

Optional hooks, called by the training loop when present:

* ``on_epoch_end(epoch, val_logits, val_targets)`` after every epoch, with the logits of the whole
  validation split (CDB, min-recall);
* ``on_validation(step, val_logits, val_targets)`` every ``validation_every`` training steps, on a
  fixed validation slice (min-recall with ``every=<steps>``);
* ``record()`` returns JSON-serialisable data for the run record: always a ``"weights"`` entry and,
  for losses whose weights change during training, a ``"trajectory"``.

Families
--------
``static``    ``static_weights`` (the draft paper's mean-ratio formula and variants), ``CrossEntropy``, ``WeightedCrossEntropy``
``dynamic``   ``EMAWeightedCrossEntropy`` (the blog post), ``CDBLoss`` (Sinha et al. 2020, both official forms)
``robust``    ``FocalLoss`` (Lin et al. 2017), ``ClassDROLoss`` (Sagawa et al. 2020),
              ``MinRecallLoss`` (Narasimhan & Menon 2021)
``margin``    ``LogitAdjustedLoss``, ``DynamicMarginLoss`` (difficulty margins, after Menon et al. 2021;
              LDAM-style form)
``frontier``  beyond re-deciding (notebook 09): ``AugmentedCrossEntropy`` (class-targeted augmentation),
              ``PairMarginLoss`` (pairwise confusion margins); weight averaging and a larger CNN change the loop
              and the network through their registry entries
``posthoc``   ``fit_logit_offsets``, ``apply_logit_offsets``: per-class offsets fitted on validation logits
``registry``  ``METHODS``: the one list of methods, their labels and checks, ``make_loss``
``kinds``     how each kind runs (``train``, ``fit``, ``posthoc``): outcome, fingerprint, autocast, label
"""

from lbw_utils.methods.common import CDB_DYNAMIC_TAU_EPSILON, MAX_TRAJECTORY_ROWS, MIN_BASE, STATIC_SCHEMES
from lbw_utils.methods.dynamic import CDB_VARIANTS, CDBLoss, EMAWeightedCrossEntropy, cdb_dynamic_tau
from lbw_utils.methods.margin import MARGIN_FORMS, MARGIN_SOURCES, DynamicMarginLoss, LogitAdjustedLoss
from lbw_utils.methods.posthoc import OFFSET_OBJECTIVES, apply_logit_offsets, fit_logit_offsets
from lbw_utils.methods.kinds import FIT, KINDS, POSTHOC, TRAIN, Kind, RunContext, resolve_fit, resolve_kind
from lbw_utils.methods.registry import (LOSS_METHODS, METHODS, MethodSpec, Parameter, build_loss, candidate_methods,
                                       check_method, check_method_options, exponent_key, make_loss, method_label,
                                       method_spec, methods_of_kind, needs_baseline_tpr, register, scheme_weights)
from lbw_utils.methods.robust import DRO_FORMS, MINRECALL_FORMS, ClassDROLoss, FocalLoss, MinRecallLoss
from lbw_utils.methods.static import CrossEntropy, WeightedCrossEntropy, static_weights
