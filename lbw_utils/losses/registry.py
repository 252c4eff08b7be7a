"""The methods a study can train, declared once: their keys, whether they need the baseline's
validation TPRs, and how their loss is built. ``make_loss``, the experiment layer's checks and its
list of methods all read :data:`TRAINED_METHODS`.

Adding a method is one loss class (in the module of its family) and one :class:`MethodSpec` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from lbw_utils.losses.common import _num_classes
from lbw_utils.losses.dynamic import CDBLoss, EMAWeightedCrossEntropy
from lbw_utils.losses.margin import MARGIN_SOURCES, DynamicMarginLoss, LogitAdjustedLoss
from lbw_utils.losses.robust import ClassDROLoss, FocalLoss, MinRecallLoss
from lbw_utils.losses.static import CrossEntropy, WeightedCrossEntropy, static_weights


@dataclass(frozen=True)
class MethodSpec:
    """One trainable method: ``build(options, num_classes, tpr, label_smoothing) -> loss``."""

    name: str
    keys: tuple[str, ...]
    build: Callable[..., nn.Module]
    needs_baseline_tpr: bool = False
    summary: str = ""


def _static(options, num_classes, tpr, label_smoothing):
    return WeightedCrossEntropy(static_weights(tpr, num_classes=num_classes, **options), label_smoothing)


def _margin(options, num_classes, tpr, label_smoothing):
    options = dict(options)
    source = options.pop("source", "static")
    if source not in MARGIN_SOURCES:
        raise ValueError(f"source={source!r} is not allowed: expected one of {MARGIN_SOURCES}")
    if source == "static":
        if "alpha" in options:
            raise ValueError("method 'margin' with source='static' takes no 'alpha' (that is the dynamic source's)")
        if tpr is None:
            raise ValueError("method 'margin' with source='static' needs tpr=: the baseline run's validation TPRs")
        costs = static_weights(tpr, "peifer", gamma=options.get("gamma", 4.0), num_classes=num_classes)
        return LogitAdjustedLoss(costs, label_smoothing)
    return DynamicMarginLoss(num_classes, label_smoothing=label_smoothing, **options)


TRAINED_METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in [
    MethodSpec("baseline", (), lambda o, k, t, ls: CrossEntropy(ls), summary="plain cross-entropy"),
    MethodSpec("static", ("scheme", "gamma", "normalize"), _static, needs_baseline_tpr=True,
               summary="fixed weights from the baseline's validation TPRs (seed formula and variants)"),
    MethodSpec("ema", ("alpha", "normalize"), lambda o, k, t, ls: EMAWeightedCrossEntropy(k, label_smoothing=ls, **o),
               summary="seed 003: weights = EMA of batch false-negative rates"),
    MethodSpec("focal", ("gamma",), lambda o, k, t, ls: FocalLoss(label_smoothing=ls, **o), summary="focal loss"),
    MethodSpec("cdb", ("tau", "variant", "floor"), lambda o, k, t, ls: CDBLoss(k, label_smoothing=ls, **o),
               summary="class-wise difficulty-balanced loss, CIFAR-LT (default) or ImageNet-LT form"),
    MethodSpec("dro", ("eta", "form"), lambda o, k, t, ls: ClassDROLoss(k, label_smoothing=ls, **o),
               summary="class-level distributionally robust weights"),
    MethodSpec("minrecall", ("eta", "form", "every"), lambda o, k, t, ls: MinRecallLoss(k, label_smoothing=ls, **o),
               summary="worst-class recall by exponentiated gradient on validation recall"),
    MethodSpec("margin", ("source", "gamma", "alpha"), _margin, needs_baseline_tpr=True,
               summary="logit adjustment with costs from measured difficulty (static or EMA)"),
]}
# Method name -> the keys its dict may hold besides "name" (derived from the registry).
METHOD_KEYS: dict[str, tuple[str, ...]] = {name: spec.keys for name, spec in TRAINED_METHODS.items()}
LOSS_METHODS = tuple(TRAINED_METHODS)


def needs_baseline_tpr(method: dict) -> bool:
    """Whether the run of ``method`` reads the baseline's validation TPRs (same seed)."""
    spec = TRAINED_METHODS.get(method.get("name"))
    if spec is None or not spec.needs_baseline_tpr:
        return False
    return method["name"] != "margin" or method.get("source", "static") == "static"


def make_loss(method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
    """Build the loss a method dict describes, e.g. ``{"name": "static", "scheme": "peifer", "gamma": 4}``,
    ``{"name": "cdb"}``, ``{"name": "minrecall", "form": "logit-adjusted"}`` or
    ``{"name": "margin", "source": "static", "gamma": 4}``; keys left out take the defaults of the
    underlying class.

    ``tpr`` (the baseline run's *validation* TPRs, never the test split's) is required by the
    methods that need it (:func:`needs_baseline_tpr`) and ignored by the others.
    """
    num_classes = _num_classes(num_classes)
    if not isinstance(method, dict) or "name" not in method:
        raise ValueError(f"method={method!r} is not allowed: expected a dict with a 'name' key")
    name = method["name"]
    if not isinstance(name, str) or name not in TRAINED_METHODS:
        raise ValueError(f"method name {name!r} is unknown: expected one of {LOSS_METHODS}")
    spec = TRAINED_METHODS[name]
    options = {key: value for key, value in method.items() if key != "name"}
    unknown = sorted(set(options) - set(spec.keys))
    if unknown:
        raise ValueError(f"method {name!r} got unknown key(s) {unknown}: allowed keys are {spec.keys}")
    if needs_baseline_tpr(method) and tpr is None:
        raise ValueError(f"method {name!r} needs tpr=: the baseline run's validation TPRs (same seed)")
    return spec.build(options, num_classes, tpr, label_smoothing)
