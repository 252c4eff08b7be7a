"""The baseline search (notebook 00): its checks refuse bad input before training, its compute rule, its choice,
and the pieces it searches over (augmentation policies, multiply-adds)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from lbw_utils.data.images import AUGMENTATION_POLICIES, augment_batch, random_erase
from lbw_utils.models import cnn_multiply_adds, multiply_adds
from lbw_utils.reporting import baseline_search as report
from lbw_utils.studies import baseline_search as search
from lbw_utils.train import TrainConfig

REGIME = {"model_size": "small", "epochs": 16, "lr": 0.1, "schedule": "triangular"}
SHAPE = (1, 28, 28)


def test_multiply_adds_counts_convolutions_and_linear_layers():
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5))
    # conv: 8x8 outputs x 4 channels x 9 taps; linear: 256 x 5
    assert multiply_adds(network, torch.zeros(1, 1, 8, 8)) == 8 * 8 * 4 * 9 + 256 * 5
    sizes = {size: cnn_multiply_adds(size, SHAPE) for size in ("tiny", "small", "medium", "wide")}
    assert sizes["tiny"] < sizes["small"] < sizes["medium"] < sizes["wide"]
    assert 2.5 < sizes["wide"] / sizes["small"] < 3.2  # the reader's script's widths cost about 3x


def test_stage_options_grid_and_choices():
    grid = {"name": "opt", "grid": {"lr": [0.1, 0.2], "schedule": ["triangular", "onecycle"]}}
    assert search.stage_options(grid) == [{"lr": 0.1, "schedule": "triangular"}, {"lr": 0.1, "schedule": "onecycle"},
                                          {"lr": 0.2, "schedule": "triangular"}, {"lr": 0.2, "schedule": "onecycle"}]
    choices = {"name": "aug", "choices": [{"augment": False}, {"augment": True, "augmentation": "flip"}]}
    assert search.stage_options(choices) == choices["choices"]


@pytest.mark.parametrize("stages, message", [
    ([], "non-empty list"),
    ([{"name": "a"}], "exactly one of 'grid'"),
    ([{"name": "a", "grid": {"lr": [0.1]}}], "fewer than two candidates"),
    ([{"name": "a", "grid": {"val_size": [100, 200]}}], "data settings stay the regime's"),
    ([{"name": "a", "grid": {"lr": [0.1, 0.2]}}, {"name": "a", "grid": {"lr": [0.1, 0.2]}}], "used twice"),
])
def test_bad_stages_are_refused(stages, message):
    with pytest.raises(ValueError, match=message):
        search.check_stages(stages)


def test_tuning_seeds_that_overlap_evaluated_seeds_are_refused():
    assert search.check_tuning_seeds([100, 101, 102], list(range(10))) == [100, 101, 102]
    with pytest.raises(ValueError, match=r"overlap the evaluated seeds .* at \[2\]"):
        search.check_tuning_seeds([2, 100], list(range(10)))


def test_compute_rule_refuses_a_candidate_outside_the_band_and_keeps_equal_compute_ones():
    equal = [{"name": "width", "choices": [{"model_size": "small", "epochs": 16}, {"model_size": "medium", "epochs": 7},
                                           {"model_size": "wide", "epochs": 6}]}]
    search.check_compute(equal, REGIME, SHAPE, 10)  # all within 10 %
    larger = [{"name": "width", "choices": [{"model_size": "small", "epochs": 16}, {"model_size": "wide", "epochs": 16}]}]
    with pytest.raises(ValueError, match=r"width: model_size wide, epochs 16 costs 2\.\d\dx"):
        search.check_compute(larger, REGIME, SHAPE, 10)
    none = [{"name": "width", "choices": [{"model_size": "wide", "epochs": 16}, {"model_size": "wide", "epochs": 12}]}]
    with pytest.raises(ValueError, match="no candidate within the compute"):
        search.check_compute(none, REGIME, SHAPE, 10)


def test_candidates_with_different_recipes_get_different_folders():
    a = search.Candidate("opt", {"lr": 0.2}, {**REGIME, "lr": 0.2})
    b = search.Candidate("opt", {"lr": 0.4}, {**REGIME, "lr": 0.4})
    assert a.slug(REGIME).startswith("lr_0.2-") and a.slug(REGIME) != b.slug(REGIME)
    assert "/" not in search.Candidate("aug", {}, {**REGIME, "augmentation": "a/b"}).slug(REGIME)


def _runs() -> pd.DataFrame:
    rows = []
    for stage, candidate, recipe, accuracies, chosen, compute in [
        ("opt", "lr 0.1", REGIME, [0.90, 0.91, 0.92], False, 1.0),
        ("opt", "lr 0.2", {**REGIME, "lr": 0.2}, [0.92, 0.93, 0.94], True, 1.0),
        ("reference", "script", {**REGIME, "lr": 0.2, "model_size": "wide"}, [0.95, 0.95, 0.95], False, 2.9),
    ]:
        rows += [{"stage": stage, "candidate": candidate, "recipe": json.dumps(recipe, sort_keys=True), "seed": seed,
                  "val_accuracy": accuracy, "val_worst_class_tpr": accuracy - 0.2, "train_seconds": 1.0,
                  "chosen": chosen, "compute": compute} for seed, accuracy in zip((100, 101, 102), accuracies)]
    return pd.DataFrame(rows)


def test_table_choice_and_generated_description():
    table = search.search_table(_runs())
    assert list(table["candidate"]) == ["lr 0.1", "lr 0.2", "script"]
    assert table.loc[1, "val_accuracy"] == pytest.approx(0.93)
    assert search.chosen_recipe(table)["lr"] == 0.2
    text = report.describe(table, [100, 101, 102], REGIME)
    assert "The baseline recipe: lr 0.2" in text
    assert "+2.00 and +2.0 points" in text  # against the regime as given (lr 0.1)
    assert "Reference script (2.90x the compute)" in text and "it beats the chosen baseline" in text
    assert "**chosen**" in report.formatted_search(table)["chosen"].tolist()


def test_evaluated_recipe_is_checked_against_the_choice(tmp_path):
    chosen = {**REGIME, "lr": 0.2}
    assert "trains the recipe" in report.check_evaluated(chosen, {**REGIME, "lr": 0.2})
    assert "lr 0.2 chosen, 0.1 trained" in report.check_evaluated(chosen, REGIME)
    assert "No baseline search ran" in report.check_evaluated(None, REGIME)
    folder = tmp_path / "tables" / "fashion_mnist"
    folder.mkdir(parents=True)
    (folder / search.CHOICE_FILE.format(regime="cpu")).write_text(search.choice_text([100], chosen))
    assert search.read_choice(tmp_path, "fashion_mnist", "cpu") == chosen
    assert search.read_choice(tmp_path, "fashion_mnist", "frontier") is None
    with pytest.raises(ValueError, match="regime='a/b' must be a short name"):
        search.read_choice(tmp_path, "fashion_mnist", "a/b")


def test_augmentation_policies_and_random_erasing():
    images = torch.ones(64, 1, 28, 28)
    generator = torch.Generator().manual_seed(0)
    erased = random_erase(images, 1.0, generator=generator)
    zeroed = (erased == 0).flatten(1).float().mean(1)
    assert (zeroed > 0.01).all() and (zeroed < 0.5).all()  # one rectangle of 2-33 % of each image
    assert torch.equal(random_erase(images, 0.0, generator=generator), images)
    assert augment_batch(images, generator=generator, **AUGMENTATION_POLICIES["flip+crop+erase"]).shape == images.shape
    TrainConfig(augmentation="flip+crop")
    with pytest.raises(ValueError, match="augmentation='mixup' is not one of"):
        TrainConfig(augmentation="mixup")
    with pytest.raises(ValueError, match="augment='yes' must be True or False"):
        TrainConfig(augment="yes")
