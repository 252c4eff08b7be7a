"""Tests for lbw_utils.methods.registry: the one list of methods, checked once, dispatched on kind."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from lbw_utils.runs import records
from lbw_utils.runs.experiments import BASELINE, METHOD_NAMES, ModelOptions, check_method, method_label, run
from lbw_utils.methods import (
    LOSS_METHODS,
    METHODS,
    CDBLoss,
    ClassDROLoss,
    DynamicMarginLoss,
    EMAWeightedCrossEntropy,
    FocalLoss,
    MethodSpec,
    MinRecallLoss,
    Parameter,
    fit_logit_offsets,
    make_loss,
    methods_of_kind,
    resolve_fit,
    static_weights,
)
from lbw_utils.methods import kinds, registry
from lbw_utils.train import TrainConfig

CONFIG = TrainConfig(epochs=1, batch_size=20, lr=0.05, eval_batch_size=64, augment=False)
TINY = ModelOptions(name="cnn", size="tiny")


def signature_defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("name, function", [
    ("static", static_weights), ("ema", EMAWeightedCrossEntropy), ("focal", FocalLoss), ("cdb", CDBLoss),
    ("dro", ClassDROLoss), ("minrecall", MinRecallLoss), ("posthoc", fit_logit_offsets),
])
def test_registry_defaults_are_those_of_the_code_they_build(name, function):
    # A default lives in the registry; the class keeps the same one for direct use. They must agree, or a
    # method dict and a direct call with the same options would train different things.
    # (static's "tau" is the function's gamma under scheme "cdb": it has no default of its own there)
    declared = {key: value for key, value in METHODS[name].defaults().items()
                if key != "of" and (name, key) != ("static", "tau")}
    in_code = signature_defaults(function)
    assert declared == {key: in_code[key] for key in declared}


def test_dynamic_margin_defaults_match_its_class():
    declared = METHODS["margin"].defaults()
    in_code = signature_defaults(DynamicMarginLoss)
    assert {key: declared[key] for key in ("gamma", "alpha", "form")} == {
        key: in_code[key] for key in ("gamma", "alpha", "form")}


def test_every_list_of_methods_derives_from_the_registry():
    assert METHOD_NAMES == tuple(METHODS)
    assert LOSS_METHODS == methods_of_kind("train")
    assert all(spec.kind in kinds.KINDS.values() for spec in METHODS.values())
    assert all(spec.build is not None for name, spec in METHODS.items() if spec.kind.trains_a_loss)
    assert METHODS["posthoc"].kind is kinds.POSTHOC and METHODS["ngram-logreg"].kind is kinds.FIT


def test_a_kind_is_named_or_given_and_an_unknown_one_is_refused():
    assert MethodSpec("x", "train").kind is kinds.TRAIN
    assert MethodSpec("x", kinds.FIT).kind is kinds.FIT
    with pytest.raises(ValueError, match="kind='fitted' is not known"):
        MethodSpec("x", "fitted")


def test_notebook_04_candidates_come_from_the_registry():
    params = {"alphas": [0.01], "focal_gamma": 2.0, "cdb_tau": "dynamic", "dro_eta": 0.01, "minrecall_eta": 1.0,
              "minrecall_every": "epoch", "margin_gamma": 4, "margin_alpha": 0.01, "posthoc_budget": 0.01}
    every = registry.candidate_methods(params)
    assert [m["name"] for m in every][:3] == ["ema", "ema", "focal"] and every[-1]["name"] == "posthoc"
    assert {m["name"] for m in every} == {n for n, spec in METHODS.items() if spec.candidates is not None}
    assert registry.candidate_methods(params, ["focal"]) == [{"name": "focal", "gamma": 2.0}]
    with pytest.raises(ValueError, match="families \\['mixup'\\] are not known"):
        registry.candidate_methods(params, ["mixup"])
    for method in every:
        check_method(method)


@pytest.mark.parametrize("method, label", [
    ({"name": "static", "scheme": "mean-ratio", "gamma": 4}, "static-mean-ratio-gamma4"),
    ({"name": "ema", "alpha": 0.01, "normalize": True}, "ema-alpha0.01-norm"),
    ({"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.01}, "baseline+posthoc-budget-drop0.01"),
    ({"name": "posthoc", "objective": "worst", "of": {"name": "static", "scheme": "mean-ratio", "gamma": 4}},
     "static-mean-ratio-gamma4+posthoc-worst"),
    ({"name": "cdb", "variant": "imagenet"}, "cdb-variantimagenet"),
    ({"name": "margin", "source": "static"}, "margin-sourcestatic"),
])
def test_labels_are_those_of_the_published_records(method, label):
    assert method_label(method) == label


@pytest.mark.parametrize("method, words", [
    ({"name": "minrecall", "every": 0}, ["every=0", "'epoch' or a positive number"]),
    ({"name": "minrecall", "eta": -1}, ["eta=-1", ">= 0"]),
    ({"name": "margin", "form": "hinge"}, ["form='hinge'", "('logit-adjusted', 'ldam')"]),
    ({"name": "margin", "source": "static", "alpha": 0.1}, ["takes no 'alpha'"]),
    ({"name": "cdb", "floor": 1.5}, ["floor=1.5", "(0, 1)"]),
    ({"name": "cdb", "variant": "cifar10"}, ["variant='cifar10'", "('cifar', 'imagenet')"]),
    ({"name": "dro", "form": "groups"}, ["form='groups'", "('sample', 'group')"]),
    ({"name": "posthoc", "grid_steps": 0}, ["grid_steps=0", "integer >= 1"]),
    ({"name": "posthoc", "of": "baseline"}, ["of='baseline'", "a method dict"]),
])
def test_check_method_refuses_values_outside_the_declared_ranges(method, words):
    with pytest.raises(ValueError) as caught:
        check_method(method)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_check_method_builds_nothing(monkeypatch):
    # Validation reads the declaration; it does not build a loss on a dummy problem any more.
    def must_not_build(*args, **kwargs):
        raise AssertionError("check_method built a loss")

    monkeypatch.setattr(registry, "static_weights", must_not_build)
    check_method({"name": "static", "scheme": "mean-ratio", "gamma": 4})
    check_method({"name": "margin", "source": "static", "gamma": 2})


def test_a_static_run_builds_its_weights_once(tiny_data, tmp_path, monkeypatch):
    data = tiny_data(image_noise=25.0, seed=0)
    run(BASELINE, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return static_weights(*args, **kwargs)

    monkeypatch.setattr(registry, "static_weights", counted)
    run({"name": "static", "scheme": "cdb", "tau": 1}, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    assert len(calls) == 1


def toy_fit(method, data, seed, tpr):
    """A "fit" method for the test below: predicts every label right, no network, no state_dict."""
    logits = {split: F.one_hot(data.labels(split).cpu(), data.num_classes).float() * method.get("margin", 1.0)
              for split in ("val", "test")}
    return {"val_logits": logits["val"], "test_logits": logits["test"], "history": None, "train_seconds": 0.0,
            "loss_record": {"weights": None, "tpr_seen": tpr}, "model": {"name": "oracle"}}


def test_a_method_of_kind_fit_is_dispatched_to_its_function(tiny_data, tmp_path, monkeypatch):
    spec = MethodSpec("toy-fit", "fit", {"margin": Parameter(1.0, lambda v: v > 0, "a number > 0")},
                      fit=f"{__name__}:toy_fit")
    monkeypatch.setitem(METHODS, "toy-fit", spec)
    data = tiny_data(seed=0)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a fit method must not run the training loop")

    monkeypatch.setattr(kinds, "fit", must_not_train)
    with pytest.raises(ValueError, match="margin=-1"):
        run({"name": "toy-fit", "margin": -1}, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    record = run({"name": "toy-fit", "margin": 2.0}, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    assert record["test"]["accuracy"] == 1.0 and record["autocast"] is None
    assert record["weights"]["tpr_seen"] is None  # needs_baseline_tpr defaults to False
    assert "train" not in record["fingerprint"]
    saved = torch.load(records.artifact_path(tmp_path, data.name, "toy-fit-margin2.0", 0), weights_only=True)
    assert set(saved) == {"val_logits", "test_logits"}  # no state_dict: only the logits are kept
    # and post-hoc offsets can adjust it like any trained run
    posthoc = run({"name": "posthoc", "of": {"name": "toy-fit", "margin": 2.0}}, data, 0, tmp_path, train=CONFIG,
                  model=TINY, progress=False)
    assert posthoc["method_label"] == "toy-fit-margin2.0+posthoc"


def test_a_fit_entry_must_name_its_function():
    with pytest.raises(ValueError, match="fit='package.module:function'"):
        resolve_fit(MethodSpec("broken", "fit", fit="no_colon_here"))
    with pytest.raises(ValueError, match="kind='train'"):
        resolve_fit(METHODS["baseline"])


def test_make_loss_refuses_a_method_without_a_loss():
    with pytest.raises(ValueError, match="kind 'posthoc'"):
        make_loss({"name": "posthoc"}, 3)


@pytest.mark.parametrize("method, message", [
    ({"name": "static", "scheme": "cdb", "gamma": 1}, "scheme='cdb' takes 'tau' as its exponent, not 'gamma'"),
    ({"name": "static", "tau": 1}, "scheme='mean-ratio' takes 'gamma' as its exponent, not 'tau'"),
    ({"name": "static", "scheme": "inverse", "tau": 1}, "scheme='inverse' takes 'gamma'"),
])
def test_the_class_difficulty_scheme_names_its_exponent_tau(method, message):
    with pytest.raises(ValueError, match=message):
        check_method(method)
    assert method_label({"name": "static", "scheme": "cdb", "tau": 0.5}) == "static-cdb-tau0.5"


def test_tau_is_the_exponent_the_cdb_scheme_uses():
    tpr = [0.9, 0.5]
    options = registry.METHODS["static"].with_defaults({"scheme": "cdb", "tau": 2.0})
    weights = registry.scheme_weights(options, tpr, 2)
    assert weights.tolist() == pytest.approx([0.1 ** 2, 0.5 ** 2])  # (1 - s) ** tau; the default gamma 4 unused
