"""Every method a study can run, declared once: its kind, its parameters (defaults and allowed values),
whether it reads the baseline's validation TPRs, how it is labelled, how it is built, and the variants
notebook 04 trains by default. The method list, the allowed-keys check, ``make_loss``, the labels and the
experiment layer's dispatch all read :data:`METHODS`.

Kinds
-----
How a method runs is its kind's business (:mod:`lbw_utils.methods.kinds`, one object per kind; the
experiment layer asks it and never tests a kind's name):

``"train"``    a loss for :func:`lbw_utils.train.fit`; ``build(options, num_classes, tpr, label_smoothing)``
               returns the ``nn.Module`` (``options`` holds every parameter, defaults filled in).
``"posthoc"``  adjusts a trained run's logits; never trains (``lbw_utils.methods.posthoc``).
``"fit"``      a model that is not a network trained by ``fit`` (e.g. a linear yardstick), fitted directly.

Adding a method
---------------
A loss: one class in a module of its own (or of its family), one :class:`MethodSpec` in :data:`METHODS`
below (or :func:`register` from anywhere); ``docs/extending.md`` works one example through.

A method of kind ``"fit"``: one entry whose ``fit`` names its function as ``"package.module:function"``,
e.g. ``MethodSpec("ngram-logreg", "fit", {"C": Parameter(1.0, positive_number)},
fit="lbw_utils.methods.yardstick:fit_ngram_logreg")``. The name is resolved only when a run needs it
(:func:`lbw_utils.methods.kinds.resolve_fit`), so that module may import ``lbw_utils.methods`` without an
import cycle. The
function is called as ``fn(method, data, seed, tpr) -> outcome`` (``method``: the run's dict as given;
``tpr``: the baseline's validation TPRs when ``needs_baseline_tpr``, else None) and returns the dict
the ``"train"`` kind's outcome returns: ``val_logits`` and ``test_logits`` (CPU float
tensors ``[N, C]`` in split order), ``history`` (a dict or None), ``train_seconds``, ``loss_record``
(JSON-serialisable), ``model`` (a JSON-serialisable description); ``state_dict`` and ``best_val`` are
optional (without ``state_dict`` the run's artifact holds only its logits).

Validation happens once, where a method enters (:func:`check_method_options`, called by
``experiments.check_method`` and :func:`make_loss`); :func:`build_loss` trusts its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from lbw_utils.methods.common import STATIC_SCHEMES, _is_number, _num_classes
from lbw_utils.methods.dynamic import CDB_VARIANTS, CDBLoss, EMAWeightedCrossEntropy
from lbw_utils.methods.frontier import (AUGMENT_CLASSES, AugmentedCrossEntropy, PairMarginLoss, augment_mask,
                                       pair_margins)
from lbw_utils.methods.kinds import KINDS, Kind, resolve_kind
from lbw_utils.methods.margin import MARGIN_FORMS, MARGIN_SOURCES, DynamicMarginLoss, LogitAdjustedLoss
from lbw_utils.methods.posthoc import OFFSET_OBJECTIVES
from lbw_utils.methods.robust import DRO_FORMS, MINRECALL_FORMS, ClassDROLoss, FocalLoss, MinRecallLoss
from lbw_utils.methods.static import CrossEntropy, WeightedCrossEntropy, static_weights
from lbw_utils.models import CNN_SIZES


# --------------------------------------------------------------------------
# Parameters: a default and what is allowed
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Parameter:
    """One option of a method: its default, a test of a value, and the allowed values in words."""

    default: Any
    accepts: Callable[[Any], bool]
    allowed: str

    def check(self, key: str, value: Any) -> None:
        if not self.accepts(value):
            raise ValueError(f"{key}={value!r} is not allowed: expected {self.allowed}")


def non_negative(default: float) -> Parameter:
    return Parameter(default, lambda v: _is_number(v) and v >= 0, "a finite number >= 0")


def fraction(default: float, *, open_low: bool = False) -> Parameter:
    if open_low:
        return Parameter(default, lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")
    return Parameter(default, lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")


def choice(default: Any, options: tuple) -> Parameter:
    return Parameter(default, lambda v: isinstance(v, str) and v in options, f"one of {options}")


def flag(default: bool) -> Parameter:
    return Parameter(default, lambda v: isinstance(v, bool), "True or False")


def positive_int(default: int) -> Parameter:
    return Parameter(default, lambda v: not isinstance(v, bool) and isinstance(v, int) and v >= 1,
                     "an integer >= 1")


# What a method may read of the same seed's baseline run (MethodSpec.reads): a field of its validation summary.
BASELINE_STATISTICS = ("tpr", "confusion")

# "of" (post-hoc): the trained run to adjust, itself a method dict, checked by experiments.check_method.
METHOD_DICT = Parameter(None, lambda v: isinstance(v, dict), "a method dict such as {'name': 'baseline'}")


# --------------------------------------------------------------------------
# The declaration of one method
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class MethodSpec:
    """One method. ``parameters`` maps each key its dict may hold (besides ``name``) to a :class:`Parameter`.

    ``needs_baseline_tpr``: True, or a function of the (checked) options with defaults filled in.
    ``constraint``: cross-parameter rules, ``constraint(given_options)`` raises ValueError.
    ``label_leading``: keys whose bare value follows the name in the label (``static-mean-ratio-gamma4``);
    ``label_short``: shorter spellings of keys in labels (``normalize`` -> ``norm``).
    ``kind``: a :class:`~lbw_utils.methods.kinds.Kind` or its name (``"train"``, ``"fit"``, ``"posthoc"``),
    held as the kind object.
    ``candidates``: the variants notebook 04 trains by default, ``candidates(params) -> [method dicts]`` of
    the notebook's parameters (``params["alphas"]``, ...); None: the method is not one of notebook 04's.
    ``reads``: what of the same seed's baseline the builder receives (third argument) when it reads the
    baseline: ``"tpr"`` (its validation TPRs) or ``"confusion"`` (its validation confusion matrix).
    ``train_changes`` / ``model_changes``: for a method that changes the training loop or the network rather
    than (only) the loss, ``changes(options, current) -> {field: value}`` applied to the run's ``TrainConfig`` /
    ``ModelOptions`` (``current``: the study's; e.g. weight averaging, a larger CNN for a share of the epochs);
    the run's record and fingerprint hold the result.
    """

    name: str
    kind: Kind
    parameters: dict[str, Parameter] = field(default_factory=dict)
    build: Callable[..., nn.Module] | None = None
    fit: str | None = None
    needs_baseline_tpr: bool | Callable[[dict], bool] = False
    constraint: Callable[[dict], None] | None = None
    label_leading: tuple[str, ...] = ()
    label_short: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    candidates: Callable[[dict], list[dict]] | None = None
    reads: str = "tpr"
    train_changes: Callable[[dict, Any], dict] | None = None
    model_changes: Callable[[dict, Any], dict] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", resolve_kind(self.kind))
        if self.reads not in BASELINE_STATISTICS:
            raise ValueError(f"method {self.name!r}: reads={self.reads!r} must be one of {BASELINE_STATISTICS}")
        if (self.train_changes or self.model_changes) and not self.kind.trains_with_loop:
            raise ValueError(f"method {self.name!r} of kind {self.kind.name!r} has no training loop or network "
                             "to change: train_changes and model_changes need kind 'train'")

    def changes(self, method: dict, train: Any, model: Any) -> tuple[dict, dict]:
        """What a run of ``method`` changes in the study's ``TrainConfig`` and ``ModelOptions`` (maybe nothing)."""
        options = self.options_of(method)
        return (self.train_changes(options, train) if self.train_changes else {},
                self.model_changes(options, model) if self.model_changes else {})

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.parameters)

    def defaults(self) -> dict:
        return {key: parameter.default for key, parameter in self.parameters.items()}

    def with_defaults(self, options: dict) -> dict:
        return {**self.defaults(), **options}

    def reads_baseline_tpr(self, options: dict) -> bool:
        if callable(self.needs_baseline_tpr):
            return self.needs_baseline_tpr(self.with_defaults(options))
        return self.needs_baseline_tpr

    def given(self, method: dict) -> dict:
        """The parameters a method dict gives (no ``name``, no ``label``)."""
        return {k: v for k, v in method.items() if k in self.parameters}

    def options_of(self, method: dict) -> dict:
        """Every parameter of a (checked) method dict, defaults filled in."""
        return self.with_defaults(self.given(method))

    def reads_baseline_tpr_of(self, method: dict) -> bool:
        """Whether a run of ``method`` reads the baseline's validation TPRs (same seed)."""
        return self.reads_baseline_tpr(self.given(method))

    def make(self, method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
        """The loss of a checked method dict of this entry (see :func:`build_loss`)."""
        if not self.kind.trains_a_loss:
            raise ValueError(f"method {self.name!r} is of kind {self.kind.name!r}: it has no training loss; "
                             f"losses exist for {methods_of_kind(KINDS['train'])}")
        options = self.options_of(method)
        if self.reads_baseline_tpr(options) and tpr is None:
            what = "TPRs" if self.reads == "tpr" else "confusion matrix"
            raise ValueError(f"method {self.name!r} needs tpr=: the baseline run's validation {what} (same seed)")
        return self.build(options, num_classes, tpr, label_smoothing)


# --------------------------------------------------------------------------
# Builders (options arrive checked and complete)
# --------------------------------------------------------------------------

def exponent_key(scheme: str | None) -> str:
    """The key that holds a static scheme's exponent in a method dict: ``tau`` for the class-difficulty
    scheme (CDB's name for it), ``gamma`` for the Q&A question's formula and the others."""
    return "tau" if scheme == "cdb" else "gamma"


def scheme_weights(options: dict, tpr, num_classes: int):
    """Static weights of a method's (complete) options: its scheme with that scheme's exponent."""
    return static_weights(tpr, options["scheme"], gamma=options[exponent_key(options["scheme"])],
                          normalize=options.get("normalize", False), num_classes=num_classes)


def _exponent_constraint(method: str, options: dict, default_scheme: str | None) -> None:
    scheme = options.get("scheme", default_scheme)
    wrong = "gamma" if exponent_key(scheme) == "tau" else "tau"
    if wrong in options:
        raise ValueError(f"method {method!r} with scheme={scheme!r} takes {exponent_key(scheme)!r} as its exponent, "
                         f"not {wrong!r} ('tau' belongs to scheme 'cdb', 'gamma' to the others)")


def _static(options, num_classes, tpr, label_smoothing):
    return WeightedCrossEntropy(scheme_weights(options, tpr, num_classes), label_smoothing)


def _margin(options, num_classes, tpr, label_smoothing):
    if options["source"] == "static":
        costs = static_weights(tpr, "mean-ratio", gamma=options["gamma"], num_classes=num_classes)
        return LogitAdjustedLoss(costs, label_smoothing, form=options["form"])
    return DynamicMarginLoss(num_classes, gamma=options["gamma"], alpha=options["alpha"],
                             label_smoothing=label_smoothing, form=options["form"])


def _margin_constraint(options: dict) -> None:
    if options.get("source", "static") == "static" and "alpha" in options:
        raise ValueError("method 'margin' with source='static' takes no 'alpha' (that is the dynamic source's)")


def _ngram_logreg_constraint(options: dict) -> None:
    for key in ("gamma", "tau"):
        if key in options and options.get("scheme") is None:
            raise ValueError(f"method 'ngram-logreg': {key!r} needs a 'scheme' (class weights from the baseline's TPRs)")
    _exponent_constraint("ngram-logreg", options, None)


def _augment(options, num_classes, tpr, label_smoothing):
    return AugmentedCrossEntropy(augment_mask(tpr, num_classes, options["classes"], options["group"]), label_smoothing)


def _cnn_size(value: Any) -> bool:
    return isinstance(value, str) and value in CNN_SIZES


def _cdb_tau(value: Any) -> bool:
    return value == "dynamic" or (_is_number(value) and value >= 0)


def _cdb_floor(value: Any) -> bool:
    return value is None or (_is_number(value) and 0 < value < 1)


def _every(value: Any) -> bool:
    return value == "epoch" or (not isinstance(value, bool) and isinstance(value, int) and value >= 1)


# --------------------------------------------------------------------------
# The registry. Defaults, and why:
# - static gamma 4: the Q&A question's text (its printed weights are gamma 2, also in the cpu profile);
# - ema alpha 0.01: the blog post's value (about 100 batches of memory, a third of a Fashion-MNIST epoch);
# - focal gamma 2: Lin et al.'s best value;
# - cdb tau "dynamic", variant "cifar", no floor: the official CIFAR-LT code, the setting closest to ours;
# - dro eta 0.01: group_DRO's default step size; form "sample" keeps the published records unchanged;
# - minrecall eta 1, every 32 steps, logit-adjusted: the update interval of the official code
#   (google-research/google-research, non_decomp/main.py, flag update_freq = 32); its eg_lr default is 0.1
#   with CIFAR-LT's schedules, ours is chosen on tuning seeds that are never evaluated (notebook 08); the
#   per-epoch form ("every": "epoch") stays a named variant;
# - margin gamma 4, alpha 0.01: the question's formula's gamma 4 (best static trade-off on Fashion-MNIST) gives
#   margins log w of about +0.9 (shirt) to -0.25 (bag), about one logit; alpha as in ema.
# --------------------------------------------------------------------------

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in [
    MethodSpec("baseline", "train", build=lambda o, k, t, ls: CrossEntropy(ls), summary="plain cross-entropy"),
    MethodSpec("static", "train",
               {"scheme": choice("mean-ratio", STATIC_SCHEMES), "gamma": non_negative(4.0), "tau": non_negative(1.0),
                "normalize": flag(False)},
               build=_static, needs_baseline_tpr=True, constraint=lambda o: _exponent_constraint("static", o, "mean-ratio"),
               label_leading=("scheme",), label_short={"normalize": "norm"},
               summary="fixed weights from the baseline's validation TPRs (Q&A question's formula and variants)"),
    MethodSpec("ema", "train", {"alpha": fraction(0.01, open_low=True), "normalize": flag(False)},
               build=lambda o, k, t, ls: EMAWeightedCrossEntropy(k, label_smoothing=ls, **o),
               label_short={"normalize": "norm"}, summary="the blog post: weights = EMA of batch false-negative rates",
               candidates=lambda p: [{"name": "ema", "alpha": 0.01},  # faithful to the blog post
                                     *({"name": "ema", "alpha": a, "normalize": True} for a in p["alphas"])]),
    MethodSpec("focal", "train", {"gamma": non_negative(2.0)},
               build=lambda o, k, t, ls: FocalLoss(label_smoothing=ls, **o), summary="focal loss",
               candidates=lambda p: [{"name": "focal", "gamma": p["focal_gamma"]}]),
    MethodSpec("cdb", "train",
               {"tau": Parameter("dynamic", _cdb_tau, "a finite number >= 0 or 'dynamic'"),
                "variant": choice("cifar", CDB_VARIANTS),
                "floor": Parameter(None, _cdb_floor, "a number in (0, 1), or None")},
               build=lambda o, k, t, ls: CDBLoss(k, label_smoothing=ls, **o),
               summary="class-wise difficulty-balanced loss, CIFAR-LT (default) or ImageNet-LT form",
               candidates=lambda p: [{"name": "cdb", "tau": p["cdb_tau"]},  # CIFAR-LT form
                                     {"name": "cdb", "tau": p["cdb_tau"], "variant": "imagenet"}]),
    MethodSpec("dro", "train", {"eta": non_negative(0.01), "form": choice("sample", DRO_FORMS)},
               build=lambda o, k, t, ls: ClassDROLoss(k, label_smoothing=ls, **o),
               summary="class-level distributionally robust weights (form 'group': group_DRO's own loss)",
               candidates=lambda p: [{"name": "dro", "eta": p["dro_eta"]},
                                     {"name": "dro", "eta": p["dro_eta"], "form": "group"}]),
    MethodSpec("minrecall", "train",
               {"eta": non_negative(1.0), "form": choice("logit-adjusted", MINRECALL_FORMS),
                "every": Parameter(32, _every, "'epoch' or a positive number of training steps")},
               build=lambda o, k, t, ls: MinRecallLoss(k, label_smoothing=ls, **o),
               summary="worst-class recall by exponentiated gradient on validation recall",
               candidates=lambda p: [{"name": "minrecall", "eta": p["minrecall_eta"], "form": form,
                                      "every": p["minrecall_every"]} for form in ("weighted", "logit-adjusted")]),
    MethodSpec("margin", "train",
               {"source": choice("static", MARGIN_SOURCES), "gamma": non_negative(4.0),
                "alpha": fraction(0.01, open_low=True), "form": choice("logit-adjusted", MARGIN_FORMS)},
               build=_margin, needs_baseline_tpr=lambda o: o["source"] == "static", constraint=_margin_constraint,
               summary="difficulty margins: logit adjustment (or LDAM-style) with costs from measured recall",
               candidates=lambda p: [{"name": "margin", "source": "static", "gamma": p["margin_gamma"]},
                                     {"name": "margin", "source": "dynamic", "gamma": p["margin_gamma"],
                                      "alpha": p["margin_alpha"]}]),
    # Beyond re-deciding (lbw_utils.methods.frontier; notebook 09): they change the data the network sees, the
    # pairs it must separate, the weights it is evaluated with, or its size. Defaults: the confused group of 4
    # (Fashion-MNIST's upper-body garments: T-shirt/top, pullover, coat, shirt, read from validation, not
    # assumed); the other values are chosen on tuning seeds (frontier profile).
    MethodSpec("augment", "train", {"classes": choice("confused", AUGMENT_CLASSES), "group": positive_int(4)},
               build=_augment, needs_baseline_tpr=lambda o: o["classes"] == "confused",
               train_changes=lambda o, train: {"augment": True}, label_leading=("classes",),
               summary="flip + crop for the confused group's classes only (or for all, the same cost)"),
    MethodSpec("pair-margin", "train", {"gamma": non_negative(1.0)},
               build=lambda o, k, confusion, ls: PairMarginLoss(pair_margins(confusion, o["gamma"]), ls),
               needs_baseline_tpr=True, reads="confusion",
               summary="pairwise margins from the baseline's validation confusion: confused pairs kept apart"),
    MethodSpec("average", "train", {"decay": Parameter(0.99, lambda v: _is_number(v) and 0 < v < 1,
                                                       "a number in (0, 1)")},
               build=lambda o, k, t, ls: CrossEntropy(ls), train_changes=lambda o, train: {"average_weights": o["decay"]},
               summary="exponential moving average of the weights, evaluated instead of the last weights"),
    MethodSpec("capacity", "train",
               {"size": Parameter("medium", _cnn_size, "a CNN size (tiny, small, medium, large)"),
                "epoch_share": fraction(1.0, open_low=True)},
               build=lambda o, k, t, ls: CrossEntropy(ls), model_changes=lambda o, model: {"size": o["size"]},
               train_changes=lambda o, train: {"epochs": max(1, round(o["epoch_share"] * train.epochs))},
               label_leading=("size",), label_short={"epoch_share": "share"},
               summary="plain cross-entropy with a larger CNN, for a share of the study's epochs (its compute said)"),
    MethodSpec("ngram-logreg", "fit",
               {"C": Parameter(3.0, lambda v: _is_number(v) and v > 0, "a finite number > 0"),
                "scheme": Parameter(None, lambda v: v is None or v in STATIC_SCHEMES, f"None or one of {STATIC_SCHEMES}"),
                "gamma": non_negative(1.0), "tau": non_negative(1.0)},
               fit="lbw_utils.methods.yardstick:ngram_logreg_outcome", needs_baseline_tpr=lambda o: o["scheme"] is not None,
               constraint=_ngram_logreg_constraint, label_leading=("scheme",),
               summary="linear yardstick for names: character n-gram TF-IDF + logistic regression (C chosen on "
                       "validation, 5 classes, seed 0), optionally with the Q&A question's recipe's class weights"),
    MethodSpec("posthoc", "posthoc",
               {"objective": choice("worst", OFFSET_OBJECTIVES), "max_accuracy_drop": fraction(0.01),
                "grid_steps": positive_int(8), "refinements": positive_int(6), "max_passes": positive_int(10),
                "of": METHOD_DICT},
               label_leading=("objective",), label_short={"max_accuracy_drop": "drop"},
               summary="per-class logit offsets fitted on validation, applied to a trained run's logits",
               candidates=lambda p: [{"name": "posthoc", "objective": "worst"},
                                     {"name": "posthoc", "objective": "budget",
                                      "max_accuracy_drop": p["posthoc_budget"]}]),
]}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to :data:`METHODS` (a method defined outside this file, e.g. in a study's own module);
    its name must be new. Returns the entry."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is already registered; choose another name")
    METHODS[spec.name] = spec
    return spec


def candidate_methods(params: dict, families: list[str] | None = None) -> list[dict]:
    """Notebook 04's default methods: every entry's ``candidates(params)``, in registry order, for the entries
    named in ``families`` (None: every entry that has candidates). ``params``: the notebook's parameters."""
    if families is not None:
        unknown = sorted(set(families) - set(METHODS))
        if unknown:
            raise ValueError(f"families {unknown} are not known: choose from {list(METHODS)}")
    return [method for spec in METHODS.values() if spec.candidates is not None
            and (families is None or spec.name in families) for method in spec.candidates(params)]


def methods_of_kind(kind: "str | Kind") -> tuple[str, ...]:
    kind = resolve_kind(kind)
    return tuple(name for name, spec in METHODS.items() if spec.kind is kind)


LOSS_METHODS = methods_of_kind("train")  # the methods fit trains with a loss


# --------------------------------------------------------------------------
# Checking and building
# --------------------------------------------------------------------------

def method_spec(method: Any) -> MethodSpec:
    """The registry entry of a method dict, or a ValueError naming what is allowed."""
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise ValueError(f"method={method!r} is not allowed: expected a dict with a 'name' key, "
                         f"one of {tuple(METHODS)}")
    if method["name"] not in METHODS:
        raise ValueError(f"method name {method['name']!r} is unknown: expected one of {tuple(METHODS)}")
    return METHODS[method["name"]]


def check_method_options(method: dict) -> MethodSpec:
    """Refuse unknown keys and values outside what the method's parameters allow; return the entry.

    ``label`` (a display name) is allowed on every method. Nested methods (post-hoc's ``of``) are
    the caller's to check.
    """
    spec = method_spec(method)
    options = {key: value for key, value in method.items() if key not in ("name", "label")}
    unknown = sorted(set(options) - set(spec.parameters))
    if unknown:
        raise ValueError(f"method {spec.name!r} got unknown key(s) {unknown}: allowed keys are {spec.keys}")
    for key, value in options.items():
        spec.parameters[key].check(key, value)
    if spec.constraint is not None:
        spec.constraint(options)
    return spec


def needs_baseline_tpr(method: dict) -> bool:
    """Whether the run of ``method`` (checked where it entered) reads the baseline's validation TPRs (same seed)."""
    return METHODS[method["name"]].reads_baseline_tpr_of(method)


def build_loss(method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
    """The loss of a method dict that :func:`check_method_options` accepted (no second check)."""
    return METHODS[method["name"]].make(method, num_classes, tpr=tpr, label_smoothing=label_smoothing)


def make_loss(method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
    """Build the loss a method dict describes, e.g. ``{"name": "static", "scheme": "mean-ratio", "gamma": 4}``,
    ``{"name": "cdb"}``, ``{"name": "minrecall", "form": "logit-adjusted"}`` or
    ``{"name": "margin", "source": "static", "gamma": 4}``; keys left out take the registry's defaults.

    ``tpr`` (the baseline run's *validation* TPRs, never the test split's) is required by the
    methods that need it (:func:`needs_baseline_tpr`) and ignored by the others.
    """
    num_classes = _num_classes(num_classes)
    check_method_options(method)
    return build_loss(method, num_classes, tpr=tpr, label_smoothing=label_smoothing)


def check_method(method: Any) -> MethodSpec:
    """Refuse a method dict that could not run: unknown name, key, scheme, objective or option value, and
    what its kind refuses of the methods it nests (a post-hoc method's ``of``); return its entry.

    The keys and values are checked against the entry's declaration (its parameters and their allowed
    values), once, where the method enters; the run then trusts them. What only the data can refuse (e.g.
    the mean-ratio formula's division by a TPR of 0) is refused when the run builds it.
    """
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise ValueError(f"method={method!r} is not allowed: expected a dict whose 'name' is one of {tuple(METHODS)}")
    spec = check_method_options(method)
    spec.kind.check(method, check_method, lambda nested: METHODS[nested["name"]].kind)
    return spec


def method_label(method: dict) -> str:
    """A readable, file-safe, unique name, e.g. ``static-mean-ratio-gamma4``, ``ema-alpha0.01-norm``,
    ``baseline+posthoc-budget-drop0.01`` (post-hoc offsets on top of the baseline).

    The method's registry entry says which keys lead with their bare value (``label_leading``) and
    which are shortened (``label_short``); the other keys given follow alphabetically as
    ``<key><value>`` (``<key>`` for True). Keys left out of the dict stay out of the label. The kind
    may add to it (a post-hoc label starts with the label of the run it adjusts)."""
    if "label" in method:
        return str(method["label"])
    spec = METHODS.get(method["name"])
    leading = spec.label_leading if spec is not None else ()
    short_keys = spec.label_short if spec is not None else {}
    parts = [str(method["name"])]
    parts += [str(method[key]) for key in leading if key in method]
    for key in sorted(set(method) - {"name", "of", *leading}):
        value, short = method[key], short_keys.get(key, key)
        if value is True:
            parts.append(short)
        elif value is not False and value is not None:
            parts.append(f"{short}{value}")
    label = "-".join(parts).replace("/", "_").replace(" ", "")
    return spec.kind.label(label, method, method_label) if spec is not None else label
