"""The one training loop every notebook uses, and batched prediction.

Design choices, each for speed or fairness:
- the data already sits on the device; a batch is an index into it;
- no host-device synchronisation inside a step: losses are summed on the
  device and read once per epoch;
- any ``loss(logits, targets)`` callable plugs in; the optional hooks a loss may
  define to see validation predictions or steer the loop (``on_epoch_end``,
  ``on_validation`` every ``validation_every`` steps, ``augment_classes``, a teacher's ``see_inputs``,
  CLAM's ``on_train_accuracy``) are described once, in :class:`LossHooks` below;
- mixed precision by capability, decided in one place with the other speed
  tricks (:mod:`lbw_utils.speed`);
- the learning rate follows a one-cycle or triangular schedule stepped per batch.
"""

from __future__ import annotations

import copy
import inspect
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Protocol

import numpy as np
import torch
from torch import nn

from lbw_utils.checks import check_bool, check_positive_int
from lbw_utils.data.images import AUGMENTATION_POLICIES
from lbw_utils.metrics import per_class_tpr
from lbw_utils.speed import autocast, keep_freed_memory, make_grad_scaler, scaled_step

OPTIMIZERS = ("sgd", "adamw")
AUGMENTATIONS = ("dataset", *AUGMENTATION_POLICIES)
SCHEDULES = ("triangular", "onecycle", "constant", "step")
# "step": the names author's decay (nec-experiments, src/final_model/train_stats.json "lr-schedule"):
# the rate times 0.9875 every 100 steps, no warm-up.
STEP_DECAY, STEP_INTERVAL = 0.9875, 100


@dataclass
class TrainConfig:
    """Everything that shapes one training run; stored whole in its run record.

    Each default here is the study's one default: a notebook run without parameters trains with it, and a
    profile (``lbw_utils/runner/profiles/*.yaml``) or a names model configuration names what its regime changes.
    Every field is a notebook parameter of the same name (``experiments.TRAIN_PARAMETERS``, read from the
    fields) and part of a run's fingerprint: a new one reaches the notebooks with no other edit, and asks only
    for a new ``methods.kinds.FINGERPRINT_VERSION``."""

    epochs: int = 5
    batch_size: int = 256
    optimizer: str = "sgd"  # SGD with Nesterov momentum, or AdamW
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "triangular"
    warmup_fraction: float = 0.2
    label_smoothing: float = 0.1
    augment: bool = True
    # Which augmentation ``augment`` applies: "dataset" (the recipe the dataset registered) or a named policy of
    # image data (lbw_utils.data.images.AUGMENTATION_POLICIES: flip, flip+crop, flip+crop+erase, erase).
    augmentation: str = "dataset"
    eval_batch_size: int = 2048
    track_train_tpr: bool = False  # evaluate a fixed training subset each epoch too
    amp: bool = True  # mixed precision where it pays: see autocast_dtype (bf16, else fp16 on CUDA, else fp32)
    compile: bool = False  # torch.compile the model for the training steps
    # Exponential moving average of the weights, evaluated instead of the last weights (0: off); the decay per
    # step, warmed up as min(decay, (1 + t) / (10 + t)). Set by the "average" method (lbw_utils.methods.frontier).
    average_weights: float = 0.0
    # Which independent training of the same split: 0 draws the training randomness (initial weights, batch order,
    # augmentation) from the run's seed, k >= 1 from a seed derived from it (training_seed); the split stays the
    # seed's. Set by the "member" method (lbw_utils.methods.ensemble): an ensemble's members are replicates.
    replicate: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("amp", "compile", "augment"):
            check_bool(name, getattr(self, name))
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation={self.augmentation!r} is not one of {AUGMENTATIONS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {SCHEDULES}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr!r} must be a positive number")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing!r} must lie in [0, 1)")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction={self.warmup_fraction!r} must lie in [0, 1)")
        if isinstance(self.replicate, bool) or not isinstance(self.replicate, int) or self.replicate < 0:
            raise ValueError(f"replicate={self.replicate!r} must be an integer >= 0 (0: the seed's own training)")
        if isinstance(self.average_weights, bool) or not 0 <= self.average_weights < 1:
            raise ValueError(f"average_weights={self.average_weights!r} must lie in [0, 1) (0: no weight averaging)")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """Per-epoch curves of one run; ``val_tpr[e]`` is the per-class TPR after epoch e."""

    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_tpr: list[list[float]] = field(default_factory=list)
    train_tpr: list[list[float]] = field(default_factory=list)
    # On the same fixed training subset (track_train_tpr): per class, the mean logit margin
    # (own logit minus the largest other) and the mean plain cross-entropy, whatever the loss trained.
    train_margin: list[list[float]] = field(default_factory=list)
    train_subset_ce: list[list[float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    best_val_epoch: int = -1  # the epoch of the highest validation accuracy (the first, on ties)
    # That epoch's weights (a CPU copy), for reporting the best-validation checkpoint; not in records.
    best_val_state: dict | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "best_val_state"}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the generator that orders the batches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# Replicate k of a seed trains with seed + k * REPLICATE_STRIDE: far from every seed a study uses (0-102), so no
# replicate repeats another seed's training randomness.
REPLICATE_STRIDE = 1_000_033


def training_seed(seed: int, replicate: int = 0) -> int:
    """The seed of a run's training randomness: its own for replicate 0, a derived one for replicate k >= 1."""
    return seed + replicate * REPLICATE_STRIDE


def fit(
    model: nn.Module,
    data,
    loss_fn=None,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``data``'s training split; evaluate the validation split every epoch."""
    config = config or TrainConfig()
    keep_freed_memory()
    generator = seed_everything(seed)
    device = data.device
    # channels_last suits oneDNN (CPU) and cuDNN alike; it only touches 4-D conv weights.
    model.to(device, memory_format=torch.channels_last)
    # A model may set part of itself from the training images first (the CNN's frozen whitening stem).
    if hasattr(model, "init_from_data"):
        model.init_from_data(data)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    step_fn = torch.compile(model) if config.compile else model
    # fp16 autocast (a CUDA GPU without native bf16) needs loss scaling: small fp16 gradients underflow to 0.
    scaler = make_grad_scaler(device, config.amp)
    steps_per_epoch = math.ceil(data.size("train") / config.batch_size)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch * config.epochs)
    train_probe = _train_probe(data, config, seed)
    # A loss that follows validation within an epoch (e.g. min-recall every k steps) sees a fixed slice.
    validation_every = loss_hook(loss_fn, "validation_every")
    val_probe = _val_probe(data, config) if validation_every else None
    # A loss may name the classes whose examples are augmented (class-targeted augmentation); else all are.
    augment_classes = loss_hook(loss_fn, "augment_classes")
    batch_options = {"augment": config.augment}
    if config.augmentation != "dataset":
        if "augmentation" not in inspect.signature(data.batches).parameters:
            raise ValueError(f"augmentation={config.augmentation!r} is a policy of image data; "
                             f"{type(data).__name__} has only its own augmentation ('dataset')")
        batch_options["augmentation"] = config.augmentation
    if augment_classes is not None:
        if "augment_classes" not in inspect.signature(data.batches).parameters:
            raise ValueError(f"class-targeted augmentation needs image data; {type(data).__name__} "
                             "has no per-class augmentation")
        batch_options["augment_classes"] = augment_classes.to(device)  # booleans, or a probability per class
        batch_options["targeted_augmentation"] = loss_hook(loss_fn, "targeted_augmentation") or "dataset"
    # A distillation loss runs its teacher on each batch's inputs; CLAM reads the per-class training accuracy.
    see_inputs = loss_hook(loss_fn, "see_inputs")
    on_train_accuracy = loss_hook(loss_fn, "on_train_accuracy")
    averaged = WeightAverage(model, config.average_weights) if config.average_weights else None
    evaluated = model if averaged is None else averaged.model
    history = History()
    step = 0
    started = time.perf_counter()
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        model.train()
        if isinstance(loss_fn, nn.Module):
            loss_fn.train()
        loss_sum = torch.zeros((), device=device)
        for inputs, targets in data.batches("train", config.batch_size, shuffle=True, generator=generator,
                                            **batch_options):
            if see_inputs is not None:
                see_inputs(inputs)
            with autocast(device, config.amp):
                logits = step_fn(*inputs)
            loss = loss_fn(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
                scheduler.step()
            else:
                scaled_step(scaler, loss, optimizer, scheduler)
            if averaged is not None:
                averaged.update(step)
            loss_sum += loss.detach() * len(targets)
            step += 1
            if validation_every and step % validation_every == 0:
                loss_fn.on_validation(step, _logits_for(model, val_probe[0], config), val_probe[1])
                model.train()
        if averaged is not None:
            averaged.copy_buffers(model)
        if on_train_accuracy is not None:
            on_train_accuracy(epoch, _training_tpr(model, data, config, batch_options, generator))
        val_logits = predict(evaluated, data, "val", batch_size=config.eval_batch_size, amp=config.amp)
        _record_epoch(history, data, loss_fn, evaluated, config, epoch, loss_sum, val_logits, train_probe)
        if history.best_val_epoch < 0 or history.val_accuracy[-1] > history.val_accuracy[history.best_val_epoch]:
            history.best_val_epoch = epoch
            history.best_val_state = {k: v.detach().to("cpu", copy=True) for k, v in evaluated.state_dict().items()}
        history.epoch_seconds.append(time.perf_counter() - epoch_start)
        if progress:
            _print_epoch(history, data, epoch, config.epochs)
    if averaged is not None:  # the run is the averaged network: predictions and the saved weights are its
        model.load_state_dict(averaged.model.state_dict())
    history.train_seconds = time.perf_counter() - started
    return history


class WeightAverage:
    """An exponential moving average of a network's weights: after step ``t``, ``avg <- d * avg + (1 - d) * w``
    with ``d = min(decay, (1 + t) / (10 + t))``, the rule of TensorFlow's ``tf.train.ExponentialMovingAverage``
    given ``num_updates``, so the first weights fade fast. Buffers (BatchNorm's running statistics, themselves
    averages) are copied from the network before each evaluation rather than averaged."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self._mine = [p for p in self.model.parameters()]
        self._theirs = [p for p in model.parameters()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the network's weights after training step ``step`` (from 0)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self._mine, [p.detach() for p in self._theirs], 1 - decay)

    @torch.no_grad()
    def copy_buffers(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)


def _record_epoch(history, data, loss_fn, model, config, epoch, loss_sum, val_logits, train_probe) -> None:
    val_targets = data.labels("val")
    val_tpr = per_class_tpr(val_targets, val_logits.argmax(1), data.num_classes)
    history.train_loss.append(float(loss_sum) / data.size("train"))
    history.val_accuracy.append(float((val_logits.argmax(1) == val_targets).float().mean()))
    history.val_tpr.append([float(value) for value in val_tpr])
    if train_probe is not None:
        probe_logits = _logits_for(model, train_probe[0], config)
        history.train_tpr.append(
            [float(value) for value in per_class_tpr(train_probe[1], probe_logits.argmax(1), data.num_classes)]
        )
        margin, cross_entropy = _per_class_margin_and_ce(probe_logits, train_probe[1], data.num_classes)
        history.train_margin.append(margin)
        history.train_subset_ce.append(cross_entropy)
    on_epoch_end = loss_hook(loss_fn, "on_epoch_end")
    if on_epoch_end is not None:
        on_epoch_end(epoch, val_logits, val_targets)


class LossHooks(Protocol):
    """What the training loop (:func:`lbw_utils.train.fit`) and the run record ask of a loss: the one
    description of the hooks.

    A loss is called as ``loss(logits, targets)`` with float logits ``[B, C]`` and int64 targets ``[B]`` and
    returns a scalar; the forward pass never waits for the device (no ``.item()``, no Python loop over classes),
    so the loop stays asynchronous on a GPU, and under autocast the loss is computed in float32. Every member
    below is optional: a loss defines those it needs, and the loop looks each up by name (``getattr``) and
    skips what a loss lacks, so any ``loss(logits, targets)`` callable (``nn.CrossEntropyLoss``) trains too.
    """

    #: Attribute: a number of training steps; ``fit`` then calls :meth:`on_validation` every that many steps
    #: (min-recall with ``every=<steps>``). None or absent: never.
    validation_every: int | None

    #: Attribute: a boolean tensor ``[C]``, the classes whose training examples are augmented (class-targeted
    #: augmentation; image data only), or a float tensor ``[C]``, each class's probability that an example of it
    #: is augmented (class-conditional strength). None or absent: the study's ``augment`` setting for every class.
    augment_classes: torch.Tensor | None
    #: Attribute, with ``augment_classes``: the augmentation policy those classes get ("dataset" when absent; the
    #: other classes keep the study's ``augment`` and ``augmentation``).
    targeted_augmentation: str | None

    def on_validation(self, step: int, val_logits: torch.Tensor, val_targets: torch.Tensor) -> None:
        """Every ``validation_every`` training steps, with the logits of a fixed validation slice (the first
        2,000 examples) and their targets; the network is back in training mode afterwards."""

    def on_epoch_end(self, epoch: int, val_logits: torch.Tensor, val_targets: torch.Tensor) -> None:
        """After every epoch (from 0), with the logits of the whole validation split and its targets
        (CDB's weights, min-recall per epoch)."""

    def see_inputs(self, inputs: tuple) -> None:
        """Before every training step, with the batch's network inputs (as augmented): a distillation loss runs
        its teacher on them and keeps the teacher's outputs for the call that follows."""

    def on_train_accuracy(self, epoch: int, train_tpr: torch.Tensor) -> None:
        """After every epoch (from 0), with the per-class accuracy on the whole training split, augmented as
        training augments it, in eval mode (CLAM's class weights)."""

    def record(self) -> dict:
        """JSON-serialisable data for the run record, read once after training: always a ``"weights"`` entry
        (None for an unweighted loss) and, for a loss whose weights change during training, a ``"trajectory"``."""


# Every hook LossHooks describes, read from it (attributes and methods alike), so the loop asks for no other.
LOSS_HOOKS = tuple(LossHooks.__annotations__) + tuple(name for name, member in vars(LossHooks).items()
                                                      if callable(member) and not name.startswith("_"))


def loss_hook(loss_fn, name: str):
    """The hook ``name`` of :class:`LossHooks` as ``loss_fn`` defines it, or None: every hook is optional (a
    plain ``nn.CrossEntropyLoss`` defines none)."""
    if name not in LOSS_HOOKS:
        raise ValueError(f"loss hook {name!r} is not known: expected one of {LOSS_HOOKS}")
    return getattr(loss_fn, name, None)


def _per_class_margin_and_ce(logits: torch.Tensor, targets: torch.Tensor, num_classes: int
                             ) -> tuple[list[float], list[float]]:
    """Per class: the mean logit margin ``z_y - max_{k != y} z_k`` and the mean unweighted cross-entropy of its
    examples (NaN for a class with none): what an importance weight can still act on once TPR reaches 1."""
    logits, targets = logits.float(), targets.to(logits.device)
    own = logits.gather(1, targets[:, None]).squeeze(1)
    rivals = logits.scatter(1, targets[:, None], float("-inf")).max(dim=1).values
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    counts = torch.bincount(targets, minlength=num_classes).double()

    def class_mean(values: torch.Tensor) -> list[float]:
        sums = torch.zeros(num_classes, dtype=torch.float64, device=values.device).index_add_(
            0, targets, values.double())
        return [float(value) for value in (sums / counts).cpu()]  # 0 / 0 -> NaN for an absent class

    return class_mean(own - rivals), class_mean(losses)


def _train_probe(data, config: TrainConfig, seed: int):
    """A fixed, un-augmented slice of training batches (as large as validation) to track train TPR.

    It has its own generator so that tracking never changes the training run itself.
    """
    if not config.track_train_tpr:
        return None
    probe_generator = torch.Generator().manual_seed(seed + 1_000_003)
    return _first_examples(data.batches("train", config.eval_batch_size, shuffle=True, generator=probe_generator),
                           data.size("val"))


@torch.no_grad()
def _training_tpr(model: nn.Module, data, config: TrainConfig, batch_options: dict,
                  generator: torch.Generator) -> torch.Tensor:
    """Per-class accuracy on the whole training split, augmented as training augments it, in eval mode (CLAM's
    train_CV.py evaluates its train loader, whose transforms augment, after every epoch)."""
    model.eval()
    predicted, targets = [], []
    for inputs, batch_targets in data.batches("train", config.eval_batch_size, shuffle=False, generator=generator,
                                              **batch_options):
        with autocast(data.device, config.amp):
            predicted.append(model(*inputs).argmax(1))
        targets.append(batch_targets)
    return per_class_tpr(torch.cat(targets).cpu(), torch.cat(predicted).cpu(), data.num_classes)


def _val_probe(data, config: TrainConfig, size: int = 2000):
    """The first ``size`` validation examples (the split is already shuffled and stratified), in batches."""
    return _first_examples(data.batches("val", min(config.eval_batch_size, size)), size)


def _first_examples(batches, wanted: int):
    """(input batches, their targets concatenated) of the first batches holding at least ``wanted`` examples."""
    inputs_kept, targets, seen = [], [], 0
    for inputs, batch_targets in batches:
        inputs_kept.append(inputs)
        targets.append(batch_targets)
        seen += len(batch_targets)
        if seen >= wanted:
            break
    return inputs_kept, torch.cat(targets)


@torch.no_grad()
def _logits_for(model: nn.Module, batches, config: TrainConfig) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for inputs in batches:
        with autocast(device, config.amp):
            outputs.append(model(*inputs).float())
    return torch.cat(outputs)


@torch.no_grad()
def predict(model: nn.Module, data, split: str, *, batch_size: int = TrainConfig.eval_batch_size,
            amp: bool = TrainConfig.amp) -> torch.Tensor:
    """Float32 logits for every example of ``split``, in split order, on the data's device."""
    model.eval()
    outputs = []
    for inputs, _ in data.batches(split, batch_size):
        with autocast(data.device, amp):
            outputs.append(model(*inputs).float())
    return torch.cat(outputs)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD-Nesterov or AdamW as ``config`` says, weight decay on weight matrices and kernels only."""
    # No weight decay on BatchNorm and bias parameters: decaying them only hurts.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        # foreach: one kernel per step for all parameters, the same values as the per-parameter loop (checked).
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, foreach=True)
    # The fused kernel updates all parameters in one pass: about 8x faster than the default on CPU for the
    # names model's 4 M-entry n-gram table, same update rule.
    return torch.optim.AdamW(groups, lr=config.lr, fused=True)


def make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    """The per-step learning-rate schedule of ``config``: warm-up, then a linear decay (triangular), a cosine
    decay (onecycle) or a constant rate; or, without warm-up, a step decay (``STEP_DECAY`` every
    ``STEP_INTERVAL`` steps)."""
    warmup = max(1, round(config.warmup_fraction * total_steps))

    def triangular(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    def onecycle(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    factor = {"triangular": triangular, "onecycle": onecycle, "constant": lambda step: 1.0,
              "step": lambda step: STEP_DECAY ** (step // STEP_INTERVAL)}[config.schedule]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _print_epoch(history: History, data, epoch: int, epochs: int) -> None:
    # One line per epoch reads well both in JupyterLab and in papermill's log.
    tpr = history.val_tpr[-1]
    worst = int(np.nanargmin(tpr))
    print(
        f"epoch {epoch + 1:>3}/{epochs}  loss {history.train_loss[-1]:.4f}  "
        f"val acc {history.val_accuracy[-1]:.4f}  worst TPR {tpr[worst]:.3f} ({data.classes[worst]})  "
        f"{history.epoch_seconds[-1]:.1f}s",
        file=sys.stdout,
        flush=True,
    )
