"""lbw_utils.studies.names: notebook 05's families built from its parameters (nothing trains here), and what
lbw_utils.reporting.names says the study runs."""

from __future__ import annotations

import pytest

from lbw_utils.methods import display_name
from lbw_utils.reporting.names import study_lines
from lbw_utils.runs.experiments import method_label
from lbw_utils.studies.names import BAG, NamesStudy, focus_classes

PARAMETERS = {  # notebook 05's own parameters, with the settings a profile passes
    "model_config": "rnn", "bag_row": True, "bag_options": {"dim": 16}, "bag_training": {}, "bag_methods": None,
    "author_row": True, "static_scheme": "cdb", "static_gamma": 2, "ema_alpha": 0.01, "posthoc_budget": 0.01,
    "yardstick_c": 3.0, "yardstick_weighted": True, "methods": None, "group_share": 0.1, "typed_names": [],
    "classes": "paper", "folds": 3, "seeds": [0, 1], "epochs": 1, "per_class": 40, "device": "cpu",
}


def test_every_family_is_built_from_the_parameters(tmp_path):
    study = NamesStudy.from_params({**PARAMETERS, "results_dir": str(tmp_path)})
    assert study.settings.train.epochs == 1 and study.settings.model.name == "name_rnn"  # given over the config's
    assert study.bag.results_dir == tmp_path / BAG and study.bag.model.options["dim"] == 16
    assert study.author is not None and study.folds == 3 and study.unit == "fold"
    yardsticks = [{"name": "ngram-logreg", "C": 3.0}, {"name": "ngram-logreg", "C": 3.0, "scheme": "cdb", "tau": 2}]
    assert study.reference_labels == [BAG, *map(method_label, yardsticks), "author-lstm"]
    assert study.methods[0] == {"name": "static", "scheme": "cdb", "tau": 2} and len(study.methods) == 6
    assert study.bag_labels == study.weighting_labels  # None: the bag trains the same weightings
    lines = study_lines(study)
    assert lines[1] == "splits: 3-fold cross-fitting (partition 0), folds [0, 1]"
    assert lines[-1] == ("weighting methods on the n-gram bag: class-difficulty weights (1 - TPR)^τ, τ = 2; "
                         "normalised EMA weights, α = 0.01; " + "; ".join(map(display_name, study.weighting_labels[2:])))


def test_the_bag_and_the_author_are_left_out_where_they_are_the_baseline_or_switched_off(tmp_path):
    study = NamesStudy.from_params({**PARAMETERS, "model_config": BAG, "author_row": False, "folds": None,
                                    "methods": [{"name": "ema", "alpha": 0.01}], "results_dir": str(tmp_path)})
    assert study.bag is None and study.author is None and study.bag_methods == []
    assert study.unit == "seed" and study.reference_labels == [method_label(m) for m in study.references]
    assert len(study.references) == 2  # the yardstick, plain and weighted
    assert study_lines(study)[1] == "splits: random 80/10/10 per seed, seeds [0, 1]"


def test_a_bad_bag_training_option_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"bag_training has \['dropout'\]; allowed: epochs, batch_size, lr"):
        NamesStudy.from_params({**PARAMETERS, "bag_training": {"dropout": 0.1}, "results_dir": str(tmp_path)})


def test_the_focus_is_the_papers_pair_else_the_largest_confused_group():
    assert focus_classes(["british", "german", "american"], [["german", "british"]]) == ["british", "american"]
    assert focus_classes(["a", "b", "c"], [["b", "c"]]) == ["b", "c"]
    assert focus_classes(["a", "b", "c"], []) == ["a", "b"]


def test_each_family_trains_the_members_its_ensembles_need_and_keeps_them_out_of_its_rows(tmp_path, monkeypatch):
    ensemble = [{"name": "ensemble", "size": 2}]
    study = NamesStudy.from_params({**PARAMETERS, "author_row": False, "methods": ensemble,
                                    "results_dir": str(tmp_path)})
    asked = {}

    def run_study(family):
        def run(methods):
            asked[family] = [method["name"] for method in methods]
            return [{"method": method, "method_label": method_label(method),
                     **({"row": False} if method["name"] == "member" else {})} for method in methods]
        return run

    monkeypatch.setattr(study.settings, "run_study", run_study("main"))
    monkeypatch.setattr(study.bag, "run_study", run_study("bag"))
    records, bag_records = study.run()
    assert asked["bag"] == ["baseline", "member", "ensemble"]  # the bag trains the same methods, members first
    assert asked["main"][-2:] == ["member", "ensemble"]
    assert [r["method_label"] for r in bag_records] == ["baseline", "ensemble-2"]
    assert "member-1" not in {r["method_label"] for r in records}
