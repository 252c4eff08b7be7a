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
``ENSEMBLE`` ``"ensemble"``: averages the softmax outputs of finished runs of the same seed (the baseline and its
             replicates, ``member`` runs); never trains, keeps its averaged outputs as its artifact.

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
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lbw_utils import records
from lbw_utils.models import cnn_options, make_model
from lbw_utils.speed import autocast_precision
from lbw_utils.train import fit, loss_hook, predict, seed_everything, training_seed

BASELINE = {"name": "baseline"}

# What the function of a "fit" method returns (state_dict and best_val optional).
FIT_OUTCOME_KEYS = ("val_logits", "test_logits", "history", "train_seconds", "loss_record", "model")

# The form of a run's fingerprint (what makes two runs the same run). Bump it whenever what determines a run, or
# how the fingerprint says it, changes: a record made under another version is refused, not reused (rerun with
# redo=True), so no field needs a rule that keeps older records reusable. 2: every TrainConfig field but those of
# NOT_IN_FINGERPRINT, and whether training ran in float16 autocast. 3: post-hoc budgets held by cross-fitting,
# ceilings counted from the run's own accuracy, augmentation policies, the names tuning share.
# 4: replicates (TrainConfig.replicate), ensembles, teachers, class-conditional augmentation strength.
FINGERPRINT_VERSION = 4

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

    def baseline_for(self, spec, method: dict, data, seed: int) -> Any:
        """What ``method``'s builder reads of the baseline (``spec.reads``), or None when it reads nothing: the
        validation TPRs or confusion matrix of the same seed's baseline, or (``"teacher"``) the :class:`Teacher`
        made of the baseline and its replicates (the method's ``teacher`` option: how many networks)."""
        if not spec.reads_baseline_tpr_of(method):
            return None
        if spec.reads == "teacher":
            return self.teacher(data, seed, spec.options_of(method)["teacher"])
        return self.baseline_val(data.name, seed, spec.reads)

    def member_labels(self, size: int) -> list[str]:
        """The labels of an ensemble's ``size`` members: the baseline, then replicates 1 .. size - 1."""
        return [self.label_of(BASELINE)] + [self.label_of({"name": "member", "index": index})
                                            for index in range(1, size)]

    def member_records(self, dataset: str, seed: int, size: int) -> list[dict]:
        """The finished records of an ensemble's ``size`` members for ``seed``, checked to share one training
        setup (the replicate index aside); a FileNotFoundError naming the first missing member."""
        found = []
        for label in self.member_labels(size):
            path = records.record_path(self.results_dir, dataset, label, seed)
            if not records.is_finished(path):
                missing = "the baseline" if label == self.label_of(BASELINE) else f"run {label!r}"
                raise FileNotFoundError(f"an ensemble of {size} networks needs {missing} for seed {seed}, but {path} "
                                        f"does not exist; run the members first (methods {{'name': 'member', "
                                        f"'index': k}} for k = 1 .. {size - 1}, before the ensemble or the student)")
            found.append(records.read_record(path))
        setups = {json.dumps(_without_replicate(record.get("fingerprint") or {}), sort_keys=True) for record in found}
        if len(setups) > 1:
            raise ValueError(f"the members {self.member_labels(size)} of seed {seed} were trained with different "
                             "settings (beyond their replicate index); rerun them with the same study settings")
        return found

    def teacher(self, data, seed: int, size: int) -> "Teacher":
        """The ensemble of the baseline and its first ``size - 1`` replicates as a teacher: the networks (eval
        mode, on the data's device), the ensemble's validation log-probabilities and targets, and what the members
        cost to train."""
        members = self.member_records(data.name, seed, size)
        networks = [network_of(self.results_dir, record, data.device) for record in members]
        saved = [load_artifact(self.results_dir, record) for record in members]
        return Teacher(networks=networks, val_log_probs=average_probabilities([s["val_logits"] for s in saved]),
                       val_targets=data.labels("val").cpu(), labels=[r["method_label"] for r in members],
                       train_seconds=float(sum(r["train_seconds"] for r in members)))


@dataclass
class Teacher:
    """What a distillation loss learns from: an ensemble's networks and its validation outputs."""

    networks: list
    val_log_probs: torch.Tensor  # log of the members' mean softmax, validation split, [N, C]
    val_targets: torch.Tensor
    labels: list[str]
    train_seconds: float  # the members' training seconds, summed: the teacher's share of the student's compute


def _without_replicate(fingerprint: dict) -> dict:
    train = {key: value for key, value in (fingerprint.get("train") or {}).items() if key != "replicate"}
    return {**fingerprint, "method": None, "train": train}


def average_probabilities(logits: list[torch.Tensor]) -> torch.Tensor:
    """Log of the mean softmax of ``logits`` (each ``[N, C]``): an ensemble's averaged prediction, as logits."""
    probabilities = torch.stack([torch.softmax(value.float(), dim=1) for value in logits]).mean(0)
    return probabilities.clamp_min(torch.finfo(torch.float32).tiny).log()


def load_artifact(results_dir: Path, record: dict) -> dict:
    """The saved logits (and weights, where kept) of a finished run."""
    path = records.artifact_path(results_dir, record["dataset"], record["method_label"], record["seed"])
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the outputs of {record['method_label']} seed {record['seed']} "
                                "are saved beside its record; rerun it with redo=True")
    return torch.load(path, map_location="cpu", weights_only=True)


def network_of(results_dir: Path, record: dict, device: Any = "cpu") -> torch.nn.Module:
    """Rebuild a trained run's network from its record and load the weights saved beside it (eval mode)."""
    spec = dict(record["parameters"]["model"])
    spec.pop("parameters", None)
    name, size = spec.pop("name"), spec.pop("size")
    input_shape = record["parameters"]["data"].get("input_shape")
    network = make_model(name, num_classes=len(record["classes"]), input_shape=input_shape, size=size, **spec)
    saved = load_artifact(results_dir, record)
    if "state_dict" not in saved:
        raise ValueError(f"run {record['method_label']} seed {record['seed']} kept no weights (a fitted model): it "
                         "cannot teach")
    network.load_state_dict(saved["state_dict"])
    # channels_last as the training loop trains it: on oneDNN (CPU) a CNN's forward pass is about 5x faster so
    # (a teacher runs on every training batch); it touches 4-D conv weights only, and no value
    return network.to(device, memory_format=torch.channels_last).eval()


def loop_fingerprint(train, model, device) -> dict:
    """The fingerprint of a run the training loop makes: the version, the loop's settings and the network's."""
    setup = {k: v for k, v in train.to_dict().items() if k not in NOT_IN_FINGERPRINT}
    # float16 trains with loss scaling, another procedure; bf16 and fp32 differ in rounding only, like a CPU and
    # a GPU, which the fingerprint leaves out so that a study resumes, or merges its shards, on other hardware.
    setup["float16_autocast"] = autocast_precision(device, train.amp) == "float16"
    # every option of the network, its size's defaults included (a CNN's stem, say)
    options = cnn_options(model.size, model.options) if model.name == "cnn" else model.options
    return {"version": FINGERPRINT_VERSION, "train": setup,
            "model": {"name": model.name, "size": model.size, **options}}


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
        return loop_fingerprint(train, model, device)

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
        # what the process ran before it (a resumed or fanned-out study would differ from a whole one). A replicate
        # (an ensemble's member) draws them, and its batches, from its own seed; the split stays the run's.
        randomness = training_seed(seed, train.replicate)
        seed_everything(randomness)
        network = make_model(model_options.name, num_classes=data.num_classes, input_shape=input_shape,
                             size=model_options.size, **model_options.options)
        history = fit(network, data, loss, train, seed=randomness, progress=context.progress)

        def logits(split: str) -> torch.Tensor:
            return predict(network, data, split, batch_size=train.eval_batch_size, amp=train.amp).cpu()

        val_logits, test_logits = logits("val"), logits("test")
        record = loss_hook(loss, "record")
        extra = record() if record is not None else {}
        # a student's compute counts its teacher's: the networks trained to make it, and their seconds
        teacher = tpr if isinstance(tpr, Teacher) else None
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
            "compute": {"networks_trained": 1 + (len(teacher.labels) if teacher else 0), "networks_at_inference": 1,
                        "seconds_with_teachers": history.train_seconds + (teacher.train_seconds if teacher else 0.0)},
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


class Ensemble(Kind):
    name = "ensemble"
    reference = True  # K networks at inference: beside the methods, never selected among them

    def fingerprint(self, train, model, device):
        # what its members were trained with decides it: the study's loop and network (the replicate aside)
        setup = loop_fingerprint(train, model, device)
        setup["train"].pop("replicate", None)
        return setup

    def outcome(self, spec, method, data, seed, context):
        """The mean of the members' softmax outputs (:func:`average_probabilities`), as log-probabilities; its
        training seconds are the members' summed, and it runs ``size`` networks at inference."""
        size = spec.options_of(method)["size"]
        members = context.member_records(data.name, seed, size)
        saved = [load_artifact(context.results_dir, record) for record in members]
        seconds = float(sum(record["train_seconds"] for record in members))
        return {
            "val_logits": average_probabilities([s["val_logits"] for s in saved]),
            "test_logits": average_probabilities([s["test_logits"] for s in saved]),
            "history": None,
            "train_seconds": seconds,
            "loss_record": {"weights": None, "members": [record["method_label"] for record in members]},
            "model": {**members[0]["parameters"]["model"], "members": size,
                      "parameters": size * members[0]["parameters"]["model"].get("parameters", 0)},
            "compute": {"networks_trained": size, "networks_at_inference": size, "seconds_with_teachers": seconds},
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


TRAIN, FIT, POSTHOC, ENSEMBLE = TrainedLoss(), FittedModel(), PostHoc(), Ensemble()
KINDS: dict[str, Kind] = {kind.name: kind for kind in (TRAIN, FIT, POSTHOC, ENSEMBLE)}


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
