"""Tests for lbw_utils.methods.registry: the one list of methods, collected from the method files, checked once,
dispatched on kind. The tests iterate the registry: a new method file is tested without editing them."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lbw_utils import records
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
    display_name,
    fit_logit_offsets,
    make_loss,
    method_from_label,
    methods_of_kind,
    non_negative,
    resolve_fit,
    static_weights,
)
from lbw_utils.methods import kinds, margin, registry, static
from lbw_utils.methods.spec import Adjustment
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
    # A default lives in the method's entry; the class keeps the same one for direct use. They must agree, or a
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


METHODS_DIR = Path(registry.__file__).parent


def test_the_registry_collects_every_method_file_in_module_order():
    files = [path.stem for path in sorted(METHODS_DIR.glob("*.py"))
             if any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SPECS" for t in node.targets)
                    for node in ast.parse(path.read_text(encoding="utf-8")).body)]
    assert {"static", "dynamic", "robust", "margin", "frontier", "posthoc", "yardstick"} <= set(files)
    assert not {"registry", "spec", "kinds", "common"} & set(files)  # the machinery declares no method
    assert registry.method_modules() == [f"lbw_utils.methods.{name}" for name in files]
    declared = [spec for name in files for spec in importlib.import_module(f"lbw_utils.methods.{name}").SPECS]
    assert [spec.name for spec in declared] == list(METHODS)[:len(declared)]
    assert all(METHODS[spec.name] is spec for spec in declared)


def test_collecting_refuses_a_shared_name_and_an_entry_that_is_not_a_spec(monkeypatch):
    with pytest.raises(ValueError, match="'baseline' is declared twice, in lbw_utils.methods.static and in "
                                         "lbw_utils.methods.static"):
        registry.collect(["lbw_utils.methods.static", "lbw_utils.methods.static"])
    monkeypatch.setattr(static, "SPECS", [*static.SPECS, {"name": "dict-entry"}])
    with pytest.raises(ValueError, match="SPECS holds {'name': 'dict-entry'}: expected only MethodSpec"):
        registry.collect(["lbw_utils.methods.static"])
    monkeypatch.setattr(static, "SPECS", "baseline")
    with pytest.raises(ValueError, match="SPECS='baseline' is not allowed: expected a list of MethodSpec"):
        registry.collect(["lbw_utils.methods.static"])


def test_register_adds_a_new_name_to_this_process_only(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(METHODS))
    spec = MethodSpec("toy-loss", "train", build=lambda o, k, t, ls: torch.nn.CrossEntropyLoss())
    assert registry.register(spec) is spec and registry.METHODS["toy-loss"] is spec
    with pytest.raises(ValueError, match="'toy-loss' is already registered"):
        registry.register(spec)
    with pytest.raises(ValueError, match="expected a MethodSpec"):
        registry.register({"name": "toy"})
    assert "only the process that calls it" in registry.register.__doc__


@pytest.mark.parametrize("name", list(METHODS))
def test_every_entry_gives_what_its_kind_runs_with(name):
    spec = METHODS[name]
    if spec.kind.trains_a_loss:
        assert callable(spec.build) and spec.fit is None and spec.adjustment is None
    elif spec.kind is kinds.FIT:
        assert callable(resolve_fit(spec)) and spec.build is None
    elif spec.kind is kinds.ENSEMBLE:  # combines finished runs: nothing to build, fit or adjust
        assert spec.build is None and spec.fit is None and spec.adjustment is None
    else:
        assert spec.kind.adjusts_a_run and isinstance(spec.adjustment, Adjustment) and spec.build is None
    assert spec.summary, f"method {name!r} has no summary"
    for key, parameter in spec.parameters.items():
        if parameter.default is not None:
            parameter.check(key, parameter.default)  # every default is allowed by its own parameter


def test_a_posthoc_entry_needs_its_adjustment():
    with pytest.raises(ValueError, match="method 'offsets' of kind 'posthoc' adjusts a run: it needs adjustment="):
        MethodSpec("offsets", "posthoc")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_refuses_an_unknown_key_naming_the_allowed_ones(name):
    with pytest.raises(ValueError) as caught:
        check_method({"name": name, "no_such_key": 1})
    message = str(caught.value)
    assert f"method {name!r} got unknown key(s) ['no_such_key']" in message
    assert f"allowed keys are {METHODS[name].keys}" in message


def test_every_method_runs_with_its_defaults_under_a_label_of_its_own():
    plain = [{"name": name} for name in METHODS]
    for method in plain:
        check_method(method)
    # with every default spelled out (whether or not the constraints allow them together), still one label each
    given = [{"name": name, **{k: v for k, v in spec.defaults().items() if v is not None}}
             for name, spec in METHODS.items()]
    for methods in (plain, given):
        labels = [method_label(method) for method in methods]
        assert len(set(labels)) == len(labels), labels
        assert all("/" not in label and " " not in label for label in labels)


def notebook_parameter_cell(name: str) -> dict:
    notebook = json.loads((METHODS_DIR.parent.parent / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse("".join(cell["source"])).body}


def test_notebook_04s_default_list_is_a_literal_of_methods_that_check():
    methods = notebook_parameter_cell("04_dynamic_weighting")["methods"]
    assert [m["name"] for m in methods][:3] == ["ema", "ema", "focal"] and methods[-1]["name"] == "posthoc"
    labels = [method_label(m) for m in methods]
    assert len(set(labels)) == len(labels)
    for method in methods:
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

    monkeypatch.setattr(static, "static_weights", must_not_build)
    monkeypatch.setattr(margin, "static_weights", must_not_build)
    check_method({"name": "static", "scheme": "mean-ratio", "gamma": 4})
    check_method({"name": "margin", "source": "static", "gamma": 2})


def test_a_static_run_builds_its_weights_once(tiny_data, tmp_path, monkeypatch):
    data = tiny_data(image_noise=25.0, seed=0)
    run(BASELINE, data, 0, tmp_path, train=CONFIG, model=TINY, progress=False)
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return static_weights(*args, **kwargs)

    monkeypatch.setattr(static, "static_weights", counted)
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
    assert set(saved) == {"val_logits", "test_logits", "test_targets"}  # no state_dict: logits and test labels
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
    options = METHODS["static"].with_defaults({"scheme": "cdb", "tau": 2.0})
    weights = static.scheme_weights(options, tpr, 2)
    assert weights.tolist() == pytest.approx([0.1 ** 2, 0.5 ** 2])  # (1 - s) ** tau; the default gamma 4 unused


# --------------------------------------------------------------------------
# The names a reader sees
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_has_a_display_name_of_its_own(name):
    """Every entry says how a reader names it (its ``display``), and that name is not just the method's key."""
    spec = METHODS[name]
    assert spec.display, f"method {name!r} has no display: give its MethodSpec a display= (template or function)"
    shown = display_name({"name": name})
    assert shown and "{" not in shown and "}" not in shown
    assert name == "baseline" or shown != name


@pytest.mark.parametrize("method, shown", [
    ({"name": "baseline"}, "baseline"),
    ({"name": "static", "scheme": "mean-ratio", "gamma": 4}, "TPR weights (Q&A recipe), γ = 4"),
    ({"name": "static"}, "TPR weights (Q&A recipe), γ = 4"),  # defaults filled in
    ({"name": "margin", "source": "static", "gamma": 2}, "logit margin from TPRs, γ = 2"),
    ({"name": "dro", "eta": 0.01, "form": "group"}, "group DRO, η = 0.01"),
    ({"name": "ema", "alpha": 0.01, "normalize": True}, "normalised EMA weights, α = 0.01"),
    ({"name": "cdb", "variant": "imagenet"}, "CDB (ImageNet-LT form), dynamic τ"),
    ({"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.01},
     "baseline + post-hoc offsets (budget 1 pt)"),
    ({"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.005,
      "of": {"name": "static", "scheme": "mean-ratio", "gamma": 4}},
     "TPR weights (Q&A recipe), γ = 4 + post-hoc offsets (budget 0.5 pt)"),
    ({"name": "posthoc", "objective": "worst"}, "baseline + post-hoc offsets (worst class)"),
])
def test_display_names_of_method_dicts_labels_and_records(method, shown):
    label = method_label(method)
    assert display_name(method) == shown
    assert display_name(label) == shown  # a table that holds only the label shows the same name
    assert display_name({"method": method, "method_label": label, "seed": 0}) == shown  # a run record


def test_every_label_reads_back_into_a_method_dict_that_gives_it():
    """method_from_label inverts method_label for each method with its defaults given, one key at a time and all
    together, and for post-hoc offsets on top of each."""
    methods = []
    for name, spec in METHODS.items():
        if spec.kind.adjusts_a_run:
            continue
        methods.append({"name": name})
        for key, value in spec.defaults().items():
            if value is not None:
                methods.append({"name": name, key: value})
    for method in list(methods):
        methods.append({"name": "posthoc", "objective": "budget", "max_accuracy_drop": 0.005, "of": method})
    for method in methods:
        label = method_label(method)
        found = method_from_label(label)
        assert found is not None and method_label(found) == label, (method, found)


def test_display_name_keeps_labels_it_cannot_read_and_refuses_what_is_no_run():
    assert display_name("ceiling (offsets fitted on test) - not a method") == (
        "ceiling (offsets fitted on test) - not a method")
    assert display_name({"name": "baseline", "label": "ngram-bag"}) == "ngram-bag"
    assert display_name({"name": "no-such-method"}) == "no-such-method"
    with pytest.raises(ValueError, match="expected a method dict"):
        display_name(3)


def test_a_method_without_a_display_is_named_by_its_name_and_given_options():
    spec = MethodSpec("toy-display", "train", {"scale": non_negative(1.0)}, build=lambda o, k, t, ls: None)
    assert spec.display_text({"name": "toy-display"}) == "toy-display"
    assert spec.display_text({"name": "toy-display", "scale": 2.0}) == "toy-display (scale 2)"
    with pytest.raises(ValueError, match="display=3 is not allowed"):
        MethodSpec("toy-display", "train", build=lambda o, k, t, ls: None, display=3)
