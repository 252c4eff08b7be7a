"""Every method a study can run: training losses that weight classes by how hard they are to learn, the
post-hoc logit offsets, the linear yardstick, and the machinery that declares and collects them with their
kind (a loss trained by the loop, a model fitted directly, or a post-hoc adjustment of another run).
Formerly ``lbw_utils.losses``: not everything here is a loss.

A method is one file here: its code and its entries (``SPECS``, a list of
:class:`~lbw_utils.methods.spec.MethodSpec`); the registry collects every such file, so adding a method is
adding a file (:mod:`lbw_utils.methods.registry` says how). What the training loop asks of a loss (its
optional hooks: ``on_epoch_end``, ``on_validation``, ``record``, ...) is :class:`LossHooks`.

The machinery
-------------
``spec``      ``Parameter`` and its constructors, ``MethodSpec``: how a method is declared
``registry``  ``METHODS``, collected from the method files: the one list of methods, their labels, the names a
              reader sees (``display_name``) and checks, ``make_loss``, ``register``
``kinds``     how each kind runs (``train``, ``fit``, ``posthoc``): outcome, fingerprint, autocast, label
``common``    what every loss shares: ``LossHooks`` (from ``lbw_utils.train``), argument checks, constants, weight trajectories

Every other module here is a method file: one family of methods, described by its docstring (``static``,
``dynamic``, ``robust``, ``margin``, ``frontier``, ``posthoc``, ``yardstick``, ...). The names below are
re-exported for the notebooks and tests; a new method file's names are imported from its own module.
"""

from lbw_utils.methods.common import (CDB_DYNAMIC_TAU_EPSILON, MAX_TRAJECTORY_ROWS, MIN_BASE, STATIC_SCHEMES,
                                     LossHooks)
from lbw_utils.methods.dynamic import CDB_VARIANTS, CDBLoss, EMAWeightedCrossEntropy, cdb_dynamic_tau
from lbw_utils.methods.margin import MARGIN_FORMS, MARGIN_SOURCES, DynamicMarginLoss, LogitAdjustedLoss
from lbw_utils.methods.posthoc import OFFSET_OBJECTIVES, apply_logit_offsets, fit_logit_offsets
from lbw_utils.methods.kinds import FIT, KINDS, POSTHOC, TRAIN, Kind, RunContext, resolve_fit, resolve_kind
from lbw_utils.methods.registry import (LOSS_METHODS, METHODS, build_loss, check_method, check_method_options,
                                       display_name, make_loss, method_from_label, method_label, method_spec,
                                       methods_of_kind, needs_baseline_tpr, register)
from lbw_utils.methods.robust import DRO_FORMS, MINRECALL_FORMS, ClassDROLoss, FocalLoss, MinRecallLoss
from lbw_utils.methods.spec import (Adjustment, MethodSpec, Parameter, choice, flag, fraction, non_negative,
                                   positive_int, positive_number, shown_value)
from lbw_utils.methods.static import CrossEntropy, WeightedCrossEntropy, exponent_key, scheme_weights, static_weights
