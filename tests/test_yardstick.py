"""The linear yardstick (character n-grams + logistic regression) as a method of the names study."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lbw_utils import records
from lbw_utils.runs.experiments import BASELINE, ModelOptions, check_method, method_label, run
from lbw_utils.methods import static_weights
from lbw_utils.train import TrainConfig
from lbw_utils.methods import METHODS
from lbw_utils.methods.yardstick import ngram_logreg_outcome
from tests.test_names import load_tiny, tiny_names, write_names_dir

TRAIN = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=3e-3, augment=False, amp=False)
TINY_RNN = ModelOptions(name="name_rnn", options={"hidden_size": 8, "embedding_dim": 8, "conv_channels": 8})


@pytest.fixture()
def names(tmp_path):
    data_dir = write_names_dir(tmp_path / "data", pickle.dumps(tiny_names()))
    return load_tiny(data_dir)


def test_yardstick_matches_scikit_learn_fitted_by_hand(names):
    outcome = ngram_logreg_outcome({"name": "ngram-logreg"}, names, seed=0)
    c = METHODS["ngram-logreg"].defaults()["C"]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, dtype=np.float32)
    classifier = LogisticRegression(C=c, solver="newton-cg", max_iter=3000, random_state=0)
    classifier.fit(vectorizer.fit_transform(names.texts("train")), names.labels("train").numpy())
    expected = classifier.predict(vectorizer.transform(names.texts("test")))
    assert outcome["test_logits"].shape == (names.size("test"), names.num_classes)
    assert outcome["test_logits"].dtype == torch.float32
    np.testing.assert_array_equal(outcome["test_logits"].argmax(1).numpy(), expected)
    # the problem is convex: scikit-learn's default solver on float64 features reaches the same optimum
    vectorizer64 = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    default = LogisticRegression(C=c, max_iter=3000).fit(vectorizer64.fit_transform(names.texts("train")),
                                                          names.labels("train").numpy())
    default_logits = default.decision_function(vectorizer64.transform(names.texts("test")))
    np.testing.assert_allclose(outcome["test_logits"].numpy(), default_logits, atol=1e-2)  # the solvers' tolerance
    assert outcome["model"]["name"] == "ngram-logreg" and outcome["loss_record"]["weights"] is None


def test_yardstick_is_a_run_with_a_record_and_its_weighted_variant_reads_the_baseline(names, tmp_path):
    run(BASELINE, names, 0, tmp_path, train=TRAIN, model=TINY_RNN, progress=False)
    plain = run({"name": "ngram-logreg"}, names, 0, tmp_path, train=TRAIN, progress=False)
    weighted_method = {"name": "ngram-logreg", "scheme": "cdb", "tau": 1}
    weighted = run(weighted_method, names, 0, tmp_path, train=TRAIN, progress=False)
    baseline = records.read_record(records.record_path(tmp_path, names.name, "baseline", 0))
    expected = static_weights(baseline["val"]["tpr"], "cdb", gamma=1).tolist()
    assert weighted["weights"]["weights"] == pytest.approx(expected)
    assert method_label(weighted_method) == "ngram-logreg-cdb-tau1"
    assert plain["history"] is None and plain["autocast"] is None and 0 <= plain["test"]["accuracy"] <= 1
    assert "best_val" not in plain
    # post-hoc offsets can adjust the yardstick too: its logits are saved like a trained run's
    adjusted = run({"name": "posthoc", "objective": "worst", "of": {"name": "ngram-logreg"}}, names, 0, tmp_path,
                   train=TRAIN, progress=False)
    assert adjusted["weights"]["adjusts"] == "ngram-logreg"


@pytest.mark.parametrize("method, message", [
    ({"name": "ngram-logreg", "C": 0}, "C=0 is not allowed: expected a finite number > 0"),
    ({"name": "ngram-logreg", "C": float("nan")}, "C=nan"),
    ({"name": "ngram-logreg", "C": True}, "C=True"),
    ({"name": "ngram-logreg", "alpha": 1}, r"unknown key\(s\) \['alpha'\]"),
    ({"name": "ngram-logreg", "scheme": "mystery"}, "scheme='mystery' is not allowed"),
    ({"name": "ngram-logreg", "gamma": 2}, "needs a 'scheme'"),
    ({"name": "ngram-logreg", "scheme": "mean-ratio", "gamma": -1}, "gamma=-1 is not allowed"),
    ({"name": "ngram-logreg", "scheme": "cdb", "gamma": 1}, "scheme='cdb' takes 'tau' as its exponent, not 'gamma'"),
    ({"name": "ngram-logreg", "tau": 1}, "'tau' needs a 'scheme'"),
])
def test_bad_yardstick_parameters_are_refused_before_anything_runs(method, message):
    with pytest.raises(ValueError, match=message):
        check_method(method)


def test_weighted_yardstick_without_a_baseline_says_what_is_missing(names, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the baseline first"):
        run({"name": "ngram-logreg", "scheme": "mean-ratio", "gamma": 2}, names, 0, tmp_path, train=TRAIN,
            progress=False)
    assert not any(tmp_path.rglob("*.json"))
