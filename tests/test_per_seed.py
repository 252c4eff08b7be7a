"""The per-seed file a published profile carries: written from a results folder's evaluated records (tuning seeds
and fan-out shards left out), read back, and enough to recompute the paired table the reports show."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from stats_records import paired_study, record

from lbw_utils import stats
from lbw_utils.records import SCHEMA_VERSION, record_path, write_record
from lbw_utils.reporting.per_seed import (PER_SEED_FILE, as_records, evaluated_records, per_seed_frame, read_per_seed,
                                          write_per_seed)
from lbw_utils.runner import publish as publish_module
from lbw_utils.runner.publish import publish
from lbw_utils.runner.sequential import SHARDS_FOLDER

CLASSES = ["a", "b", "c"]


def _full(run: dict, index: int) -> dict:
    """A stats_records run with what a written record has besides: method, classes, validation, parameters,
    a ceiling; post-hoc offsets on the "gentle" row; no ceiling on the "worse" row."""
    full = {**run, "schema_version": SCHEMA_VERSION, "method": {"name": run["method_label"], "gamma": index},
            "classes": CLASSES, "val": {"accuracy": run["test"]["accuracy"] - 0.01, "worst_class_tpr": 0.5},
            "parameters": {"train": {"epochs": 3}, "data": {"sizes": {"train": 50000}}}}
    if run["method_label"] != "worse":
        full["ceiling"] = {"worst_class_tpr": run["test"]["worst_class_tpr"] + 0.1 + 0.001 * index,
                           "accuracy": run["test"]["accuracy"] - 0.004}
    if run["method_label"] == "gentle":
        full["weights"] = {"offsets": [0.25, -0.125, -0.125 + index / 1000]}
    return full


def _write(folder, runs: list[dict]) -> None:
    for run in runs:
        write_record(record_path(folder, run["dataset"], run["method_label"], run["seed"]), run)


def _results_folder(tmp_path):
    """A profile's folder: the paired study at the top, a names study in a study folder, tuning seeds and a
    fan-out shard (a copy of a merged record), neither evaluated."""
    folder = tmp_path / "results" / "cpu"
    _write(folder, [_full(run, index) for index, run in enumerate(paired_study())])
    names = [_full(record(label, seed, [0.8 - 0.1 * seed, 0.6, 0.7 + k], dataset="names"), seed)
             for seed in range(3) for k, label in ((0.0, "baseline"), (0.05, "gentle"))]
    _write(folder / "ngram-bag", names)
    _write(folder / "tuning", [_full(record("baseline", 100, [0.1, 0.2, 0.3]), 0)])
    _write(folder / "shards" / "fashion_mnist-seeds0-1", [_full(paired_study()[0], 0)])
    return folder


def test_the_file_read_back_recomputes_the_paired_table_of_the_records(tmp_path):
    folder = _results_folder(tmp_path)
    written = write_per_seed(folder, tmp_path / PER_SEED_FILE, skip=("tuning", "shards"))
    back = read_per_seed(tmp_path / PER_SEED_FILE)
    runs = evaluated_records(folder, skip=("tuning", "shards"))
    assert len(back) == len(written) == len(runs) == 12 + 6
    expected = stats.paired_table(runs)
    recomputed = stats.paired_table(as_records(back))
    assert not expected.empty and set(expected["dataset"]) == {"fashion_mnist", "names"}
    pd.testing.assert_frame_equal(recomputed, expected, check_exact=True)
    # the JSON cells and the whole numbers come back as they were
    assert back["offsets"].tolist() == [(r.get("weights") or {}).get("offsets") for r in runs]
    assert back["method"].tolist() == [r["method"] for r in runs] and back["classes"].map(CLASSES.__eq__).all()
    assert back["epochs"].tolist() == [3] * len(back) and back["train_images"].eq(50000).all()
    assert back["offsets"].map(lambda cell: cell is None).sum() == len(back) - 3 - 3
    assert math.isnan(back.loc[back["method_label"] == "worse", "ceiling_worst_class_tpr"].iloc[0])
    assert back["study_folder"].tolist() == ["."] * 12 + ["ngram-bag"] * 6  # the top folder first
    assert "test_logits" not in (tmp_path / PER_SEED_FILE).read_text()


def test_tuning_seeds_are_left_out(tmp_path):
    folder = _results_folder(tmp_path)
    frame = per_seed_frame(evaluated_records(folder))  # the default skip: tuning only
    assert 100 not in set(frame["seed"]) and "tuning" not in set(frame["study_folder"])
    assert set(frame["study_folder"]) == {".", "ngram-bag", "shards/fashion_mnist-seeds0-1"}


def test_publishing_a_profile_writes_the_file_and_links_it_from_the_results_page(tmp_path):
    folder = _results_folder(tmp_path)
    (folder / "tables" / "fashion_mnist").mkdir(parents=True)
    (folder / "tables" / "fashion_mnist" / "methods.md").write_text("| method |\n|---|\n| baseline |\n")
    page = tmp_path / "docs" / "results.md"
    target = publish(folder, "cpu", "2 CPU cores", None, docs_root=tmp_path / "docs" / "results",
                     readme=tmp_path / "README.md", results_page=page)
    published = read_per_seed(target / PER_SEED_FILE)
    assert len(published) == 18 and 100 not in set(published["seed"])  # no tuning seed, no shard copy
    assert set(published["study_folder"]) == {".", "ngram-bag"}
    text = page.read_text()
    assert f"[{PER_SEED_FILE}](results/cpu/{PER_SEED_FILE}), 18 runs (datasets: fashion_mnist, names;" in text
    assert f"(./{PER_SEED_FILE})" in (target / "README.md").read_text()


def test_publish_skips_the_fan_outs_shard_folder_by_its_name():
    assert publish_module.SHARDS == SHARDS_FOLDER  # a copy: sequential imports publish, not the other way


def test_per_seed_frame_keeps_record_order_and_one_row_per_record():
    runs = [_full(run, index) for index, run in enumerate(paired_study())]
    frame = per_seed_frame(runs)
    assert frame[["method_label", "seed"]].values.tolist() == [[r["method_label"], r["seed"]] for r in runs]
    assert frame["accuracy"].tolist() == pytest.approx([r["test"]["accuracy"] for r in runs])
