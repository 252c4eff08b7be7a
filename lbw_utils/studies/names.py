"""The names study of notebook 05: which nationalities does a model confuse, and does weighting help?

From the notebook's parameters, :meth:`NamesStudy.from_params` builds (and checks, before anything trains) the
settings of every model family: the chosen configuration (the recurrent default), the n-gram bag as a second
family in its own folder (``<results>/ngram-bag/``, where its weightings pair with the bag's own baseline) and the
draft author's recipe as a reference row. :meth:`NamesStudy.run` trains or reads back every run and relabels the
bag's baseline as the reference row ``ngram-bag`` of the main tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lbw_utils import records as run_records
from lbw_utils.methods import exponent_key
from lbw_utils.methods.ensemble import with_members
from lbw_utils.models.recurrent import name_model_parameters
from lbw_utils.runs.experiments import BASELINE, SETTINGS_PARAMETERS, Settings, method_label
from lbw_utils.stats import tpr_by_seed

BAG = "ngram-bag"  # the second model family's configuration, and its baseline's label in the main tables
AUTHOR = {"name": "baseline", "label": "author-lstm"}  # the draft author's recipe, a plain cross-entropy row
BAG_TRAINING_KEYS = ("epochs", "batch_size", "lr", "weight_decay")
# The pair the draft paper asks about on its 5-class task: followed class by class where both are classes.
PAPER_PAIR = ("british", "american")


def default_methods(params: dict) -> list[dict]:
    """The weightings of the study when the notebook's ``methods`` is None, from its parameters: the seed methods
    (static weights of ``static_scheme``, normalised EMA), CDB, min-recall, static margins and post-hoc offsets."""
    scheme, gamma = params["static_scheme"], params["static_gamma"]
    return [
        {"name": "static", "scheme": scheme, exponent_key(scheme): gamma},
        {"name": "ema", "alpha": params["ema_alpha"], "normalize": True},
        {"name": "cdb", "tau": "dynamic"},
        # per epoch: the variant the names study was run with (eta 1 was set for it); every 32 steps, the
        # official interval and the registry's default, is tuned on Fashion-MNIST (notebook 08)
        {"name": "minrecall", "eta": 1.0, "form": "logit-adjusted", "every": "epoch"},
        {"name": "margin", "source": "static", "gamma": gamma},
        {"name": "posthoc", "objective": "budget", "max_accuracy_drop": params["posthoc_budget"]},
    ]


def yardsticks(params: dict) -> list[dict]:
    """The linear yardstick (character n-grams + logistic regression), and where ``yardstick_weighted`` is on,
    the same with the Q&A question's recipe's class weights."""
    plain = {"name": "ngram-logreg", "C": params["yardstick_c"]}
    scheme = params["static_scheme"]
    weighted = {**plain, "scheme": scheme, exponent_key(scheme): params["static_gamma"]}
    return [plain] + ([weighted] if params["yardstick_weighted"] else [])


@dataclass
class NamesStudy:
    """Every family's settings and methods of one names study (see the module's docstring)."""

    settings: Settings
    model_config: str
    methods: list[dict]
    references: list[dict]
    author: Settings | None = None
    bag: Settings | None = None
    bag_methods: list[dict] = field(default_factory=list)

    @classmethod
    def from_params(cls, params: dict) -> "NamesStudy":
        """Build every family's settings from notebook 05's parameters (the model configuration's network and
        training, with every settings parameter given on top); a bad option stops here."""
        model_config = params["model_config"]
        study = {**params, "dataset": "names"}
        given = {key: value for key, value in params.items() if key in SETTINGS_PARAMETERS}
        settings = Settings.from_params({**study, **name_model_parameters(model_config, given, params.get("classes"))})
        classes = settings.data.classes
        methods = default_methods(params) if params["methods"] is None else params["methods"]
        author = bag = None
        if params["author_row"] and model_config != "author":
            author = Settings.from_params({**study, **name_model_parameters("author", classes=classes)})
        if params["bag_row"] and model_config != BAG:
            unknown = sorted(set(params["bag_training"]) - set(BAG_TRAINING_KEYS))
            if unknown:
                raise ValueError(f"bag_training has {unknown}; allowed: {', '.join(BAG_TRAINING_KEYS)}")
            bag_parameters = name_model_parameters(BAG, {**params["bag_training"],
                                                         "model_options": params["bag_options"]}, classes)
            # the bag family in its own folder: there its weightings read (and pair with) the bag's own baseline
            bag = Settings.from_params({**study, **bag_parameters, "results_dir": str(settings.results_dir / BAG)})
        bag_methods = (methods if params["bag_methods"] is None else params["bag_methods"]) if bag else []
        return cls(settings, model_config, methods, yardsticks(params), author, bag, bag_methods)

    @property
    def folds(self) -> int | None:
        """k of a k-fold study (the run's seed is its fold), None for random splits per seed."""
        return self.settings.data.folds

    @property
    def unit(self) -> str:
        """What the paired tables pair on: folds of a k-fold study, else seeds."""
        return "fold" if self.folds is not None else "seed"

    @property
    def reference_labels(self) -> list[str]:
        return ([BAG] if self.bag else []) + [method_label(m) for m in self.references] + (
            [AUTHOR["label"]] if self.author else [])

    @property
    def weighting_labels(self) -> list[str]:
        return [method_label(m) for m in self.methods]

    @property
    def bag_labels(self) -> list[str]:
        return [method_label(m) for m in self.bag_methods]

    def run(self) -> tuple[list[dict], list[dict]]:
        """Train (or read back) every run: (the main records, the bag's own records). The bag's baseline is also a
        reference row of the main records, labelled :data:`BAG`."""
        # an ensemble's or a student's members (replicates of the baseline) train first, in either family; they
        # are no rows
        def rows_of(settings: Settings, methods: list[dict]) -> list[dict]:
            return [r for r in settings.run_study(with_members(methods)) if run_records.is_row(r)]

        records = rows_of(self.settings, [BASELINE] + self.references + self.methods)
        if self.author:
            records += self.author.run_study([AUTHOR])
        bag_records = rows_of(self.bag, [BASELINE] + self.bag_methods) if self.bag else []
        records += [{**r, "method_label": BAG, "method": {"name": "baseline", "label": BAG}}
                    for r in bag_records if r["method_label"] == "baseline"]
        return records, bag_records

    def weightings_run(self, records: list[dict]) -> list[str]:
        """The weighting labels (trained or post hoc) that have records."""
        labels = {r["method_label"] for r in records}
        return [label for label in self.weighting_labels if label in labels]

    def pooled_labels(self, records: list[dict]) -> list[str]:
        """The baseline, then every reference row and weighting that has records."""
        labels = {r["method_label"] for r in records}
        return ["baseline"] + [label for label in self.reference_labels + self.weighting_labels if label in labels]

    def reference_tpr(self, records: list[dict]) -> dict[str, np.ndarray]:
        """The ``[seeds, C]`` test TPR of the baseline and of the other families' baselines (bag, author)."""
        labels = ["baseline"] + ([BAG] if self.bag else []) + ([AUTHOR["label"]] if self.author else [])
        return {label: tpr_by_seed(records, label)[1] for label in labels}


def focus_classes(class_names: list[str], groups: list[list[str]]) -> list[str]:
    """The classes followed one by one: the paper's pair where the task has it, else the largest confused group
    (groups come largest first), else the first two classes."""
    return [c for c in PAPER_PAIR if c in class_names] or (groups[0] if groups else class_names[:2])
