"""How a method is declared: its parameters (a default and what is allowed) and its :class:`MethodSpec`.

Every method file of this package declares its entries beside its code, as a module-level list
``SPECS = [MethodSpec(...), ...]``; :mod:`lbw_utils.methods.registry` collects them into ``METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from torch import nn

from lbw_utils.methods.common import _is_number
from lbw_utils.methods.kinds import KINDS, Kind, resolve_kind

# What a method may read of the same seed's baseline run (MethodSpec.reads): a field of its validation summary, or
# the ensemble of the baseline and its replicates as a teacher (methods.kinds.Teacher; the method's "teacher" option).
BASELINE_STATISTICS = ("tpr", "confusion", "teacher")


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


def positive_number(default: float) -> Parameter:
    return Parameter(default, lambda v: _is_number(v) and v > 0, "a finite number > 0")


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


def shown_value(value: Any) -> str:
    """An option's value as a reader's name writes it: numbers without a trailing ``.0`` (``4``, ``0.01``),
    flags as yes/no, anything else as its text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return f"{value:g}"
    return str(value)


def points(fraction: float) -> str:
    """A share (``0.005``) in points, as a name says it (``0.5 pt``, ``1 pt``, ``2 pts``)."""
    value = 100 * fraction
    return f"{value:g} pt" + ("" if value <= 1 else "s")


class Adjustment(NamedTuple):
    """What a method of kind ``"posthoc"`` does to a finished run's logits: ``fit(val_logits, val_targets,
    halves, **options)`` fits on the validation logits and two disjoint halves of them and returns the offsets
    ``[C]`` for the test split, the cross-fitted validation logits and the details to record (a
    :class:`lbw_utils.methods.posthoc.ValidationFit`); ``apply(logits, offsets)`` the adjusted logits. The kind
    draws the halves and decides where the offsets are applied (the test split)."""

    fit: Callable[..., Any]
    apply: Callable[[Any, Any], Any]


# --------------------------------------------------------------------------
# The declaration of one method
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class MethodSpec:
    """One method. ``parameters`` maps each key its dict may hold (besides ``name``) to a :class:`Parameter`.

    ``kind``: a :class:`~lbw_utils.methods.kinds.Kind` or its name (``"train"``, ``"fit"``, ``"posthoc"``),
    held as the kind object; what the entry must give depends on it:

    * ``"train"``: ``build(options, num_classes, tpr, label_smoothing)`` returns the loss, an ``nn.Module``
      (``options`` holds every parameter, defaults filled in; the hooks the training loop calls on it are
      :class:`lbw_utils.train.LossHooks`);
    * ``"fit"``: ``fit="package.module:function"``, resolved when a run needs it
      (:func:`lbw_utils.methods.kinds.resolve_fit`);
    * ``"posthoc"``: ``adjustment``, an :class:`Adjustment`.

    ``needs_baseline_tpr``: True, or a function of the (checked) options with defaults filled in.
    ``constraint``: cross-parameter rules, ``constraint(given_options)`` raises ValueError.
    ``label_leading``: keys whose bare value follows the name in the label (``static-mean-ratio-gamma4``);
    ``label_short``: shorter spellings of keys in labels (``normalize`` -> ``norm``).
    ``reads``: what of the same seed's baseline the builder receives (third argument) when it reads the
    baseline: ``"tpr"`` (its validation TPRs) or ``"confusion"`` (its validation confusion matrix).
    ``train_changes`` / ``model_changes``: for a method that changes the training loop or the network rather
    than (only) the loss, ``changes(options, current) -> {field: value}`` applied to the run's ``TrainConfig`` /
    ``ModelOptions`` (``current``: the study's; e.g. weight averaging, a larger CNN for a share of the epochs);
    the run's record and fingerprint hold the result. ``is_row``: False for a run that is only part of
    another row (an ensemble's member).
    ``display``: the name a reader sees in tables, figures and sentences (the label stays in CSV files and file
    names): a template over the options with defaults filled in, each value already written for a reader
    (``"focal loss, γ = {gamma}"``), or a function of those options (the values as given) returning the name;
    empty: the method's name and its given options (:meth:`display_text`). A post-hoc kind's name is put after
    the name of the run it adjusts by :func:`lbw_utils.methods.registry.display_name`.
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
    reads: str = "tpr"
    train_changes: Callable[[dict, Any], dict] | None = None
    model_changes: Callable[[dict, Any], dict] | None = None
    adjustment: Adjustment | None = None
    # False for a run that is part of another row, never a row itself (an ensemble's replicate member): its record
    # says so ("row": false) and the tables leave it out (lbw_utils.records.load_records).
    is_row: bool = True
    display: str | Callable[[dict], str] = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", resolve_kind(self.kind))
        if self.reads not in BASELINE_STATISTICS:
            raise ValueError(f"method {self.name!r}: reads={self.reads!r} must be one of {BASELINE_STATISTICS}")
        if (self.train_changes or self.model_changes) and not self.kind.trains_with_loop:
            raise ValueError(f"method {self.name!r} of kind {self.kind.name!r} has no training loop or network "
                             "to change: train_changes and model_changes need kind 'train'")
        if not isinstance(self.display, str) and not callable(self.display):
            raise ValueError(f"method {self.name!r}: display={self.display!r} is not allowed: expected a template "
                             "string over the options or a function of the options")
        if self.kind.adjusts_a_run and not isinstance(self.adjustment, Adjustment):
            raise ValueError(f"method {self.name!r} of kind {self.kind.name!r} adjusts a run: it needs "
                             f"adjustment=Adjustment(fit, apply), got {self.adjustment!r}")

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

    def display_text(self, method: dict) -> str:
        """The reader's name of a method dict of this entry (no ``of``: the run a post-hoc method adjusts is named by
        :func:`lbw_utils.methods.registry.display_name`), from ``display`` with every option's default filled in;
        without a ``display``, the name and the options the dict gives (``name (key value, ...)``)."""
        options = {key: value for key, value in self.options_of(method).items() if key != "of"}
        if callable(self.display):
            return self.display(options)
        if self.display:
            return self.display.format(**{key: shown_value(value) for key, value in options.items()})
        given = {key: value for key, value in self.given(method).items() if key != "of"}
        return self.name + (f" ({', '.join(f'{key} {shown_value(value)}' for key, value in given.items())})"
                            if given else "")

    def reads_baseline_tpr_of(self, method: dict) -> bool:
        """Whether a run of ``method`` reads the baseline's validation TPRs (same seed)."""
        return self.reads_baseline_tpr(self.given(method))

    def make(self, method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
        """The loss of a checked method dict of this entry (see :func:`lbw_utils.methods.registry.build_loss`)."""
        if not self.kind.trains_a_loss:
            trained = tuple(name for name, kind in KINDS.items() if kind.trains_a_loss)
            raise ValueError(f"method {self.name!r} is of kind {self.kind.name!r}: it has no training loss; "
                             f"losses exist for the methods of kind {trained}")
        options = self.options_of(method)
        if self.reads_baseline_tpr(options) and tpr is None:
            what = {"tpr": "TPRs", "confusion": "confusion matrix", "teacher": "ensemble as a teacher"}[self.reads]
            raise ValueError(f"method {self.name!r} needs tpr=: the baseline run's validation {what} (same seed)")
        return self.build(options, num_classes, tpr, label_smoothing)
