"""benchmarks/names_rnn_tuning.py: rows resolve or are refused by name, changes are paired fold by fold, and the
generated reading says which rows moved against the reference."""

from __future__ import annotations

import sys

import pytest

from lbw_utils.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import names_rnn_tuning as tuning  # noqa: E402  (a script of benchmarks/, importable once its folder is on the path)

FOLDS = [0, 1, 2]


def runs(accuracies, worst=(0.4, 0.4, 0.4)):
    return {fold: {"val_acc": a, "val_worst": w, "seconds": 1.0, "names_per_s": 10.0}
            for fold, a, w in zip(FOLDS, accuracies, worst)}


RESULTS = {
    "rnn": runs([0.60, 0.62, 0.64]),
    "better": runs([0.62, 0.64, 0.66]),  # +2 points on every fold: the paired interval is 0 wide
    "noisy": runs([0.70, 0.55, 0.64]),  # +10, -7, 0: no change shown
}


def test_changes_are_paired_by_fold_against_the_reference_or_the_row_above():
    table = {line["row"]: line for line in tuning.tuning_table(RESULTS, FOLDS, dict.fromkeys(RESULTS, ""), "rnn")}
    assert table["rnn"]["Δ acc vs rnn (pts)"] == "–"
    assert table["better"]["Δ acc vs rnn (pts)"] == "2.0 ± 0.0"
    assert table["better"]["Δ worst TPR vs rnn (pts)"] == "0.0 ± 0.0"
    previous = tuning.tuning_table(RESULTS, FOLDS, dict.fromkeys(RESULTS, ""), "previous")
    assert [line["Δ acc vs previous (pts)"] for line in previous][:2] == ["–", "2.0 ± 0.0"]
    assert previous[2]["Δ acc vs previous (pts)"].startswith("-1.0 ± ")  # noisy against better: +8, -9, -2


def test_reading_names_rows_above_below_and_unchanged():
    text = tuning.reading(RESULTS, FOLDS, "rnn")
    assert "over 3 folds" in text
    assert "In validation accuracy, above: better +2.0 ± 0.0; no change shown: noisy." in text
    assert tuning.reading(RESULTS, FOLDS[:1], "rnn") == ""  # one fold: no interval, no reading


def test_rows_resolve_by_name_and_unknown_ones_are_refused():
    assert tuning.resolve_row("yardstick", "paper") == tuning.YARDSTICK
    ensemble = tuning.resolve_row("ensemble3:rnn", "paper")
    assert ensemble[:2] == (tuning.ENSEMBLE_PREFIX, 3) and ensemble[2][1] == "name_rnn"
    for unknown in ("ensemble1:rnn", "ensemble3:nothing", "nothing"):
        assert tuning.resolve_row(unknown, "paper") is None
    with pytest.raises(SystemExit, match="--reference 'bag' is not among the rows run"):
        tuning.tuning_table(RESULTS, FOLDS, dict.fromkeys(RESULTS, ""), "bag")
