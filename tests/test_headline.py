"""The findings told first (lbw_utils.reporting.headline, written by lbw_utils.runner.publish): the README's headline
(at most six rows chosen on validation, the worst class named, changes in points, two or three short sentences, one
figure) and the numbered Findings and contents list that open docs/results.md, all from the published files."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from lbw_utils.methods import method_from_label
from lbw_utils.records import SCHEMA_VERSION, record_path, write_record
from lbw_utils.reporting import headline
from lbw_utils.runner.publish import contents_list, publish

CLASSES = ["T-shirt/top", "Shirt", "Bag"]
# label -> (test accuracy, test worst-class TPR, validation worst-class TPR); "focal" is best on test but worst on
# validation, so no headline row may show it
ROWS = {
    "baseline": (0.900, 0.70, 0.68),
    "static-mean-ratio-gamma4": (0.895, 0.78, 0.76),
    "dro-eta0.01-formgroup": (0.892, 0.80, 0.74),
    "focal-gamma2.0": (0.899, 0.85, 0.60),
    "baseline+posthoc-worst": (0.885, 0.82, 0.79),
    "baseline+posthoc-budget-drop0.01": (0.893, 0.79, 0.77),
    "static-mean-ratio-gamma4+posthoc-budget-drop0.01": (0.890, 0.83, 0.80),
}


def _record(label: str, seed: int, dataset: str = "fashion_mnist") -> dict:
    accuracy, worst, val_worst = ROWS[label]
    shift = 0.01 * seed
    tpr = [0.95, worst + shift, 0.98]
    record = {"schema_version": SCHEMA_VERSION, "dataset": dataset, "method": method_from_label(label),
              "method_label": label, "seed": seed, "classes": CLASSES,
              "test": {"accuracy": accuracy + shift / 10, "worst_class_tpr": worst + shift, "worst_class": "Shirt",
                       "tpr": tpr, "balanced_accuracy": sum(tpr) / 3, "tpr_std": 0.1},
              "val": {"accuracy": accuracy, "worst_class_tpr": val_worst + shift},
              "parameters": {"train": {"epochs": 3}, "data": {"sizes": {"train": 55000}}}}
    if label == "baseline":
        record["ceiling"] = {"worst_class_tpr": 0.86 + shift, "accuracy": 0.896 + shift / 10}
    return record


def _records(dataset: str = "fashion_mnist", seeds: int = 3) -> list[dict]:
    return [_record(label, seed, dataset) for label in ROWS for seed in range(seeds)]


def _results(tmp_path, profile: str = "cpu"):
    """A finished profile's folder: the records, a paired table file and the frontier figure and curves."""
    folder = tmp_path / "results" / profile
    for record in _records():
        write_record(record_path(folder, record["dataset"], record["method_label"], record["seed"]), record)
    tables = folder / "tables" / "fashion_mnist"
    tables.mkdir(parents=True)
    (tables / "paired.md").write_text("| method |\n|---|\n| baseline |\n")
    (tables / "methods.md").write_text("| method | D |\n|---|---|\n| baseline | 0 |\n")
    (tables / "posthoc_vs_posthoc.md").write_text("After re-deciding: no row beat it.\n")
    curves = [{"dataset": "fashion_mnist", "method": method, "seed": seed, "level": level,
               "worst_class_tpr": 0.8 + (0.01 * seed if method == "baseline" else 0.0) + (level - 0.88),
               "accuracy": level, "reached": True}
              for method in ("baseline", "static-mean-ratio-gamma4") for seed in range(3) for level in (0.88, 0.89)]
    pd.DataFrame(curves).to_csv(tables / "frontier_curves.csv", index=False)
    figures = folder / "figures" / "fashion_mnist"
    figures.mkdir(parents=True)
    (figures / "redecision_frontier.png").write_bytes(b"png")
    return folder


def test_the_headline_rows_are_chosen_on_validation_and_end_with_the_ceiling_as_a_reference():
    rows = headline.headline_rows(_records())
    assert list(rows["label"]) == ["baseline", "baseline+posthoc-worst", "static-mean-ratio-gamma4",
                                   "dro-eta0.01-formgroup", "static-mean-ratio-gamma4+posthoc-budget-drop0.01", ""]
    assert len(rows) <= headline.MAX_HEADLINE_ROWS and "focal-gamma2.0" not in set(rows["label"])  # best on test only
    assert rows["name"].iloc[2] == "TPR weights (Q&A recipe), γ = 4"  # display names, never labels
    assert rows["name"].iloc[-1] == headline.CEILING_NAME and "not a method" in headline.CEILING_NAME
    assert set(rows["worst_class"].iloc[:-1]) == {"Shirt"}
    static = rows.set_index("label").loc["static-mean-ratio-gamma4"]
    assert static["d_worst_class_tpr"] == pytest.approx(0.08) and static["d_accuracy"] == pytest.approx(-0.005)


def test_the_headline_table_says_rates_in_per_cent_the_worst_class_by_name_and_changes_in_points():
    rows = headline.headline_rows(_records())
    table = headline.headline_table(rows, "fashion_mnist", "3 seeds")
    lines = table.strip().splitlines()
    assert lines[0] == ("| Fashion-MNIST, 3 seeds | accuracy (%) | worst class: TPR (%) | Δ worst class (pts) "
                        "| Δ accuracy (pts) |")
    assert lines[2] == "| baseline | 90.1 | 71.0 (Shirt) | – | – |"
    assert lines[4].startswith("| TPR weights (Q&A recipe), γ = 4 | 89.6 | 79.0 (Shirt) | +8.0 ± 0.0 | -0.5 ± 0.0 |")
    assert len(lines) - 2 == len(rows) <= 6


def test_the_headline_sentences_are_two_or_three_of_one_idea_each_under_forty_words():
    rows = headline.headline_rows(_records())
    verdicts = pd.DataFrame({"method": ["static-mean-ratio-gamma4", "dro-eta0.01-formgroup"],
                             "verdict": ["crosses / no difference shown"] * 2, "levels_compared": [2, 2],
                             "levels_above": [0, 0], "levels_below": [0, 0]})
    for given in (verdicts, None):
        sentences = headline.headline_sentences(rows, "fashion_mnist", "3 seeds", given)
        assert 2 <= len(sentences) <= 3
        assert all(len(sentence.split()) < headline.MAX_WORDS for sentence in sentences), sentences
        assert "worst class (Shirt) 71.0 % of the time" in sentences[0]
        assert "TPR weights (Q&A recipe), γ = 4, changes that by +8.0 ± 0.0 points" in sentences[1]
    assert sentences[2].startswith("Re-deciding the baseline with offsets fitted on the test split itself")
    assert headline.headline_sentences(rows, "fashion_mnist", "3 seeds", verdicts)[2].startswith(
        "None of the 2 trained rows has a re-decision frontier above the baseline's")


def _published(tmp_path):
    """A README and a results page with their markers, the profile published into them: (readme, page, docs root)."""
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- headline:start -->\nold\n<!-- headline:end -->\noutro\n")
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n\nIntro.\n\n## The `cpu` profile\n\n<!-- cpu-results:start -->\n<!-- cpu-results:end -->\n")
    docs_root = tmp_path / "docs" / "results"
    publish(_results(tmp_path), "cpu", "2 CPU cores", "fashion_mnist", docs_root=docs_root, readme=readme,
            results_page=page)
    return readme, page, docs_root


def test_publish_writes_the_readme_headline_from_the_published_files(tmp_path):
    readme, _, _ = _published(tmp_path)
    text = readme.read_text()
    block = text.split("<!-- headline:start -->")[1].split("<!-- headline:end -->")[0]
    assert "old" not in block and text.startswith("intro\n") and text.endswith("outro\n")
    rows = [line for line in block.splitlines() if line.startswith("| ") and "accuracy (%)" not in line]
    assert len(rows) == 6 and rows[0].startswith("| baseline |") and "focal" not in block
    assert "![Fashion-MNIST" in block and "(docs/results/cpu/fashion_mnist_redecision_frontier.png)" in block
    assert "[docs/results.md](docs/results.md)" in block and "2 CPU cores" in block
    sentences = block.split("\n\n")[0].strip()
    assert "The one trained row has no re-decision frontier above the baseline's" in sentences
    assert re.search(r"-static-|posthoc-", block) is None  # no run label in the headline


def test_the_results_page_opens_with_numbered_findings_then_contents_and_shows_one_table_per_question(tmp_path):
    readme, page, docs_root = _published(tmp_path)
    text = page.read_text()
    assert text.startswith("# Results\n\n## Findings\n\n<!-- findings:start -->")
    assert text.index("## Findings") < text.index("## Contents") < text.index("Intro.") < text.index("cpu-results")
    findings = text.split("<!-- findings:start -->")[1].split("<!-- findings:end -->")[0]
    numbered = [line for line in findings.splitlines() if re.match(r"\d+\. ", line)]
    assert [line.split(".")[0] for line in numbered] == ["1", "2", "3"]
    assert numbered[0].startswith("1. In the `cpu` profile (Fashion-MNIST, 55,000 training images, 3 epochs, 3 seeds), "
                                  "the trained row best on validation among 3, TPR weights (Q&A recipe), γ = 4, changes "
                                  "the worst-class TPR by +8.0 ± 0.0 points")
    assert "after re-deciding, TPR weights (Q&A recipe), γ = 4 + post-hoc offsets (budget 1 pt) differs from " \
           "re-deciding the baseline" in numbered[1]
    for line in numbered:  # each links the file behind it, which the publication copied
        link = re.search(r"\]\((results/[^)]+)\)", line).group(1)
        assert (page.parent / link).exists(), link
    assert "- [The `cpu` profile](#the-cpu-profile)" in text and "  - [Fashion-MNIST (`cpu`)](#fashion-mnist-cpu)" in text
    # one table per question: the paired table shown, the method table (near-duplicate) only linked
    assert "#### Which rows lift the worst class, and at what accuracy?" in text and "| baseline |" in text
    assert "| baseline | 0 |" not in text and "[methods](results/cpu/fashion_mnist_methods.md)" in text
    assert "![Fashion-MNIST: redecision frontier](results/cpu/fashion_mnist_redecision_frontier.png)" in text
    # publishing again rewrites the blocks in place
    publish(_results(tmp_path / "again"), "cpu", "2 CPU cores", "fashion_mnist", docs_root=docs_root, readme=readme,
            results_page=page)
    assert page.read_text().count("## Findings") == 1 and page.read_text().count("<!-- contents:start -->") == 1


def test_the_contents_list_links_each_heading_to_its_github_anchor():
    page = ("# Results\n\n## Findings\n\n## How strong the baselines are\n\n```\n## not a heading\n```\n"
            "## The `names` profile\n\n### names (5 nationalities) (`names`)\n\n#### a question\n\n## The `names` profile\n")
    assert contents_list(page) == ("- [How strong the baselines are](#how-strong-the-baselines-are)\n"
                                   "- [The `names` profile](#the-names-profile)\n"
                                   "  - [names (5 nationalities) (`names`)](#names-5-nationalities-names)\n"
                                   "- [The `names` profile](#the-names-profile-1)\n")


def test_a_paragraph_shown_once_in_a_profiles_block_is_not_repeated(tmp_path):
    folder = _results(tmp_path)
    tables = folder / "tables" / "fashion_mnist"
    (tables / "goal.md").write_text("**Fashion-MNIST**: goal: not met.\n")
    (tables / "findings.md").write_text("**Fashion-MNIST**: goal: not met.\n\nSelected on validation: x.\n")
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n")
    publish(folder, "cpu", "2 CPU cores", None, docs_root=tmp_path / "docs" / "results", readme=tmp_path / "README.md",
            results_page=page)
    text = page.read_text()
    assert text.count("goal: not met.") == 1 and "Selected on validation: x." in text


def test_the_frontier_sentence_agrees_in_number():
    from lbw_utils.studies import redecision

    verdicts = pd.DataFrame({"method": ["ensemble-2", "margin-gamma2-sourcestatic"],
                             "verdict": [redecision.ABOVE, redecision.CROSSES]})
    assert headline.frontier_sentence(verdicts).startswith(
        "1 of the 2 trained rows has a re-decision frontier above the baseline's at every accuracy level compared: "
        "ensemble of 2 baselines.")
    both_above = verdicts.assign(verdict=redecision.ABOVE)
    assert headline.frontier_sentence(both_above).startswith("2 of the 2 trained rows have a re-decision frontier")


def test_a_names_task_counts_its_training_names():
    from lbw_utils.reporting.display import examples_noun

    assert [examples_noun(key) for key in ("names5", "names42", "names_csv", "fashion_mnist", "cifar10")] == [
        "names", "names", "names", "images", "images"]


def test_the_length_finding_reads_the_weighting_run_without_label_smoothing(tmp_path):
    rows = [("main", "baseline", 4, 0.0, 0.0), ("main", "ema-alpha0.01-norm", 4, 0.04, 0.03),
            ("main", "ema-alpha0.01-norm", 32, 0.01, 0.02),  # the main arm only: not the one the finding reads
            ("main", "static-mean-ratio-gamma4", 4, 0.08, 0.07), ("main", "static-mean-ratio-gamma4", 32, 0.1, 0.03),
            ("no-label-smoothing", "static-mean-ratio-gamma4", 4, 0.075, 0.024),
            ("no-label-smoothing", "static-mean-ratio-gamma4", 32, 0.019, 0.07)]
    pd.DataFrame([{"arm": arm, "method": method, "budget": budget, "seeds": 3, "d_worst_class_tpr": change,
                   "d_worst_class_tpr_ci": interval} for arm, method, budget, change, interval in rows]).to_csv(
        tmp_path / "fashion_mnist_length.csv", index=False)
    sentence = headline.length_finding(headline.Published("length", tmp_path, None), "fashion_mnist", "results")
    assert sentence.startswith("In the `length` profile (Fashion-MNIST, 3 seeds), without label smoothing, TPR "
                               "weights (Q&A recipe), γ = 4 changes the worst-class TPR by +7.5 ± 2.4 points at 4 "
                               "epochs and +1.9 ± 7.0 at 32, against +10.0 ± 3.0 at 32 with it (")
