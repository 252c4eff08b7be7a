"""lbw_utils.reporting: the tables (markdown, CSV, LaTeX), the generated sentences and the one writer of a
notebook's generated texts, from lbw_utils.stats' numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lbw_utils.reporting.outputs import save_texts
from lbw_utils.runs.experiments import method_label
from lbw_utils.reporting.paper import baseline_bars
from lbw_utils.reporting.sentences import (
    describe_change,
    family_difference_statement,
    fold_wording,
    goal_statement,
    trajectory_summary,
)
from lbw_utils.reporting.tables import (
    class_change_table,
    family_table,
    formatted_group_change,
    markdown_table,
    mean_interval_text,
    save_paired_tables,
    save_tables,
    to_latex,
    to_markdown,
)
from lbw_utils.stats import (
    family_difference,
    group_tpr_change,
    method_table,
    paired_table,
    paired_tpr_change,
)
from stats_records import paired_study, record, study, two_families, with_trajectory


def test_mean_interval_text_says_what_it_has():
    assert mean_interval_text(0.81234, 0.0456) == "0.812 ± 0.046"
    assert mean_interval_text(12.34, math.nan, digits=1) == "12.3"
    assert mean_interval_text(math.nan, 0.1) == "–"


def test_markdown_and_latex_contain_every_row():
    table = method_table([r for r in study() if r["dataset"] == "fashion_mnist"])
    markdown = to_markdown(table)
    lines = markdown.strip().splitlines()
    assert len(lines) == 2 + 3  # header, rule, one line per method
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0][:2] == ["method", "seeds"] and set(lines[1]) <= {"|", "-", ":"}
    assert cells[2][:2] == ["baseline", "3"]
    static_mean = table.set_index("method").loc["static", "accuracy"]
    assert f"{static_mean:.3f} ± " in markdown
    assert ["EMA weights, α = 0.01", "2"] in [row[:2] for row in cells]  # the display name, not the label

    latex = to_latex(table, caption="Fashion-MNIST, 3 seeds")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert latex.count(rule) == 1
    assert latex.index(r"\toprule") < latex.index(r"\midrule") < latex.index("baseline") < latex.index(
        r"\bottomrule")
    assert r"$\pm$" in latex and "±" not in latex
    assert r"\caption{Fashion-MNIST, 3 seeds}" in latex
    assert r"\begin{tabular}{lrrrrrrr}" in latex
    # display names, their Unicode and pdflatex's special characters escaped ("Q&A" would end a cell)
    for method in ("baseline", r"TPR weights (Q\&A recipe), $\gamma$ = 4", r"EMA weights, $\alpha$ = 0.01"):
        assert any(line.startswith(method + " & ") for line in latex.splitlines())
    assert "γ" not in latex and "α" not in latex


def test_latex_escapes_underscores():
    table = method_table([record("static_g2", 0, [0.8, 0.6]), record("baseline", 0, [0.9, 0.5])])
    latex = to_latex(table)
    assert r"static\_g2" in latex and "static_g2" not in latex


def test_save_tables_writes_three_formats(tmp_path):
    table = method_table(study())
    paths = save_tables(table, tmp_path / "tables" / "summary", caption="all")
    assert set(paths) == {"md", "csv", "tex"}
    assert paths["md"].read_text() == to_markdown(table)
    assert paths["tex"].read_text() == to_latex(table, "all")
    back = pd.read_csv(paths["csv"])
    assert back["method"].tolist() == table["method"].tolist()
    np.testing.assert_allclose(back["D"].to_numpy(), table["D"].to_numpy(), equal_nan=True)
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["summary.csv", "summary.md", "summary.tex"]


def test_paired_tables_are_written(tmp_path):
    paths = save_paired_tables(paired_table(paired_study()), tmp_path / "paired")
    assert "Pareto front" in paths["md"].read_text() and r"$\pm$" in paths["tex"].read_text()
    assert r"$\Delta$ accuracy (pts)" in paths["tex"].read_text() and "Δ" not in paths["tex"].read_text()
    assert pd.read_csv(paths["csv"])["method"].tolist()[0] == "baseline"


def test_goal_statement_when_no_method_meets_the_goal():
    text = goal_statement(paired_table(paired_study()), "fashion_mnist")
    assert "Not met." in text and "gentle" in text and "within the accuracy budget" in text
    assert "No method dominates all others" in text


def test_goal_statement_names_the_method_that_meets_the_goal():
    records = []
    for seed, shift in enumerate((0.0, 0.02, -0.02)):
        records.append(record("baseline", seed, [0.95 + shift, 0.6 + shift]))
        records.append(record("fixer", seed, [0.95 + shift, 0.8 + shift]))
    text = goal_statement(paired_table(records), "fashion_mnist")
    assert "Met by fixer." in text and "fixer dominates every other method" in text


def test_goal_statement_names_the_largest_gain_beyond_the_budget_and_how_far_it_is():
    text = goal_statement(paired_table(paired_study()), "fashion_mnist")
    # strong: +18 worst-class points, but 3.3 points of accuracy lost: 2.8 over the 0.5-point budget
    assert "Largest worst-class gain at any accuracy: strong, +18.0 ± 0.0 points" in text
    assert "0.0 points short of the gain, 2.8 points over the accuracy budget" in text
    assert "gentle, +4.0 ± 0.0 points of worst-class TPR" in text and "11.0 points short of the gain" in text


def test_describe_change_is_computed_from_the_paired_table():
    table = paired_table(paired_study())
    sentence = describe_change(table, "gentle")
    assert sentence.startswith("gentle (3 seeds): +4.0 ± 0.0 points of worst-class TPR at +1.3 ± 0.0 points")
    assert "seed-to-seed std: 5.0 points of worst-class TPR" in sentence and "on the Pareto front" in sentence
    assert "dominated" in describe_change(table, "worse")
    with pytest.raises(ValueError, match="method='nope' is not in the paired table"):
        describe_change(table, "nope")


def test_fold_wording_turns_a_seed_sentence_into_a_fold_sentence():
    sentence = describe_change(paired_table(paired_study()), "gentle")
    said = fold_wording(sentence)
    assert said.startswith("gentle (3 folds): ") and "same fold's baseline" in said and "fold-to-fold std" in said
    assert "seed" not in said


def test_family_difference_statement_reads_the_holm_adjusted_p_first():
    first, second = two_families()
    table = family_difference(first, second, ["lifts", "same", "absent"])
    text = family_difference_statement(table, "the recurrent network", "the n-gram bag", "fold")
    assert "paired by fold over 3 folds, 2 methods" in text
    assert ("In worst-class TPR, different (the recurrent network minus the n-gram bag): lifts +11.0 ± 2.5 points "
            "(Holm-adjusted p 0.003)") in text
    assert "no difference shown: same." in text
    # an interval away from 0 whose Holm-adjusted p is not below 0.05 is named apart, not as a difference
    loose = table.assign(p_worst_class_tpr_holm=[0.2, 1.0])
    assert ("interval away from 0 but not after Holm's adjustment: lifts +11.0 ± 2.5 points (Holm-adjusted p 0.200)"
            in family_difference_statement(loose, "a", "b"))
    assert "over 3 seeds, 1 method:" in family_difference_statement(table.iloc[:1], "a", "b")
    assert family_difference_statement(table.iloc[0:0], "a", "b") == "No weighting ran on both a and b."


def test_family_table_shows_both_families_and_their_difference():
    first, second = two_families()
    shown = family_table(paired_table(first), paired_table(second),
                         family_difference(first, second, ["lifts", "same"]), ["lifts", "same", "absent"])
    lifts = shown.set_index("method").loc["lifts"]
    assert lifts["Δ worst (bag, pts)"] == "0.0 ± 0.0" and lifts["rnn minus bag, Δ worst (pts)"] == "11.0 ± 2.5"
    assert shown.set_index("method").loc["absent"].isna().all()  # in neither family: an empty row


def test_group_change_is_one_row_per_group_with_the_baselines_tpr_first():
    classes = ["british", "american", "german"]
    records = [{"method_label": label, "seed": seed, "dataset": "names5", "classes": classes, "test": {"tpr": tpr}}
               for label, seed, tpr in (("baseline", 0, [0.5, 0.4, 0.9]), ("baseline", 1, [0.6, 0.3, 0.9]),
                                        ("ema", 0, [0.6, 0.5, 0.8]), ("ema", 1, [0.7, 0.4, 0.9]))]
    shown = formatted_group_change(group_tpr_change(records, [["british", "american"]], ["ema"]))
    assert shown.columns.tolist() == ["group", "baseline TPR", "Δ EMA weights, α = 0.01 (pts)"]
    assert shown.loc[0, "group"] == "british, american" and shown.loc[0, "baseline TPR"].startswith("0.450 ± ")
    assert shown.loc[0, "Δ EMA weights, α = 0.01 (pts)"] == "10.0 ± 0.0"


def test_class_change_table_follows_the_chosen_classes():
    records = [dict(r, classes=["shoe", "bag", "shirt"]) for r in paired_study()]
    shown = class_change_table({"strong": paired_tpr_change(records, "strong")}, ["shirt"])
    assert shown.to_dict("records") == [{"method": "strong", "Δ shirt (pts)": "18.0 ± 0.0",
                                         "shirt: baseline seed std (pts)": 5.0}]


def test_trajectory_summary_says_the_first_update_and_the_zeroed_classes():
    records = [with_trajectory("cdb", 0, [[2.0, 0.5, 0.5], [3.0, 0.0, 0.0]], tau=[0.5]),
               with_trajectory("cdb", 1, [[1.0, 1.0, 1.0], [0.0, 1.5, 1.5]], tau=[0.7])]
    text = trajectory_summary(records, "cdb")
    assert text.startswith("CDB (CIFAR-LT form), dynamic τ (2 seeds): after the first update the largest class weight is 1.50 on average (50 %")
    assert "per seed 2.00, 1.00" in text and "with exponent tau 0.60" in text
    assert text.endswith("some class had weight exactly 0 after 2 of 4 updates (first after update 2, depending "
                         "on the seed).")
    assert trajectory_summary(records, "ema") == "EMA weights, α = 0.01: no recorded weight trajectory."


def test_markdown_table_rounds_where_asked():
    frame = pd.DataFrame({"class": ["a"], "pooled TPR": [0.123456]})
    assert markdown_table(frame, 4) == frame.round(4).to_markdown(index=False) + "\n"
    assert "0.123456" in markdown_table(frame)


def test_save_texts_writes_each_generated_text_under_the_datasets_tables(tmp_path):
    paths = save_texts(tmp_path, "names5", {"goal.md": "**names5**: goal.\n", "tuning.json": "{}\n"})
    assert paths == [tmp_path / "tables" / "names5" / "goal.md", tmp_path / "tables" / "names5" / "tuning.json"]
    assert paths[0].read_text(encoding="utf-8") == "**names5**: goal.\n"
    assert not list((tmp_path / "tables" / "names5").glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("texts, message", [
    ({"../goal.md": "x"}, "file name '../goal.md' is not allowed"),
    ({"goal.png": "x"}, "file name 'goal.png' is not allowed"),
    ({"goal.md": "x", "findings": "y"}, "file name 'findings' is not allowed"),
    ({"goal.md": ["x"]}, "the text for 'goal.md' is a list"),
])
def test_save_texts_refuses_a_bad_name_or_text_before_writing_anything(tmp_path, texts, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        save_texts(tmp_path, "names5", texts)
    assert not (tmp_path / "tables").exists()


def test_the_baseline_bars_are_named_from_the_records_data_not_the_datasets_name():
    images = {"parameters": {"data": {"dataset": "names_like_images", "input_shape": [1, 28, 28]}}}
    names = {"parameters": {"data": {"name": "fashion_like_names", "longest_name": 12}}}
    assert baseline_bars(images) == ("fig1_tpr_bars", False)
    assert baseline_bars(names) == ("fig2_tpr_bars", True)  # lowest first: the nationalities have no order


def _evaluated_study() -> list[dict]:
    """The paired study as notebook 06 reads it: image records with classes, validation scores and methods."""
    records = []
    for item in paired_study():
        method = {"name": "baseline"} if item["method_label"] == "baseline" else {"name": "static"}
        records.append({**item, "classes": ["shoe", "bag", "shirt"], "val": item["test"], "method": method,
                        "parameters": {"data": {"input_shape": [1, 28, 28]}}})
    return records


def test_notebook_06_writes_one_datasets_tables_figures_and_findings(tmp_path):
    from lbw_utils.reporting import paper

    records = _evaluated_study()
    table, paired, shown = paper.save_dataset_tables(records, tmp_path)
    tables = tmp_path / "tables" / "fashion_mnist"
    assert sorted(p.name for p in tables.iterdir()) == ["goal.md", "methods.csv", "methods.md", "methods.tex",
                                                        "paired.csv", "paired.md", "paired.tex"]
    assert shown[0] == "\n### Fashion-MNIST\n" and shown[-1] == "\n" + (tables / "goal.md").read_text()
    assert paper.save_dataset_figures(records, tmp_path, table, paired) == []
    figures = {p.name for p in (tmp_path / "figures" / "fashion_mnist").glob("*.png")}
    assert figures == {"fig1_tpr_bars.png", "baseline_vs_best.png", "paired_change_best.png", "pareto.png"}
    text = paper.findings(records, paired, tmp_path)
    assert text.startswith("**Fashion-MNIST** (generated from 12 run records). Selected on validation (highest mean "
                           "validation worst-class TPR among 3 weightings; post-hoc rows cross-fitted): strong (3 seeds)")
    assert "Hyper-parameters" not in text  # no tuning choice in this folder
    without = [r for r in records if r["method_label"] == "baseline"]
    assert paper.findings(without, paired_table(without), tmp_path) is None
    assert paper.save_dataset_figures(records[1:2], tmp_path, table, paired) == [
        "fashion_mnist: no 'baseline' records, skipping its figures"]


def test_notebook_09s_answer_and_its_targeted_rows():
    from lbw_utils.reporting import beyond
    from lbw_utils.studies import representation

    records = _evaluated_study()
    paired = paired_table(records)
    comparisons = [("strong", "gentle")]
    text = beyond.answer(records, paired, comparisons, "The ceiling moved.", "**goal**\n")
    parts = text.split("\n\n")
    assert parts[0].startswith("Selected on validation among 3 methods: strong (3 seeds)")
    assert parts[1:3] == ["The ceiling moved.", "**goal**"] and text.endswith(".\n")
    assert [part[:8] for part in parts[3:]] == ["- strong", "- gentle", "- worse ", "- strong"]
    assert parts[-1].startswith("- strong against gentle (3 seeds, paired by seed; test split): +14.0 ± 0.0 points")
    methods = [{"name": "augment", "classes": "all"}, {"name": "augment"}, {"name": "margin"}, {"name": "pair-margin"}]
    labels = [method_label(m) for m in methods]
    assert representation.planned_comparisons(methods) == [(labels[1], labels[0]), (labels[3], labels[2])]
    assert representation.planned_comparisons(methods[:1]) == []
    weights = {"augmented_classes": [2], "pair_margins": [[0.0, 0.5, 0.1], [0.5, 0.0, 0.9], [0.1, 0.9, 0.0]]}
    targets = representation.targeted_classes([{**records[1], "weights": weights}, records[0]],
                                              ["shoe", "bag", "shirt"], seed=0, top=4)
    assert beyond.targeting_lines(targets) == [
        "strong: augments ['shirt']", "strong: largest pair margins (logits): bag / shirt 0.90, bag / shoe 0.50"]


def test_datasets_are_named_as_people_write_them():
    from lbw_utils.reporting.display import dataset_name

    assert [dataset_name(key) for key in ("fashion_mnist", "cifar10", "names5", "names42", "my_data")] == [
        "Fashion-MNIST", "CIFAR-10", "names (5 nationalities)", "names (42 nationalities)", "my data"]
    with pytest.raises(ValueError, match="expected a dataset key"):
        dataset_name("")


def test_saved_tables_name_rows_for_a_reader_while_the_csv_keeps_the_labels(tmp_path):
    from lbw_utils.reporting.tables import save_paired_tables

    records = [dict(r, method_label="static-mean-ratio-gamma4") if r["method_label"] == "strong" else r
               for r in paired_study()]
    paths = save_paired_tables(paired_table(records), tmp_path / "paired")
    markdown, csv = paths["md"].read_text(), paths["csv"].read_text()
    assert "| TPR weights (Q&A recipe), γ = 4 " in markdown and "static-mean-ratio-gamma4" not in markdown
    assert "static-mean-ratio-gamma4" in csv and "TPR weights" not in csv
    assert r"TPR weights (Q\&A recipe), $\gamma$ = 4" in paths["tex"].read_text()
