"""Hyper-parameters chosen on tuning seeds: grid checks, the choice rule (validation only), the evaluated check."""

import pytest

from lbw_utils.reporting import tuning as tuning_report
from lbw_utils.runs.experiments import method_label
from lbw_utils.studies import tuning

GRID = {"margin": {"method": {"name": "margin", "source": "static"}, "key": "gamma", "values": [2, 4, 8]}}


def _record(label, seed, val_worst, val_accuracy, method=None):
    return {"method_label": label, "seed": seed, "method": method or {"name": label},
            "val": {"worst_class_tpr": val_worst, "accuracy": val_accuracy},
            "test": {"worst_class_tpr": 1.0, "accuracy": 1.0}}  # the choice must never read these


def _records(scores):
    """scores: gamma -> (val worst, val accuracy) for seeds 100 and 101; baseline accuracy 0.90."""
    out = []
    for seed in (100, 101):
        out.append(_record("baseline", seed, 0.70, 0.90))
        out += [_record(method_label({"name": "margin", "source": "static", "gamma": gamma}), seed, worst, accuracy)
                for gamma, (worst, accuracy) in scores.items()]
    return out


def test_the_highest_worst_class_within_the_budget_is_chosen():
    records = _records({2: (0.75, 0.899), 4: (0.80, 0.897), 8: (0.85, 0.880)})  # gamma 8 loses 2 points: outside the 0.5 budget
    table = tuning.tuning_table(records, GRID)
    assert list(table["within_budget"]) == [True, True, False]
    assert tuning.choose(records, GRID)["margin"] == {"key": "gamma", "value": 4,
                                                      "method": {"name": "margin", "source": "static", "gamma": 4}}
    assert isinstance(tuning.choose(records, GRID)["margin"]["value"], int)  # 4, not 4.0: labels stay the same
    text = tuning_report.describe(table, [100, 101])
    assert "gamma 4 among 3 values" in text and "[100, 101]" in text


def test_with_no_value_within_the_budget_the_one_losing_least_is_chosen():
    records = _records({2: (0.75, 0.88), 4: (0.80, 0.87), 8: (0.85, 0.86)})
    assert tuning.choose(records, GRID)["margin"]["value"] == 2
    assert "outside the budget" in tuning_report.describe(tuning.tuning_table(records, GRID), [100, 101])


@pytest.mark.parametrize("grid, message", [
    ({}, "non-empty mapping"),
    ({"m": {"method": {"name": "margin"}, "key": "gamma"}}, "exactly the keys"),
    ({"m": {"method": {"source": "static"}, "key": "gamma", "values": [2, 4]}}, "with a 'name'"),
    ({"m": {"method": {"name": "margin", "gamma": 4}, "key": "gamma", "values": [2, 4]}}, "also fixed"),
    ({"m": {"method": {"name": "margin"}, "key": "gamma", "values": [4]}}, "at least two distinct"),
    ({"m": {"method": {"name": "margin"}, "key": "gamma", "values": [2, -1]}}, "gamma"),
    ({"m": {"method": {"name": "margin"}, "key": "gama", "values": [2, 4]}}, "gama"),
])
def test_bad_grids_are_refused_naming_what_is_wrong(grid, message):
    with pytest.raises(ValueError, match=message):
        tuning.check_grid(grid)


def test_check_evaluated_says_whether_the_profile_uses_the_choice():
    chosen = {"margin": {"key": "gamma", "value": 4, "method": {"name": "margin", "source": "static", "gamma": 4}}}
    same = [{"method": {"name": "margin", "source": "static", "gamma": 4}}, {"method": {"name": "baseline"}}]
    assert "the value the tuning seeds chose" in tuning_report.check_evaluated(chosen, same)[0]
    other = [{"method": {"name": "margin", "source": "static", "gamma": 8}}]
    assert "is not this run's choice" in tuning_report.check_evaluated(chosen, other)[0]
    assert "no evaluated row" in tuning_report.check_evaluated(chosen, [{"method": {"name": "baseline"}}])[0]
    # defaults filled in on both sides: "source" static is margin's default, so it may be left out
    implicit = [{"method": {"name": "margin", "gamma": 4}}]
    assert "the value the tuning seeds chose" in tuning_report.check_evaluated(chosen, implicit)[0]


def test_the_choice_is_written_and_read_back_as_json_and_checked_on_the_evaluated_rows(tmp_path):
    records = _records({2: (0.75, 0.899), 4: (0.80, 0.897), 8: (0.85, 0.880)})
    chosen = tuning.choose(records, GRID)
    text = tuning.choice_text([100, 101], chosen)
    assert tuning.read_choice(tmp_path, "toy") is None
    path = tuning.choice_path(tmp_path, "toy")
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    choice = tuning.read_choice(tmp_path, "toy")
    assert choice == {"seeds": [100, 101], "chosen": chosen}
    evaluated = [{"method": {"name": "margin", "gamma": 4}}, {"method": {"name": "margin", "gamma": 8.0}}]
    assert tuning.evaluated_values(chosen, evaluated) == {"margin": ["4", "8.0"]}
    assert tuning_report.tuning_check(choice, evaluated[:1], tmp_path, "toy") == (
        "tuning seeds [100, 101]: margin: the evaluated rows use gamma 4, the value the tuning seeds chose.")
    assert tuning_report.tuning_check(None, evaluated, tmp_path, "toy").startswith(
        f"no tuning choice in {path.parent} yet")
