"""How a method runs: one object per kind, the one place that knows what a kind means.

A registry entry (:class:`lbw_utils.methods.spec.MethodSpec`) names its kind; the experiment layer
asks the kind, never tests its name:

``TRAIN``    ``"train"``: a loss for :func:`lbw_utils.train.fit`; the network and the loop's settings make
             the result, so they are in the run's fingerprint, and the record says whether bf16 autocast ran.
``FIT``      ``"fit"``: a model fitted directly by the function the entry names (``fit="module:function"``,
             e.g. the linear yardstick); no network, no training loop; a reference row in the tables.
``POSTHOC``  ``"posthoc"``: adjusts the logits of another, already finished run (``"of"``, default the
             baseline) with the entry's ``adjustment``, fitted on the validation split and its two stratified
             halves (cross-fitted scores); never trains, keeps no artifact of its own.

Every kind answers :meth:`Kind.outcome` (what the record and artifact are made of), :meth:`Kind.fingerprint`
(what beyond the method and the data determines the result), :meth:`Kind.autocast` (the record's field),
:meth:`Kind.label` (a label's prefix: a post-hoc run's names the run it adjusts) and :meth:`Kind.check`
(nested methods). This module sits below the registry, :mod:`~lbw_utils.methods.spec` and the method files:
it imports none of them; a kind reads what is particular to a method from its entry (``build``, ``fit``,
``adjustment``), and the run's :class:`RunContext` carries what a kind needs of the experiment layer (the
label of another method).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lbw_utils import records
from lbw_utils.models import cnn_options, make_model
from lbw_utils.speed import autocast_precision
from lbw_utils.train import fit, loss_hook, predict, seed_everything

BASELINE = {"name": "baseline"}

# What the function of a "fit" method returns (state_dict and best_val optional).
FIT_OUTCOME_KEYS = ("val_logits", "test_logits", "history", "train_seconds", "loss_record", "model")

# The form of a run's fingerprint (what makes two runs the same run). Bump it whenever what determines a run, or
# how the fingerprint says it, changes: a record made under another version is refused, not reused (rerun with
# redo=True), so no field needs a rule that keeps older records reusable. 2: every TrainConfig field but those of
# NOT_IN_FINGERPRINT, and whether training ran in float16 autocast. 3: post-hoc budgets held by cross-fitting,
# ceilings counted from the run's own accuracy, augmentation policies, the names tuning share.
FINGERPRINT_VERSION = 3

# Options that change how a run is watched, not what it learns.
NOT_IN_FINGERPRINT = ("track_train_tpr", "eval_batch_size")


@dataclass(frozen=True)
class RunContext:
    """What a kind needs to compute one run's outcome, besides the method, the data and the seed.

    ``model``: an ``experiments.ModelOptions``; ``label_of``: the registry's ``method_label`` (a kind
    names other runs' files through it: the baseline's record, the run a post-hoc method adjusts)."""

    results_dir: Path
    train: Any
    model: Any
    progress: bool
    label_of: Callable[[dict], str]

    def baseline_val(self, dataset: str, seed: int, statistic: str = "tpr") -> list:
        """The same seed's baseline run's validation ``statistic``: its per-class TPRs (``"tpr"``; static
        weights and margins are built from them) or its confusion matrix (``"confusion"``)."""
        path = records.record_path(self.results_dir, dataset, self.label_of(BASELINE), seed)
        if not records.is_finished(path):
            raise FileNotFoundError(f"this method needs the baseline's validation results for seed {seed}, but "
                                    f"{path} does not exist; run the baseline first (notebook 01_baseline)")
        return records.read_record(path)["val"]["confusion_matrix" if statistic == "confusion" else "tpr"]

    def baseline_for(self, spec, method: dict, data, seed: int) -> list | None:
        """What ``method``'s builder reads of the baseline (``spec.reads``), or None when it reads nothing."""
        return self.baseline_val(data.name, seed, spec.reads) if spec.reads_baseline_tpr_of(method) else None


class Kind:
    """How the methods of one kind run. Subclasses set the class attributes and :meth:`outcome`."""

    name: str = ""
    trains_a_loss = False  # the registry builds an nn.Module loss for it (make_loss)
    trains_with_loop = False  # TrainConfig and ModelOptions decide its result
    keeps_artifact = True  # its logits (and weights, if any) are saved beside its record
    adjusts_a_run = False  # it takes "of": another run, whose logits it adjusts
    reference = False  # a reference row of the tables rather than a weighting

    def outcome(self, spec, method: dict, data, seed: int, context: RunContext) -> dict:
        """``val_logits``, ``test_logits`` (CPU ``[N, C]``), ``history``, ``train_seconds``, ``loss_record``,
        ``model``; optionally ``state_dict`` and ``best_val``."""
        raise NotImplementedError

    def fingerprint(self, train, model, device) -> dict:
        """The parts of a run's fingerprint besides ``method`` and ``data``: its ``version``, and for a kind that
        trains with the loop the loop's settings (``train``) and the network's (``model``)."""
        if not self.trains_with_loop:
            return {"version": FINGERPRINT_VERSION}
        setup = {k: v for k, v in train.to_dict().items() if k not in NOT_IN_FINGERPRINT}
        # float16 trains with loss scaling, another procedure; bf16 and fp32 differ in rounding only, like a CPU and
        # a GPU, which the fingerprint leaves out so that a study resumes, or merges its shards, on other hardware.
        setup["float16_autocast"] = autocast_precision(device, train.amp) == "float16"
        # every option of the network, its size's defaults included (a CNN's stem, say)
        options = cnn_options(model.size, model.options) if model.name == "cnn" else model.options
        return {"version": FINGERPRINT_VERSION, "train": setup,
                "model": {"name": model.name, "size": model.size, **options}}

    def autocast(self, train, device) -> str | None:
        """The record's ``autocast``: the precision training ran in. ``amp`` asks for mixed precision, the
        hardware decides which (speed.autocast_dtype: "bfloat16", "float16" with loss scaling, or None for fp32)."""
        return autocast_precision(device, train.amp) if self.trains_with_loop else None

    def label(self, own: str, method: dict, label_of: Callable[[dict], str]) -> str:
        """The label of ``method`` given its own part ``own`` (``posthoc-budget-drop0.01``)."""
        return own

    def check(self, method: dict, check_method: Callable[[dict], Any], kind_of: Callable[[dict], "Kind"]) -> None:
        """Check what the method nests (another method); its own keys are the registry's to check."""

    def __repr__(self) -> str:
        return f"<kind {self.name!r}>"


class TrainedLoss(Kind):
    name = "train"
    trains_a_loss = trains_with_loop = True

    def outcome(self, spec, method, data, seed, context):
        train, model_options = context.train, context.model
        tpr = context.baseline_for(spec, method, data, seed)
        # checked by check_method when the run started: built once here, not checked again
        loss = spec.make(method, data.num_classes, tpr=tpr, label_smoothing=train.label_smoothing)
        input_shape = getattr(data, "input_shape", None)
        # The initial weights come from the global RNG: seed it here, or a run's result would depend on
        # what the process ran before it (a resumed or fanned-out study would differ from a whole one).
        seed_everything(seed)
        network = make_model(model_options.name, num_classes=data.num_classes, input_shape=input_shape,
                             size=model_options.size, **model_options.options)
        history = fit(network, data, loss, train, seed=seed, progress=context.progress)

        def logits(split: str) -> torch.Tensor:
            return predict(network, data, split, batch_size=train.eval_batch_size, amp=train.amp).cpu()

        val_logits, test_logits = logits("val"), logits("test")
        record = loss_hook(loss, "record")
        extra = record() if record is not None else {}
        best = {"epoch": history.best_val_epoch, "val_logits": val_logits, "test_logits": test_logits}
        if history.best_val_epoch != train.epochs - 1:  # an earlier epoch validated best: evaluate its weights too
            last_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            network.load_state_dict(history.best_val_state)
            best["val_logits"], best["test_logits"] = logits("val"), logits("test")
            network.load_state_dict(last_state)
        return {
            "best_val": best,
            "val_logits": val_logits,
            "test_logits": test_logits,
            "state_dict": {k: v.cpu() for k, v in network.state_dict().items()},
            "history": history.to_dict(),
            "train_seconds": history.train_seconds,
            "loss_record": extra,
            "model": {"name": model_options.name, "size": model_options.size, **model_options.options,
                      "parameters": sum(p.numel() for p in network.parameters())},
        }


class FittedModel(Kind):
    name = "fit"
    reference = True

    def outcome(self, spec, method, data, seed, context):
        """The entry's function fits it directly (no network, no ``fit``)."""
        tpr = context.baseline_for(spec, method, data, seed)
        outcome = resolve_fit(spec)(method, data, seed, tpr)
        missing = [key for key in FIT_OUTCOME_KEYS if key not in outcome]
        if missing:
            raise ValueError(f"the fit function {spec.fit} of method {spec.name!r} returned no {missing}; "
                             f"it must return {FIT_OUTCOME_KEYS} (state_dict and best_val optional)")
        return outcome


class PostHoc(Kind):
    name = "posthoc"
    keeps_artifact = False  # its logits are recomputed in a moment from the run it adjusts
    adjusts_a_run = True

    def label(self, own, method, label_of):
        return f"{label_of(method.get('of', BASELINE))}+{own}"

    def check(self, method, check_method, kind_of):
        if "of" not in method:
            return
        base = method["of"]
        check_method(base)
        if kind_of(base).adjusts_a_run:
            raise ValueError(f"method {method['name']!r} adjusts a trained run; 'of' names another posthoc "
                             f"method, {base!r}: it must name a run that is not itself an adjustment")

    def outcome(self, spec, method, data, seed, context):
        """Offsets fitted on validation, applied to test; the record's validation scores are cross-fitted.

        Scored on the data they were fitted on, post-hoc offsets would look better on validation than any
        trained method, and "the best method by validation" would be post-hoc by construction. So the kind
        halves the validation split (stratified, seeded: :func:`stratified_halves`) and hands the halves to the
        entry's ``adjustment.fit(val_logits, val_targets, halves, **options)``, which returns the offsets for
        the test split (fitted on the whole validation split), the cross-fitted validation logits (offsets
        fitted on one half predict the other, and vice versa) that make the record's validation metrics, and
        its ``details`` for the record (for ``posthoc``: the accuracy budget stated, the one held on the
        halves, the cross-fitted drop; :func:`lbw_utils.methods.posthoc.fit_on_validation`).
        """
        base_label = context.label_of(method.get("of", BASELINE))
        source = records.artifact_path(context.results_dir, data.name, base_label, seed)
        if not source.exists():
            raise FileNotFoundError(f"post-hoc offsets need the logits of run '{base_label}' (seed {seed}) at "
                                    f"{source}; run it first")
        saved = torch.load(source, map_location="cpu", weights_only=True)
        options = spec.options_of(method)
        options.pop("of")
        adjustment = spec.adjustment
        val_logits, val_targets = saved["val_logits"], data.labels("val").cpu()
        fitted = adjustment.fit(val_logits, val_targets, stratified_halves(val_targets, seed), **options)
        return {
            "val_logits": fitted.cross_fitted_logits,
            "test_logits": adjustment.apply(saved["test_logits"], fitted.offsets),
            "history": None,
            "train_seconds": 0.0,
            "loss_record": {"offsets": fitted.offsets.tolist(), "adjusts": base_label,
                            "val_scores": "cross-fitted on two halves of the validation split", **fitted.details},
            "model": None,
        }


def stratified_halves(targets: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint index sets covering ``targets``, each holding half of every class (seeded)."""
    generator = torch.Generator().manual_seed(seed + 7_919)
    first, second = [], []
    for label in torch.unique(targets):
        members = torch.nonzero(targets == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        first.append(members[: len(members) // 2])
        second.append(members[len(members) // 2:])
    return torch.cat(first), torch.cat(second)


TRAIN, FIT, POSTHOC = TrainedLoss(), FittedModel(), PostHoc()
KINDS: dict[str, Kind] = {kind.name: kind for kind in (TRAIN, FIT, POSTHOC)}


def resolve_kind(kind: "str | Kind") -> Kind:
    """A kind object from itself or its name, or a ValueError naming the kinds."""
    if isinstance(kind, Kind):
        return kind
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not known: expected one of {tuple(KINDS)}")
    return KINDS[kind]


def resolve_fit(spec) -> Callable:
    """The fit function of a ``"fit"`` entry, imported from its ``"module:function"`` name on first use
    (so that module may import ``lbw_utils.methods`` without an import cycle)."""
    if spec.kind is not FIT or not spec.fit or ":" not in spec.fit:
        raise ValueError(f"method {spec.name!r} has no fit function: expected kind 'fit' with "
                         f"fit='package.module:function', got kind={spec.kind.name!r}, fit={spec.fit!r}")
    module_name, function_name = spec.fit.split(":", 1)
    return getattr(importlib.import_module(module_name), function_name)
