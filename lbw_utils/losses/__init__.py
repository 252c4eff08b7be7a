"""Training losses that weight classes by how hard they are to learn, one module per family.

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
``static``    ``static_weights`` (the Q&A question and the draft paper), ``CrossEntropy``, ``WeightedCrossEntropy``
``dynamic``   ``EMAWeightedCrossEntropy`` (the blog post), ``CDBLoss`` (Sinha et al. 2020, both official forms)
``robust``    ``FocalLoss`` (Lin et al. 2017), ``ClassDROLoss`` (Sagawa et al. 2020),
              ``MinRecallLoss`` (Narasimhan & Menon 2021)
``margin``    ``LogitAdjustedLoss``, ``DynamicMarginLoss`` (difficulty margins, after Menon et al. 2021;
              LDAM-style form)
``posthoc``   ``fit_logit_offsets``, ``apply_logit_offsets``: per-class offsets fitted on validation logits
``registry``  ``METHODS``: the one list of methods (kinds ``train``, ``posthoc``, ``fit``), ``make_loss``
"""

from lbw_utils.losses.common import CDB_DYNAMIC_TAU_EPSILON, MAX_TRAJECTORY_ROWS, MIN_BASE, STATIC_SCHEMES
from lbw_utils.losses.dynamic import CDB_VARIANTS, CDBLoss, EMAWeightedCrossEntropy, cdb_dynamic_tau
from lbw_utils.losses.margin import MARGIN_FORMS, MARGIN_SOURCES, DynamicMarginLoss, LogitAdjustedLoss
from lbw_utils.losses.posthoc import OFFSET_OBJECTIVES, apply_logit_offsets, fit_logit_offsets
from lbw_utils.losses.registry import (KINDS, LOSS_METHODS, METHODS, MethodSpec, Parameter, build_loss,
                                       check_method_options, make_loss, exponent_key, method_spec, methods_of_kind,
                                       needs_baseline_tpr, resolve_fit, scheme_weights)
from lbw_utils.losses.robust import DRO_FORMS, MINRECALL_FORMS, ClassDROLoss, FocalLoss, MinRecallLoss
from lbw_utils.losses.static import CrossEntropy, WeightedCrossEntropy, static_weights
