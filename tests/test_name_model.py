"""The tuned names model (hashed n-gram bag), the model configurations, and confused groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lbw_utils.reporting import plots
from lbw_utils.reporting.tables import formatted_group_change
from lbw_utils.stats import group_tpr_change
from lbw_utils.metrics import confusion_groups
from lbw_utils.models import make_model
from lbw_utils.models.recurrent import (
    NAME_MODEL_CONFIGS,
    NgramBagClassifier,
    name_model_parameters,
    ngram_ids,
    predict_nationalities,
    word_ids,
)
from lbw_utils.data.names import PAD_INDEX, encode_batch
from lbw_utils.train import TrainConfig


def test_ngram_ids_count_every_ngram_of_the_framed_name_and_nothing_of_the_padding():
    codes, lengths = encode_batch(["ab", "abcd"])
    ids = ngram_ids(codes, lengths, (1, 2), buckets=1 << 12)
    # "ab" framed is ^ a b $: 4 unigrams and 3 bigrams; "abcd": 6 and 5
    assert (ids > 0).sum(1).tolist() == [7, 11]
    assert int(ids.max()) < 1 << 12
    # the same n-gram gets the same id wherever it stands: of "ab"'s, only "b$" is not among "abcd"'s
    assert len(set(ids[0][ids[0] > 0].tolist()) - set(ids[1].tolist())) == 1


def test_word_ids_mark_the_end_of_each_word_and_the_same_word_gets_the_same_id():
    codes, _ = encode_batch(["anna maria", "maria"])
    ids = word_ids(codes, buckets=1 << 12)
    assert (ids > 0).sum(1).tolist() == [2, 1]
    assert ids[0, len("anna maria") - 1] == ids[1, len("maria") - 1] != ids[0, len("anna") - 1]


@pytest.mark.parametrize("recurrent_hidden", [0, 8])
def test_a_name_gets_the_same_logits_alone_and_in_a_padded_batch(recurrent_hidden):
    torch.manual_seed(0)
    model = NgramBagClassifier(3, buckets=1 << 10, dim=8, recurrent_hidden=recurrent_hidden).eval()
    with torch.no_grad():  # whatever the padding row holds, it must not leak into a name's logits
        model.bag.weight[0] = 1.0
        if recurrent_hidden:
            model.characters.weight[PAD_INDEX] = 1.0
    alone = model(*encode_batch(["li wei"]))
    in_batch = model(*encode_batch(["maximilian von hohenberg", "li wei", "an"]))
    torch.testing.assert_close(in_batch[1:2], alone, atol=1e-5, rtol=0)


def test_the_bag_model_learns_a_tiny_task_and_refuses_bad_options():
    torch.manual_seed(0)
    model = make_model("name_ngram", num_classes=2, buckets=1 << 10, dim=8, dropout=0.0)
    codes, lengths = encode_batch(["anna", "bob", "carolina", "dd"] * 4)
    targets = torch.tensor([0, 1, 0, 1] * 4)
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(codes, lengths), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    with pytest.raises(ValueError, match=r"ngram_orders=\(3, 2\) is not allowed"):
        NgramBagClassifier(2, ngram_orders=(3, 2))
    with pytest.raises(ValueError, match="buckets=1 is not allowed"):
        NgramBagClassifier(2, buckets=1)


def test_model_configurations_build_a_model_and_a_training_config():
    for name in NAME_MODEL_CONFIGS:
        parameters = name_model_parameters(name)
        train = TrainConfig(**{k: v for k, v in parameters.items() if k not in ("model", "model_options",
                                                                                  "name_switch")})
        assert train.epochs >= 1
        assert make_model(parameters["model"], num_classes=5, **parameters["model_options"])
    bag = name_model_parameters("ngram-bag", {"epochs": 2, "lr": None, "model_options": {"dim": 8}})
    assert bag["epochs"] == 2 and bag["lr"] == NAME_MODEL_CONFIGS["ngram-bag"]["lr"]  # None keeps the config's
    # merged key by key, and the configuration itself is left as it was
    assert bag["model_options"] == {"buckets": 2**17, "dim": 8}
    assert NAME_MODEL_CONFIGS["ngram-bag"]["model_options"] == {"buckets": 2**17}
    assert name_model_parameters("rnn")["model"] == "name_rnn"
    # the draft author's final recipe (nec-experiments, src/final_model)
    author = name_model_parameters("author")
    assert author["model"] == "name_rnn" and author["model_options"] == {"dropout": 0.3}
    assert (author["lr"], author["schedule"], author["augment"], author["batch_size"]) == (3.5e-3, "step", True, 512)
    assert 15 <= author["epochs"] <= 25


def test_configuration_values_for_all_classes_come_before_overrides():
    """The tuned configuration trains all 42 nationalities with batch 256 at lr 5e-3 (chosen on that task's
    validation split); other class lists keep its defaults, and a notebook's own value still wins."""
    assert {key: name_model_parameters("ngram-bag", classes="all")[key] for key in ("batch_size", "lr")} == {
        "batch_size": 256, "lr": 5e-3}
    for classes in (None, "paper", ["british", "american"]):
        assert name_model_parameters("ngram-bag", classes=classes)["batch_size"] == 128
    assert name_model_parameters("ngram-bag", {"batch_size": 64}, classes="all")["batch_size"] == 64
    assert "by_classes" not in name_model_parameters("ngram-bag", classes="all")
    assert name_model_parameters("author", classes="all")["batch_size"] == 512


def test_unknown_configuration_or_model_option_is_refused_by_name():
    with pytest.raises(ValueError, match=r"model_config='tuned' is not known; choose one of "
                                         r"\('rnn', 'ngram-bag', 'author'\)"):
        name_model_parameters("tuned")
    with pytest.raises(ValueError, match=r"model_options \['hidden_size'\] are not options of NgramBagClassifier"):
        name_model_parameters("ngram-bag", {"model_options": {"hidden_size": 16}})
    with pytest.raises(ValueError, match=r"allowed: \[.*'hidden_size'"):
        name_model_parameters("author", {"model_options": {"dim": 16}})


def test_predict_nationalities_ranks_classes_by_probability():
    torch.manual_seed(0)
    model = NgramBagClassifier(3, buckets=1 << 10, dim=8)
    rows = predict_nationalities(model, ["anna", "bob"], ["x", "y", "z"], k=2)
    assert [row["name"] for row in rows] == ["anna", "bob"] and set(rows[0]) == {"name", "#1", "#2"}


def test_confusion_groups_link_classes_that_share_their_names():
    classes = ["british", "american", "czech", "slovak", "chinese"]
    matrix = np.diag([60, 60, 70, 70, 95]).astype(float)
    matrix[0, 1], matrix[1, 0] = 30, 25  # british <-> american: ~27 % each way
    matrix[2, 3], matrix[3, 2] = 20, 15  # czech <-> slovak
    matrix[4, 0] = 5  # chinese -> british: 5 %, one way only: below the threshold
    assert confusion_groups(matrix, classes, min_share=0.1) == [["british", "american"], ["czech", "slovak"]]
    assert confusion_groups(matrix, classes, min_share=0.2) == [["british", "american"]]
    with pytest.raises(ValueError, match="min_share=1.5 is not allowed"):
        confusion_groups(matrix, classes, min_share=1.5)


def test_group_tpr_change_is_paired_on_the_group_mean():
    classes = ["british", "american", "german"]

    def record(label, seed, tpr):
        return {"method_label": label, "seed": seed, "dataset": "names5", "classes": classes,
                "test": {"tpr": tpr}}

    records = [record("baseline", 0, [0.5, 0.4, 0.9]), record("baseline", 1, [0.6, 0.3, 0.9]),
               record("ema", 0, [0.6, 0.5, 0.8]), record("ema", 1, [0.7, 0.4, 0.9])]
    table = formatted_group_change(group_tpr_change(records, [["british", "american"]], ["ema"]))
    assert isinstance(table, pd.DataFrame) and table.loc[0, "group"] == "british, american"
    assert table.loc[0, "baseline TPR"].startswith("0.450")
    assert table.loc[0, "Δ EMA weights, α = 0.01 (pts)"] == "10.0 ± 0.0"  # +10 points of the group mean on both seeds


def test_tpr_bars_sort_classes_by_the_first_run(tmp_path):
    figure = plots.tpr_bars({"baseline": np.array([[0.9, 0.3, 0.6]]), "other": np.array([[0.1, 0.2, 0.3]])},
                            ["a", "b", "c"], sort=True)
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert labels == ["b", "c", "a"]


def test_the_step_schedule_is_the_authors_decay():
    from lbw_utils.train import STEP_DECAY, STEP_INTERVAL, make_scheduler

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = make_scheduler(optimizer, TrainConfig(schedule="step", lr=1.0), total_steps=1000)
    rates = []
    for _ in range(2 * STEP_INTERVAL + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == rates[STEP_INTERVAL - 1] == 1.0  # no warm-up
    assert rates[STEP_INTERVAL] == pytest.approx(STEP_DECAY) and rates[-1] == pytest.approx(STEP_DECAY**2)
