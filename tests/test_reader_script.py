"""benchmarks/reader_script.py without training: seeds parse, the published baseline is found (main study folder
only, same regime), the script is paired with it seed by seed, and the generated text says what the numbers say."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from lbw_utils.config import REPO_ROOT
from lbw_utils.reporting.per_seed import COLUMNS as PER_SEED_COLUMNS
from lbw_utils.stats import mean_interval

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import reader_script  # noqa: E402  (a script of benchmarks/, importable once its folder is on the path)

CLASSES = ["t-shirt", "trouser", "shirt"]
SMALL_MACS = 1_000
SEEDS = [0, 1, 2, 3]
BASE_ACC = [0.880, 0.884, 0.878, 0.882]
BASE_WORST = [0.650, 0.640, 0.660, 0.655]


def script_frame(accuracy, worst, seeds=SEEDS, epochs=16, train_images=8000) -> pd.DataFrame:
    rows = [{"regime": "frontier", "dataset": "fashion_mnist", "seed": seed, "epochs": epochs, "max_lr": 0.2,
             "batch_size": 256, "accuracy": a, "worst_class_tpr": w, "worst_class": "shirt",
             "classes": json.dumps(CLASSES), "tpr": json.dumps([0.9, 0.95, w]), "train_images": train_images,
             "val_images": 2000, "test_images": 10000, "multiply_adds": 2 * SMALL_MACS, "train_seconds": 10.0,
             "seconds": 12.0, "device": "cpu", "torch_threads": 1}
            for seed, a, w in zip(seeds, accuracy, worst)]
    return pd.DataFrame(rows, columns=reader_script.COLUMNS)


def compare_file(tmp_path, seeds=SEEDS, train_images=8000, epochs=16, folder="beyond"):
    """A published per_seed.csv: the baseline in ``folder`` (notebook 09's runs, as the frontier profile has it), a method beside it, a baseline-search candidate and
    tuning seeds elsewhere (neither is the published baseline)."""
    rows = []

    def add(study_folder, label, seed, accuracy, worst, images=train_images):
        rows.append({"study_folder": study_folder, "dataset": "fashion_mnist", "method_label": label,
                     "method": json.dumps({"name": label}), "seed": seed, "folds": None,
                     "classes": json.dumps(CLASSES), "accuracy": accuracy, "worst_class_tpr": worst,
                     "worst_class": "shirt", "tpr": json.dumps([0.9, 0.95, worst]), "val_accuracy": accuracy,
                     "val_worst_class_tpr": worst, "ceiling_worst_class_tpr": None, "ceiling_accuracy": None,
                     "offsets": None, "epochs": epochs, "train_images": images})

    for seed, accuracy, worst in zip(seeds, BASE_ACC, BASE_WORST):
        add(folder, "baseline", seed, accuracy, worst)
        add(folder, "augment-all", seed, accuracy + 0.05, worst + 0.2)
        add("baseline_search/frontier/lr_0.05-10042c14", "baseline", seed, 0.5, 0.1)
    add("tuning", "baseline", 100, 0.5, 0.1)
    path = tmp_path / "per_seed.csv"
    pd.DataFrame(rows, columns=PER_SEED_COLUMNS).to_csv(path, index=False)
    return path


def test_seeds_parse_as_ranges_and_lists_and_print_back():
    assert reader_script.parse_seeds("0-9") == list(range(10))
    assert reader_script.parse_seeds("5,3, 0") == [0, 3, 5]
    assert reader_script.parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    assert reader_script.parse_seeds("100") == [100]
    for bad in ("3-1", "a", "", "1-x"):
        with pytest.raises(ValueError):
            reader_script.parse_seeds(bad)
    assert reader_script.seeds_text([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


def test_the_verdict_follows_the_interval():
    assert reader_script.verdict(0.02, 0.01) == "beats"
    assert reader_script.verdict(-0.02, 0.01) == "beaten"
    assert reader_script.verdict(0.005, 0.01) == "neither"
    assert reader_script.verdict(0.02, float("nan")) == "no interval"


def test_the_script_is_paired_with_the_main_folders_baseline_and_the_text_says_who_wins(tmp_path):
    accuracy = [a + d for a, d in zip(BASE_ACC, (0.010, 0.012, 0.009, 0.011))]  # above on every seed
    worst = [w - d for w, d in zip(BASE_WORST, (0.05, 0.06, 0.04, 0.05))]  # below on every seed
    frame = script_frame(accuracy, worst)
    text = reader_script.answer(frame, "frontier", compare_file(tmp_path), small_macs=SMALL_MACS)
    difference = mean_interval([a - b for a, b in zip(accuracy, BASE_ACC)])
    worst_difference = mean_interval([a - b for a, b in zip(worst, BASE_WORST)])
    assert f"+{100 * difference[0]:.1f} ± {100 * difference[1]:.1f} points of accuracy" in text
    assert f"-{-100 * worst_difference[0]:.1f} ± {100 * worst_difference[1]:.1f} points of worst-class TPR" in text
    assert "On accuracy, the script beats the published baseline" in text
    assert "on worst-class TPR, the script is beaten by the published baseline" in text
    own = mean_interval(accuracy)
    assert f"test accuracy {own[0]:.3f} ± {own[1]:.3f}" in text
    published = mean_interval(BASE_ACC)  # the main folder's baseline, not the search candidate's nor tuning's
    assert f"the baseline: accuracy {published[0]:.3f} ± {published[1]:.3f}" in text
    assert "4 seeds (0-3)" in text
    assert "16 epochs x 2,000 multiply-adds per image = 2.00x the baseline's (16 epochs x 1,000" in text
    assert "| script - baseline (points, paired)" in text and "Not the regime's length" not in text


def test_no_verdict_either_way_and_unpaired_seeds_are_named(tmp_path):
    accuracy = [a + d for a, d in zip(BASE_ACC, (0.01, -0.01, 0.005, -0.004))]
    frame = script_frame(accuracy + [0.9], BASE_WORST + [0.7], seeds=SEEDS + [9])
    text = reader_script.answer(frame, "frontier", compare_file(tmp_path), small_macs=SMALL_MACS)
    assert "On accuracy, neither beats the other" in text
    assert "on worst-class TPR, no verdict" not in text  # zero differences: a 0-wide interval at 0
    assert "left out of the pairing: 9." in text
    assert "against the published baseline" in text and "4 seeds (0-3;" in text


def test_a_compare_file_of_another_regime_or_without_the_main_baseline_is_refused(tmp_path):
    frame = script_frame(BASE_ACC, BASE_WORST)
    with pytest.raises(ValueError, match="55000"):
        reader_script.answer(frame, "frontier", compare_file(tmp_path, train_images=55000), small_macs=SMALL_MACS)
    with pytest.raises(ValueError, match="epochs"):
        reader_script.answer(frame, "frontier", compare_file(tmp_path, epochs=3), small_macs=SMALL_MACS)
    with pytest.raises(ValueError, match="study folder 'beyond'"):
        reader_script.answer(frame, "frontier", compare_file(tmp_path, folder="elsewhere"), small_macs=SMALL_MACS)


def test_without_a_compare_file_and_with_an_epochs_override(tmp_path):
    frame = script_frame(BASE_ACC[:1], BASE_WORST[:1], seeds=[100], epochs=1)
    text = reader_script.answer(frame, "frontier", None, small_macs=SMALL_MACS)
    assert "1 seed (100)" in text and "no interval" not in text
    assert "1 epoch instead of 16" in text
    assert "= 0.12x the baseline's (16 epochs" in text  # 1 x 2,000 / (16 x 1,000)
    assert "published baseline" not in text
    out = reader_script.write_outputs(tmp_path / "out", "frontier", frame.to_dict("records"), None, SMALL_MACS)
    csv_path, md_path = reader_script.paths(tmp_path / "out", "frontier")
    assert md_path.read_text(encoding="utf-8") == out
    assert pd.read_csv(csv_path)["accuracy"].tolist() == BASE_ACC[:1]
