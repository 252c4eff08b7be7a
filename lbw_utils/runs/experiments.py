"""A study is a set of independent runs: (dataset, method, seed) -> one run record.

Each run is idempotent: a finished record is read back instead of retrained,
so an interrupted study resumes where it stopped and a study can be fanned out
over processes, GPUs or cluster jobs and merged from the records.

Methods are small dicts, e.g. ``{"name": "baseline"}``,
``{"name": "static", "scheme": "mean-ratio", "gamma": 4}``,
``{"name": "ema", "alpha": 0.01, "normalize": True}`` or
``{"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.01}``.
A static method takes its TPRs from the *validation* split of the baseline run
with the same seed; a post-hoc method adjusts the logits of an already trained
run (``"of"``, default the baseline) and never retrains.

How a method runs is its registry entry's kind's business (:mod:`lbw_utils.methods.kinds`): this module
asks the kind for the run's outcome, its fingerprint and its record's autocast field, and never tests
which kind it is. The labels and the checks of method dicts are the registry's too (re-exported here).
Likewise a dataset is its registration (:mod:`lbw_utils.data`): how it loads, the options it takes, its
default network; this module never tests a dataset's name.
"""

from __future__ import annotations

import dataclasses
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
from lbw_utils.data import check_folds, dataset_registration
from lbw_utils.files import atomic_write_bytes
from lbw_utils.methods import METHODS, RunContext, check_method, method_label  # the last two re-exported
from lbw_utils.methods.kinds import BASELINE, network_of  # BASELINE re-exported: the notebooks' {"name": "baseline"}
from lbw_utils.metrics import summarize
from lbw_utils.models import CNN_SIZES, MODELS
from lbw_utils.runs import events
from lbw_utils.train import TrainConfig


@dataclass
class DataOptions:
    """How to build a dataset; the split also depends on the run's seed.

    Besides ``dataset`` and ``device``, each field is an option some datasets take (their registration's
    ``options``): left None, it becomes that dataset's default (its loader's); given to a dataset that does
    not take it, it is refused."""

    dataset: str
    data_dir: str | None = None
    val_size: int | float | None = None  # images held out for validation: a count or a fraction of the pool
    per_class: int | None = None  # examples kept per class, for tiny runs
    classes: str | list[str] | None = None  # which classes (the names task: "paper", "all" or a list)
    device: str = "auto"
    folds: int | None = None  # k-fold cross-fitting: the run's seed is the fold index
    partition_seed: int | None = None  # which k-fold partition
    name_switch: float | None = None  # share of training names the names task's augmentation rewrites
    tuning_share: float | None = None  # names: share of each class's names set aside for tuning, never evaluated

    def __post_init__(self) -> None:
        registration = dataset_registration(self.dataset)
        unknown = [name for name in registration.options if name not in DATASET_OPTIONS]
        if unknown:
            raise ValueError(f"dataset {self.dataset!r} is registered with options {unknown} that DataOptions does "
                             f"not have; a dataset's options are among {DATASET_OPTIONS}")
        given = [name for name in DATASET_OPTIONS if getattr(self, name) is not None]
        refused = [name for name in given if name not in registration.options]
        if refused:
            raise ValueError(f"{refused[0]}={getattr(self, refused[0])!r} does not apply to dataset="
                             f"{self.dataset!r}: it takes {registration.options} (and device)")
        for name, default in registration.defaults().items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        check_folds(self.folds)
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
    """The dataset for ``options``, split with ``seed``: its registration's loader with the options it takes."""
    registration = dataset_registration(options.dataset)
    return registration.load(seed=seed, device=options.device,
                             **{name: getattr(options, name) for name in registration.options})


def run(method: dict, data, seed: int, results_dir: str | Path, *, train: TrainConfig,
        model: ModelOptions | None = None, redo: bool = False, progress: bool = True) -> dict:
    """Train (or post-hoc adjust) one run and write its record; skip it if already finished."""
    check_method(method)
    return _run(method, data, seed, results_dir, train=train, model=model, redo=redo, progress=progress)


def _run(method: dict, data, seed: int, results_dir, *, train: TrainConfig, model: ModelOptions | None,
         redo: bool, progress: bool) -> dict:
    """:func:`run` for a method already checked (``run_study`` checks every method before the first run)."""
    spec = METHODS[method["name"]]
    label = method_label(method)
    path = records.record_path(results_dir, data.name, label, seed)
    model = model or ModelOptions()
    # A method that changes the loop or the network (weight averaging, a larger CNN) runs with its changes;
    # its record and fingerprint hold the settings it ran with.
    train_changes, model_changes = spec.changes(method, train, model)
    if train_changes:
        train = dataclasses.replace(train, **train_changes)
    if model_changes:
        model = dataclasses.replace(model, **model_changes)
    fingerprint = run_fingerprint(method, data, train, model)
    identity = events.run_identity(data.name, label, seed)
    if records.is_finished(path) and not redo:
        finished = records.read_record(path)
        _check_same_setup(finished, fingerprint, path)
        if progress:
            print(f"{REUSED_TAG} {run_outcome_line(finished)} (finished record {path.name})", flush=True)
            events.emit("reused", run=identity)
        return finished
    if progress:
        print(f"{START_TAG} {identity}", flush=True)
    started = time.perf_counter()
    context = RunContext(Path(results_dir), train, model, progress, method_label)
    outcome = spec.kind.outcome(spec, method, data, seed, context)
    record = _make_record(method, label, data, seed, outcome, train, time.perf_counter() - started)
    record["fingerprint"] = fingerprint
    record["ceiling"] = _test_ceiling(record, outcome, data)
    if spec.kind.keeps_artifact:
        _save_artifact(results_dir, data.name, label, seed, {**outcome, "test_targets": data.labels("test").cpu()})
    records.write_record(path, record)
    if progress:
        print(f"{DONE_TAG} {run_outcome_line(record)}, {record['wall_seconds']:.1f} s", flush=True)
        events.emit("done", run=identity, seconds=record["wall_seconds"])
    return record


# Tags that start the progress lines of a run, for people; programs read the event lines (lbw_utils.runs.events).
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
    check_folds(data_options.folds, seeds)
    for method in methods:
        check_method(method)
    finished = []
    total = len(seeds) * len(methods)
    if progress:
        print(f"{PLAN_TAG} {total} runs: {len(methods)} method(s) x {len(seeds)} seed(s)", flush=True)
        events.emit("plan", runs=total, methods=len(methods), seeds=len(seeds))
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
    them. ``lbw_utils.runner.reproduce`` sets ``TQDM_DISABLE`` for its kernels: their output is a log."""
    if (os.environ.get("TQDM_DISABLE") or "ipykernel.zmqshell" not in sys.modules
            or importlib.util.find_spec("ipywidgets") is None):
        return None
    from tqdm.notebook import tqdm

    return tqdm(total=total, desc=f"{dataset} runs", unit="run")


# Trained with a loss, fitted directly (kind "fit", e.g. the linear yardstick) or adjusted post hoc:
# all read from the registry (lbw_utils.methods.registry), the one list of methods.
METHOD_NAMES = tuple(METHODS)


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


def run_fingerprint(method: dict, data, train: TrainConfig, model: ModelOptions) -> dict:
    """What determines a run's result; a finished record is reused only when it matches."""
    # the kind adds the fingerprint's version and, where they count, the loop's and the network's settings
    setup = {"method": dict(method), "data": data.describe(),
             **METHODS[method["name"]].kind.fingerprint(train, model, data.device)}
    return json.loads(json.dumps(setup))  # the form it takes in a JSON record


def _check_same_setup(record: dict, fingerprint: dict, path: Path) -> None:
    stored = record.get("fingerprint")
    if stored is None or stored == fingerprint:
        return
    if stored.get("version") != fingerprint["version"]:  # the first fingerprints had no version: 1
        raise ValueError(f"the finished run record {path} was made under fingerprint version "
                         f"{stored.get('version', 1)}, and this code's is {fingerprint['version']} (what determines a "
                         "run has changed since); rerun with redo=True to replace it, or use another results_dir")
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
        # The precision training ran in (the kind says: see Kind.autocast).
        "autocast": METHODS[method["name"]].kind.autocast(train, data.device),
        "environment": records.environment(),
        "data_checksums": data.checksums(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if not METHODS[method["name"]].is_row:  # part of another row (an ensemble's member): no row of the tables
        record["row"] = False
    if "compute" in outcome:  # networks trained to make it and run at inference, seconds with a teacher's
        record["compute"] = outcome["compute"]
    best = outcome.get("best_val")
    if best is not None:
        # The checkpoint with the best validation accuracy (CDB's official protocol keeps it); the
        # record's "val"/"test" stay the last epoch's: which one a table reports is a named choice.
        record["best_val"] = {"epoch": best["epoch"], **summaries(best)}
    return record


def _test_ceiling(record: dict, outcome: dict, data) -> dict:
    """The ceiling of re-deciding this run (:mod:`lbw_utils.ceiling`: offsets fitted on the test split), its floor
    counted from the run's *own* test accuracy: a floor counted from another run's accuracy would give a more
    accurate run more accuracy to spend, and mix better separation with a general accuracy gain (the
    re-decision frontier, :mod:`lbw_utils.studies.redecision`, compares rows at equal absolute accuracy)."""
    return ceiling(outcome["test_logits"], data.labels("test"), record["test"]["accuracy"])


def _save_artifact(results_dir, dataset, label, seed, outcome) -> None:
    buffer = io.BytesIO()
    # A "fit" method may have no state_dict: its artifact then holds only its logits.
    # the test labels too, so that the re-decision frontier (lbw_utils.studies.redecision) needs no data loader
    torch.save({key: outcome[key] for key in ("val_logits", "test_logits", "test_targets", "state_dict")
                if key in outcome}, buffer)
    atomic_write_bytes(records.artifact_path(results_dir, dataset, label, seed), buffer.getvalue())


# The notebook parameters that DataOptions, TrainConfig and ModelOptions take, read from their fields; one left
# out or None keeps the default its dataclass (or, for a dataset's options, its loader) declares: the one home of
# each default. A training notebook takes every one of them by name (ParameterGuard(settings=True)).
DATA_PARAMETERS = tuple(field.name for field in dataclasses.fields(DataOptions) if field.name != "dataset")
DATASET_OPTIONS = tuple(name for name in DATA_PARAMETERS if name != "device")  # what a registration may take
TRAIN_PARAMETERS = tuple(field.name for field in dataclasses.fields(TrainConfig))
MODEL_PARAMETERS = ("model", "model_size", "model_options")  # ModelOptions' name, size and options
SETTINGS_PARAMETERS = DATA_PARAMETERS + TRAIN_PARAMETERS + MODEL_PARAMETERS


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
        check_folds(data.folds, seeds)
        train = TrainConfig.from_dict(_given(params, TRAIN_PARAMETERS))
        size = params.get("model_size")
        model = ModelOptions(name=params.get("model") or dataset_registration(data.dataset).default_model,
                             options=dict(params.get("model_options") or {}),
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
    return network_of(Path(results_dir), record, data.device if data is not None else "cpu")
