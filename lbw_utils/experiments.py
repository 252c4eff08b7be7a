"""A study is a set of independent runs: (dataset, method, seed) -> one run record.

Each run is idempotent: a finished record is read back instead of retrained,
so an interrupted study resumes where it stopped and a study can be fanned out
over processes, GPUs or cluster jobs and merged from the records.

Methods are small dicts, e.g. ``{"name": "baseline"}``,
``{"name": "static", "scheme": "peifer", "gamma": 4}``,
``{"name": "ema", "alpha": 0.01, "normalize": True}`` or
``{"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.01}``.
A static method takes its TPRs from the *validation* split of the baseline run
with the same seed; a post-hoc method adjusts the logits of an already trained
run (``"of"``, default the baseline) and never retrains.
"""

from __future__ import annotations

import importlib.util
import io
import json
import numbers
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lbw_utils import records
from lbw_utils.ceiling import ceiling
from lbw_utils.config import DEVICES
from lbw_utils.config import results_dir as default_results_root
from lbw_utils.data import DEFAULT_VAL_SIZE, IMAGE_DATASETS, load_image_dataset
from lbw_utils.files import atomic_write_bytes
from lbw_utils.losses import (METHODS, apply_logit_offsets, build_loss, check_method_options, fit_logit_offsets,
                              needs_baseline_tpr, resolve_fit)
from lbw_utils.metrics import summarize
from lbw_utils.models import CNN_SIZES, MODELS, cnn_options, make_model
from lbw_utils.names import load_names
from lbw_utils.train import TrainConfig, bf16_pays, fit, predict, seed_everything

DATASETS = IMAGE_DATASETS + ("names",)
BASELINE = {"name": "baseline"}


@dataclass
class DataOptions:
    """How to build a dataset; the split also depends on the run's seed."""

    dataset: str
    data_dir: str | None = None
    val_size: int | float | None = None  # image datasets only; None: data.DEFAULT_VAL_SIZE
    per_class: int | None = None
    classes: str | list[str] = "paper"  # names task only
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r} is not known; choose one of {DATASETS}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device={self.device!r} is not known; choose one of {DEVICES} (or 'cuda:N')")


@dataclass
class ModelOptions:
    name: str = "cnn"
    size: str = "small"
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here, not when the first run builds its network: a typo must stop a study
        # before any data is loaded or any run is trained.
        if self.name not in MODELS:
            raise ValueError(f"model={self.name!r} is not known; choose one of {MODELS}")
        if self.name == "cnn" and self.size not in CNN_SIZES:
            raise ValueError(f"model_size={self.size!r} is not a CNN size; choose one of {tuple(CNN_SIZES)}")


def load_data(options: DataOptions, seed: int):
    """The dataset for ``options``, split with ``seed``."""
    if options.dataset in IMAGE_DATASETS:
        val_size = DEFAULT_VAL_SIZE if options.val_size is None else options.val_size
        return load_image_dataset(options.dataset, data_dir=options.data_dir, val_size=val_size,
                                  per_class=options.per_class, seed=seed, device=options.device)
    return load_names(options.classes, data_dir=options.data_dir, per_class=options.per_class, seed=seed,
                      device=options.device)


def method_label(method: dict) -> str:
    """A readable, file-safe, unique name, e.g. ``static-peifer-gamma4``, ``ema-alpha0.01-norm``,
    ``baseline+posthoc-budget-drop0.01`` (post-hoc offsets on top of the baseline).

    The method's registry entry says which keys lead with their bare value (``label_leading``) and
    which are shortened (``label_short``); the other keys given follow alphabetically as
    ``<key><value>`` (``<key>`` for True). Keys left out of the dict stay out of the label."""
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
    if method["name"] == "posthoc":
        label = f"{method_label(method.get('of', BASELINE))}+{label}"
    return label


def run(method: dict, data, seed: int, results_dir: str | Path, *, train: TrainConfig,
        model: ModelOptions | None = None, redo: bool = False, progress: bool = True) -> dict:
    """Train (or post-hoc adjust) one run and write its record; skip it if already finished."""
    check_method(method)
    return _run(method, data, seed, results_dir, train=train, model=model, redo=redo, progress=progress)


def _run(method: dict, data, seed: int, results_dir, *, train: TrainConfig, model: ModelOptions | None,
         redo: bool, progress: bool) -> dict:
    """:func:`run` for a method already checked (``run_study`` checks every method before the first run)."""
    kind = METHODS[method["name"]].kind
    label = method_label(method)
    path = records.record_path(results_dir, data.name, label, seed)
    model = model or ModelOptions()
    fingerprint = run_fingerprint(method, data, train, model)
    if records.is_finished(path) and not redo:
        finished = records.read_record(path)
        _check_same_setup(finished, fingerprint, path)
        if progress:
            print(f"{REUSED_TAG} {run_outcome_line(finished)} (finished record {path.name})", flush=True)
        return finished
    if progress:
        print(f"{START_TAG} {data.name} / {label} / seed {seed}", flush=True)
    started = time.perf_counter()
    if kind == "posthoc":
        outcome = _posthoc_outcome(method, data, seed, results_dir)
    elif kind == "fit":
        outcome = _fit_outcome(method, data, seed, results_dir)
    else:
        outcome = _training_outcome(method, data, seed, results_dir, train, model, progress)
    record = _make_record(method, label, data, seed, outcome, train, time.perf_counter() - started)
    record["fingerprint"] = fingerprint
    record["ceiling"] = _test_ceiling(record, outcome, data, results_dir)
    if kind != "posthoc":  # a post-hoc run's logits are recomputed in a moment from the run it adjusts
        _save_artifact(results_dir, data.name, label, seed, outcome)
    records.write_record(path, record)
    if progress:
        print(f"{DONE_TAG} {run_outcome_line(record)}, {record['wall_seconds']:.1f} s", flush=True)
    return record


# Tags that start the progress lines of a run; lbw_utils.reproduce counts them in the notebooks' output.
PLAN_TAG, START_TAG, DONE_TAG, REUSED_TAG = "[plan]", "[run ]", "[done]", "[reused]"


def run_outcome_line(record: dict) -> str:
    """``dataset / method / seed k: test acc 0.917, worst-class TPR 0.810 (Shirt)``."""
    test = record["test"]
    return (f"{record['dataset']} / {record['method_label']} / seed {record['seed']}: test acc "
            f"{test['accuracy']:.3f}, worst-class TPR {test['worst_class_tpr']:.3f} ({test['worst_class']})")


def run_study(methods: list[dict], seeds: list[int], data_options: DataOptions, results_dir: str | Path, *,
              train: TrainConfig, model: ModelOptions | None = None, redo: bool = False,
              progress: bool = True) -> list[dict]:
    """Every method for every seed; the dataset is split (and loaded) once per seed.

    Every method and seed is checked before anything is loaded or trained, so a typo in the
    last method does not surface only after the first ones have trained.
    """
    seeds = check_seeds(seeds)
    for method in methods:
        check_method(method)
    finished = []
    total = len(seeds) * len(methods)
    if progress:
        print(f"{PLAN_TAG} {total} runs: {len(methods)} method(s) x {len(seeds)} seed(s)", flush=True)
    bar = _study_bar(total, data_options.dataset) if progress else None
    try:
        for seed in seeds:
            data = load_data(data_options, seed)
            for method in methods:
                finished.append(_run(method, data, seed, results_dir, train=train, model=model, redo=redo,
                                     progress=progress))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return finished


def _study_bar(total: int, dataset: str):
    """A progress bar over a study's runs where it renders as a widget: a Jupyter kernel (JupyterLab) with
    ipywidgets installed (``make lab`` installs them). None elsewhere: in a terminal or a log the
    ``[plan]``/``[run ]``/``[done]`` lines are the progress, and a text bar would add carriage returns to
    them. ``lbw_utils.reproduce`` sets ``TQDM_DISABLE`` for its kernels: their output is a log."""
    if (os.environ.get("TQDM_DISABLE") or "ipykernel.zmqshell" not in sys.modules
            or importlib.util.find_spec("ipywidgets") is None):
        return None
    from tqdm.notebook import tqdm

    return tqdm(total=total, desc=f"{dataset} runs", unit="run")


# Trained with a loss, fitted directly (kind "fit", e.g. the linear yardstick) or adjusted post hoc:
# all read from the registry (lbw_utils.losses.registry), the one list of methods.
METHOD_NAMES = tuple(METHODS)


def check_method(method) -> None:
    """Refuse a method dict that could not run: unknown name, key, scheme, objective or option value.

    The keys and values are checked against the registry's declaration of the method (its parameters
    and their allowed values), once, where the method enters; the run then trusts them. What only the
    data can refuse (e.g. the Q&A question's formula's division by a TPR of 0) is refused when the run builds it.
    """
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise ValueError(f"method={method!r} is not allowed: expected a dict whose 'name' is one of {METHOD_NAMES}")
    spec = check_method_options(method)
    if spec.kind == "posthoc" and "of" in method:
        base = method["of"]
        check_method(base)
        if METHODS[base["name"]].kind == "posthoc":
            adjustable = tuple(name for name in METHOD_NAMES if METHODS[name].kind != "posthoc")
            raise ValueError(f"method 'posthoc' adjusts a trained run; 'of' names another posthoc: {base!r}; "
                             f"allowed: one of {adjustable}")


def check_seeds(seeds) -> list[int]:
    """A non-empty list of distinct non-negative integers, or a ValueError saying so."""
    if isinstance(seeds, str):  # papermill's -p passes a list as a string
        raise ValueError(f"seeds={seeds!r} is a string; pass a list of non-negative integers, e.g. [0, 1, 2] "
                         "(papermill: -y 'seeds: [0, 1, 2]')")
    if isinstance(seeds, int):
        raise ValueError(f"seeds={seeds!r} must be a list of non-negative integers, e.g. [0, 1, 2]")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds):
        raise ValueError(f"seeds={seeds!r} must be a non-empty list of non-negative integers, e.g. [0, 1, 2]")
    seeds = [int(seed) for seed in seeds]  # numpy integers too, as plain ints for the JSON records
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} repeats a seed; each seed is one independent replicate")
    return seeds


def _training_outcome(method, data, seed, results_dir, train: TrainConfig, model_options: ModelOptions, progress):
    tpr = _baseline_val_tpr(results_dir, data.name, seed) if needs_baseline_tpr(method) else None
    # checked by check_method when the run started: built once here, not checked again
    loss = build_loss(method, data.num_classes, tpr=tpr, label_smoothing=train.label_smoothing)
    input_shape = getattr(data, "input_shape", None)
    # The initial weights come from the global RNG: seed it here, or a run's result would depend on
    # what the process ran before it (a resumed or fanned-out study would differ from a whole one).
    seed_everything(seed)
    network = make_model(model_options.name, num_classes=data.num_classes, input_shape=input_shape,
                         size=model_options.size, **model_options.options)
    history = fit(network, data, loss, train, seed=seed, progress=progress)
    val_logits = predict(network, data, "val", batch_size=train.eval_batch_size, amp=train.amp)
    test_logits = predict(network, data, "test", batch_size=train.eval_batch_size, amp=train.amp)
    extra = loss.record() if hasattr(loss, "record") else {}
    best = {"epoch": history.best_val_epoch, "val_logits": val_logits.cpu(), "test_logits": test_logits.cpu()}
    if history.best_val_epoch != train.epochs - 1:  # an earlier epoch validated best: evaluate its weights too
        last_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        network.load_state_dict(history.best_val_state)
        best["val_logits"] = predict(network, data, "val", batch_size=train.eval_batch_size, amp=train.amp).cpu()
        best["test_logits"] = predict(network, data, "test", batch_size=train.eval_batch_size, amp=train.amp).cpu()
        network.load_state_dict(last_state)
    return {
        "best_val": best,
        "val_logits": val_logits.cpu(),
        "test_logits": test_logits.cpu(),
        "state_dict": {k: v.cpu() for k, v in network.state_dict().items()},
        "history": history.to_dict(),
        "train_seconds": history.train_seconds,
        "loss_record": extra,
        "model": {"name": model_options.name, "size": model_options.size, **model_options.options,
                  "parameters": sum(p.numel() for p in network.parameters())},
    }


def _posthoc_outcome(method, data, seed, results_dir):
    """Offsets fitted on validation, applied to test; the record's validation scores are cross-fitted.

    Scored on the data they were fitted on, post-hoc offsets would look better on validation than any
    trained method, and "the best method by validation" would be post-hoc by construction. So the
    validation split is halved (stratified, seeded): offsets fitted on one half predict the other,
    and vice versa, and those out-of-half predictions make the record's validation metrics. The
    offsets applied to the test split are fitted on the whole validation split.
    """
    base = method.get("of", BASELINE)
    base_label = method_label(base)
    source = records.artifact_path(results_dir, data.name, base_label, seed)
    if not source.exists():
        raise FileNotFoundError(f"post-hoc offsets need the logits of run '{base_label}' (seed {seed}) at {source}; "
                                "run it first")
    saved = torch.load(source, map_location="cpu", weights_only=True)
    spec = METHODS["posthoc"]
    options = spec.with_defaults({k: v for k, v in method.items() if k in spec.parameters})
    options.pop("of")
    val_logits, val_targets = saved["val_logits"], data.labels("val").cpu()
    offsets = fit_logit_offsets(val_logits, val_targets, **options)
    cross_fitted = val_logits.clone()
    halves = _stratified_halves(val_targets, seed)
    for fit_on, predict_on in (halves, halves[::-1]):
        half_offsets = fit_logit_offsets(val_logits[fit_on], val_targets[fit_on], **options)
        cross_fitted[predict_on] = apply_logit_offsets(val_logits[predict_on], half_offsets)
    return {
        "val_logits": cross_fitted,
        "test_logits": apply_logit_offsets(saved["test_logits"], offsets),
        "history": None,
        "train_seconds": 0.0,
        "loss_record": {"offsets": offsets.tolist(), "adjusts": base_label,
                        "val_scores": "cross-fitted on two halves of the validation split"},
        "model": None,
    }


# What the function of a "fit" method returns (state_dict and best_val optional).
FIT_OUTCOME_KEYS = ("val_logits", "test_logits", "history", "train_seconds", "loss_record", "model")


def _fit_outcome(method, data, seed, results_dir):
    """A method of kind "fit": its registry entry's function fits it directly (no network, no ``fit``)."""
    spec = METHODS[method["name"]]
    tpr = _baseline_val_tpr(results_dir, data.name, seed) if needs_baseline_tpr(method) else None
    outcome = resolve_fit(spec)(method, data, seed, tpr)
    missing = [key for key in FIT_OUTCOME_KEYS if key not in outcome]
    if missing:
        raise ValueError(f"the fit function {spec.fit} of method {spec.name!r} returned no {missing}; "
                         f"it must return {FIT_OUTCOME_KEYS} (state_dict and best_val optional)")
    return outcome


def _stratified_halves(targets: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint index sets covering ``targets``, each holding half of every class (seeded)."""
    generator = torch.Generator().manual_seed(seed + 7_919)
    first, second = [], []
    for label in torch.unique(targets):
        members = torch.nonzero(targets == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        first.append(members[: len(members) // 2])
        second.append(members[len(members) // 2:])
    return torch.cat(first), torch.cat(second)


def _baseline_val_tpr(results_dir, dataset: str, seed: int) -> list[float]:
    path = records.record_path(results_dir, dataset, method_label(BASELINE), seed)
    if not records.is_finished(path):
        raise FileNotFoundError(f"static weights need the baseline's validation TPRs for seed {seed}, but {path} "
                                "does not exist; run the baseline first (notebook 01_baseline)")
    return records.read_record(path)["val"]["tpr"]


# Options that change how a run is watched or how fast it goes, not what it learns.
_NOT_IN_FINGERPRINT = ("track_train_tpr", "eval_batch_size", "compile")


def run_fingerprint(method: dict, data, train: TrainConfig, model: ModelOptions) -> dict:
    """What determines a run's result; a finished record is reused only when it matches."""
    setup = {"method": dict(method), "data": data.describe()}
    if METHODS[method["name"]].kind == "train":  # the others do not train with the loop's settings
        setup["train"] = {k: v for k, v in train.to_dict().items() if k not in _NOT_IN_FINGERPRINT}
        # A CNN's stem is named even when it is its size's default: records made before the whitening stem
        # have no "stem" and are not reused.
        options = cnn_options(model.size, model.options) if model.name == "cnn" else model.options
        setup["model"] = {"name": model.name, "size": model.size, **options}
    return json.loads(json.dumps(setup))  # the form it takes in a JSON record


def _check_same_setup(record: dict, fingerprint: dict, path: Path) -> None:
    stored = record.get("fingerprint")
    if stored is None or stored == fingerprint:
        return
    changed = sorted(
        f"{part}.{key}" for part in fingerprint if isinstance(fingerprint[part], dict)
        for key in set(fingerprint[part]) | set(stored.get(part, {}))
        if fingerprint[part].get(key) != stored.get(part, {}).get(key)
    )
    raise ValueError(f"the finished run record {path} was made with other settings "
                     f"({', '.join(changed) or 'different'}); rerun with redo=True to replace it, or use another "
                     "results_dir")


def _make_record(method, label, data, seed, outcome, train: TrainConfig, wall_seconds) -> dict:
    def summaries(logits: dict) -> dict:
        return {split: summarize(data.labels(split).cpu(), logits[f"{split}_logits"].argmax(1), data.num_classes,
                                 data.classes) for split in ("val", "test")}

    last = summaries(outcome)
    record = {
        "schema_version": records.SCHEMA_VERSION,
        "dataset": data.name,
        "method": dict(method),
        "method_label": label,
        "seed": seed,
        "classes": list(data.classes),
        "test": last["test"],
        "val": last["val"],
        "weights": outcome["loss_record"],
        "history": outcome["history"],
        "parameters": {"train": train.to_dict(), "model": outcome["model"], "data": data.describe()},
        "train_seconds": outcome["train_seconds"],
        "wall_seconds": wall_seconds,
        "device": str(data.device),
        # Whether training ran under bf16 autocast: `amp` asks for it, but the hardware decides
        # (CUDA, or a CPU with native bf16), and the numbers differ between the two paths.
        "autocast": ("bfloat16" if METHODS[method["name"]].kind == "train" and train.amp
                     and bf16_pays(data.device) else None),
        "environment": records.environment(),
        "data_checksums": data.checksums(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    best = outcome.get("best_val")
    if best is not None:
        # The checkpoint with the best validation accuracy (CDB's official protocol keeps it); the
        # record's "val"/"test" stay the last epoch's: which one a table reports is a named choice.
        record["best_val"] = {"epoch": best["epoch"], **summaries(best)}
    return record


def _test_ceiling(record: dict, outcome: dict, data, results_dir) -> dict | None:
    """The ceiling of re-deciding for this run (:mod:`lbw_utils.ceiling`: offsets fitted on the test split,
    within the budget counted from the same seed's baseline); None while that baseline has no record."""
    if record["method_label"] == method_label(BASELINE):
        baseline_accuracy = record["test"]["accuracy"]
    else:
        path = records.record_path(results_dir, data.name, method_label(BASELINE), record["seed"])
        if not records.is_finished(path):
            return None
        baseline_accuracy = records.read_record(path)["test"]["accuracy"]
    return ceiling(outcome["test_logits"], data.labels("test"), baseline_accuracy)


def _save_artifact(results_dir, dataset, label, seed, outcome) -> None:
    buffer = io.BytesIO()
    # A "fit" method may have no state_dict: its artifact then holds only its logits.
    torch.save({key: outcome[key] for key in ("val_logits", "test_logits", "state_dict") if key in outcome}, buffer)
    atomic_write_bytes(records.artifact_path(results_dir, dataset, label, seed), buffer.getvalue())


# The notebook parameters that DataOptions and TrainConfig take; one left out or None keeps the default
# its dataclass declares (the one home of each default).
DATA_PARAMETERS = ("data_dir", "val_size", "per_class", "classes", "device")
TRAIN_PARAMETERS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "label_smoothing", "augment",
                    "track_train_tpr", "amp", "compile")


def _given(params: dict, keys: tuple[str, ...]) -> dict:
    return {key: params[key] for key in keys if params.get(key) is not None}


@dataclass
class Settings:
    """The parameters every training notebook shares, turned into validated objects."""

    data: DataOptions
    train: TrainConfig
    model: ModelOptions
    seeds: list[int]
    results_dir: Path
    redo: bool = False

    @classmethod
    def from_params(cls, params: dict) -> "Settings":
        """Build from a notebook's parameters (extra notebook-specific keys are ignored)."""
        seeds = check_seeds(params.get("seeds", [0]))
        data = DataOptions(params["dataset"], **_given(params, DATA_PARAMETERS))
        train = TrainConfig.from_dict(_given(params, TRAIN_PARAMETERS))
        default_model = "name_rnn" if data.dataset == "names" else "cnn"
        size = params.get("model_size")
        model = ModelOptions(name=params.get("model") or default_model, options=dict(params.get("model_options") or {}),
                             size=ModelOptions.size if size is None else size)
        folder = results_folder(params.get("results_dir"))
        return cls(data, train, model, seeds, folder, bool(params.get("redo", False)))

    def figure_path(self, dataset: str, name: str) -> Path:
        return figure_path(self.results_dir, dataset, name)

    def table_path(self, dataset: str, name: str) -> Path:
        return table_path(self.results_dir, dataset, name)

    def run_study(self, methods: list[dict], progress: bool = True) -> list[dict]:
        return run_study(methods, self.seeds, self.data, self.results_dir, train=self.train, model=self.model,
                         redo=self.redo, progress=progress)


def results_folder(override: str | Path | None = None) -> Path:
    """A notebook's results folder: the parameter, else ``$LBW_RESULTS_DIR`` or ``results/``, + ``lab``."""
    return Path(override) if override else default_results_root() / "lab"


def figure_path(folder: str | Path, dataset: str, name: str) -> Path:
    return Path(folder) / "figures" / dataset / name


def table_path(folder: str | Path, dataset: str, name: str) -> Path:
    return Path(folder) / "tables" / dataset / name


def load_trained_model(results_dir: str | Path, record: dict, data=None):
    """Rebuild a run's network from its record and load the weights saved beside it (eval mode)."""
    spec = dict(record["parameters"]["model"])
    spec.pop("parameters", None)
    name, size = spec.pop("name"), spec.pop("size")
    input_shape = record["parameters"]["data"].get("input_shape")
    network = make_model(name, num_classes=len(record["classes"]), input_shape=input_shape, size=size, **spec)
    path = records.artifact_path(results_dir, record["dataset"], record["method_label"], record["seed"])
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    if data is not None:
        network.to(data.device)
    return network.eval()
