"""The datasets a study can run, each behind one registration: Fashion-MNIST and CIFAR-10
(:mod:`lbw_utils.data.images`), the name -> nationality task (:mod:`lbw_utils.data.names`), and whatever
else registers.

A registration (:class:`DatasetRegistration`) says how a study loads the dataset, which ``DataOptions``
fields it takes and which network a study trains on it unless told otherwise; the study layer
(:mod:`lbw_utils.runs.experiments`) reads it and never tests a dataset's name. A module of this package
registers its datasets when it is imported, and the first lookup imports every module of the package, so
a dataset added to the project is its own file here (and its row in docs/package.md): see
docs/extending.md.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

# What every loader takes besides its options: the seed of the split, and the device the tensors live on.
LOADER_ARGUMENTS = ("seed", "device")


@dataclass(frozen=True)
class DatasetRegistration:
    """One dataset a study can run.

    ``load(seed=, device=, **options)`` returns the dataset split with ``seed`` on ``device``, an object with
    the protocol the training loop reads (see :mod:`lbw_utils.data.images`). ``options``: the
    ``DataOptions`` fields it takes besides ``device``, each a keyword of ``load`` whose default is that
    option's default (a study refuses any other field it is given, naming these); ``"folds"`` among them
    means k-fold cross-fitting, the run's seed being the fold index (:func:`check_folds`).
    ``default_model``: the network (``models.make_model``'s name) a study trains on it unless told otherwise.
    """

    name: str
    load: Callable[..., Any]
    default_model: str
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a dataset's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.default_model, str) or not self.default_model:
            raise ValueError(f"dataset {self.name!r}: default_model must name a network (models.make_model's "
                             f"name, e.g. 'cnn'), got {self.default_model!r}")
        if not callable(self.load):
            raise ValueError(f"dataset {self.name!r}: load must be a function, got {self.load!r}")
        object.__setattr__(self, "options", tuple(self.options))
        if set(self.options) & set(LOADER_ARGUMENTS):
            raise ValueError(f"dataset {self.name!r}: {LOADER_ARGUMENTS} are given to every loader, not options; "
                             f"options are DataOptions fields such as 'per_class', got {self.options}")
        keywords = inspect.signature(self.load).parameters
        missing = [name for name in (*LOADER_ARGUMENTS, *self.options) if name not in keywords]
        if missing:
            raise ValueError(f"dataset {self.name!r}: its load function takes no {missing}; it must take "
                             f"{LOADER_ARGUMENTS} and every option {self.options} as keywords")
        without_default = [name for name in self.options if keywords[name].default is inspect.Parameter.empty]
        if without_default:
            raise ValueError(f"dataset {self.name!r}: the options {without_default} have no default in its load "
                             "function; each option's default is the one a study uses when it is not given")

    def defaults(self) -> dict:
        """Each option's default: the load function's."""
        keywords = inspect.signature(self.load).parameters
        return {name: keywords[name].default for name in self.options}


# Every dataset, by name, in the order they registered.
_REGISTRY: dict[str, DatasetRegistration] = {}
_modules_imported = False


def register_dataset(registration: DatasetRegistration, *, replace: bool = False) -> DatasetRegistration:
    """Make ``registration.name`` a dataset every study, notebook and profile accepts."""
    if not isinstance(registration, DatasetRegistration):
        raise ValueError(f"register_dataset takes a DatasetRegistration, got {type(registration).__name__}")
    if registration.name in _REGISTRY and not replace:
        raise ValueError(f"dataset {registration.name!r} is already registered; choose another name "
                         "(or replace=True)")
    _REGISTRY[registration.name] = registration
    return registration


def datasets() -> tuple[str, ...]:
    """The names of every registered dataset."""
    _import_dataset_modules()
    return tuple(_REGISTRY)


def dataset_registration(name: str) -> DatasetRegistration:
    """The registration of dataset ``name``, or a ValueError naming the known datasets."""
    if name not in _REGISTRY:
        _import_dataset_modules()
    if name not in _REGISTRY:
        raise ValueError(f"dataset={name!r} is not known; choose one of {datasets()}")
    return _REGISTRY[name]


def _import_dataset_modules() -> None:
    """Import every module of this package once: each registers its datasets as it is imported."""
    global _modules_imported
    if _modules_imported:
        return
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    _modules_imported = True


def check_folds(folds, seeds=None) -> None:
    """``folds`` an integer >= 2 (or None: random splits), and every seed a fold index in ``0..folds-1``;
    a ValueError naming the value and what is allowed otherwise."""
    if folds is None:
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds={folds!r} is not allowed: use an integer of at least 2 (k-fold cross-fitting), "
                         "or None for random train/val/test splits per seed")
    outside = [seed for seed in (seeds or []) if not 0 <= seed < folds]
    if outside:
        raise ValueError(f"fold index(es) {outside} out of range: with folds={folds} the seeds are fold indices "
                         f"0..{folds - 1}")


# The largest share of a class's names that may be set aside for tuning: at least half must stay for the
# evaluated splits.
MAX_TUNING_SHARE = 0.5


def check_tuning_share(share) -> None:
    """``share`` a number in (0, MAX_TUNING_SHARE] (the share of each class's names set aside for tuning), or
    None (no tuning share); a ValueError naming the value and what is allowed otherwise."""
    if share is None:
        return
    if (isinstance(share, bool) or not isinstance(share, (int, float)) or share != share
            or not 0 < share <= MAX_TUNING_SHARE):
        raise ValueError(f"tuning_share={share!r} is not allowed: use a share of each class's names in "
                         f"(0, {MAX_TUNING_SHARE}] (e.g. 0.1) to set aside for tuning")
