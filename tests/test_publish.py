"""publish copies a profile's key files into docs/, rewrites only its marked block of docs/results.md and the
README's headline block."""

import json

import pytest

from lbw_utils.runner.profiles import DEFAULT_HEADLINE, ProfileError, headline_dataset
from lbw_utils.records import record_path, write_record
from lbw_utils.runner.publish import NotPublishable, check_publishable, main, publish


def test_publish_copies_tables_and_figures_and_rewrites_the_marked_block(tmp_path):
    results = tmp_path / "results" / "cpu"
    (results / "tables" / "names5").mkdir(parents=True)
    (results / "tables" / "names5" / "methods.md").write_text("| method |\n|---|\n| baseline |\n")
    (results / "tables" / "names5" / "against_bag.md").write_text("The student against the n-gram bag: short.")
    (results / "figures" / "names5").mkdir(parents=True)
    (results / "figures" / "names5" / "pareto.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- headline:start -->\nold headline\n<!-- headline:end -->\noutro\n")
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("intro\n<!-- cpu-results:start -->\nold numbers\n<!-- cpu-results:end -->\noutro\n")

    target = publish(results, "cpu", "2 CPU cores", "fashion_mnist", docs_root=tmp_path / "docs" / "results", readme=readme)

    assert (target / "names5_methods.md").read_text().endswith("| baseline |\n")
    assert (target / "names5_pareto.png").read_bytes() == b"png"
    text = page.read_text()
    assert "old numbers" not in text and text.endswith("outro\n")
    # a page without a title gets its Findings and contents first, then the page as it was
    assert text.startswith("## Findings\n") and text.index("## Contents") < text.index("intro\n")
    # the method table is linked (the paired table, where there is one, carries its absolute means)
    assert "[methods](results/cpu/names5_methods.md)" in text and "2 CPU cores" in text
    assert "(results/cpu/names5_pareto.png)" in text  # relative to docs/results.md
    # notebook 05's answer against the bag, shown whole under its question
    assert ("#### Does an ensemble of recurrent networks, or its distilled student, reach the n-gram bag?\n\n"
            "The student against the n-gram bag: short.\n") in text
    assert "(./names5_pareto.png)" in (target / "README.md").read_text()
    # no fashion_mnist goal and paired tables: the README's headline is left as it was
    assert readme.read_text() == "intro\n<!-- headline:start -->\nold headline\n<!-- headline:end -->\noutro\n"


def test_a_readme_without_markers_is_left_alone(tmp_path):
    (tmp_path / "r" / "tables" / "x").mkdir(parents=True)
    (tmp_path / "r" / "tables" / "x" / "methods.md").write_text("| m |\n")
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    publish(tmp_path / "r", "gpu", "one GPU", "fashion_mnist", docs_root=tmp_path / "docs", readme=readme)
    assert readme.read_text() == "no markers here\n"


def test_a_profile_new_to_the_results_page_is_appended_with_its_markers(tmp_path):
    (tmp_path / "r" / "tables" / "x").mkdir(parents=True)
    (tmp_path / "r" / "tables" / "x" / "methods.md").write_text("| m |\n|---|\n| baseline |\n")
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n\n<!-- cpu-results:start -->\ncpu numbers\n<!-- cpu-results:end -->\n")
    publish(tmp_path / "r", "gpu", "one GPU", "fashion_mnist", docs_root=tmp_path / "docs" / "results",
            readme=tmp_path / "README.md")
    text = page.read_text()
    assert "cpu numbers" in text and "## The `gpu` profile" in text
    start, end = text.index("<!-- gpu-results:start -->"), text.index("<!-- gpu-results:end -->")
    assert start < text.index("[methods](results/gpu/x_methods.md)") < end
    assert not (tmp_path / "README.md").exists()


def _finished_results(root, **marker):
    folder = root / "results" / "cpu"
    (folder / "tables" / "names5").mkdir(parents=True)
    (folder / "tables" / "names5" / "methods.md").write_text("| method |\n|---|\n| baseline |\n")
    (folder / "summary.md").write_text("# x\n\n- hardware: 2 CPU cores (AMD EPYC), no GPU; torch threads 2\n")
    info = {"profile": "cpu", "git_revision": "abc123", "dirty": False, "total_seconds": 60.0, **marker}
    (folder / "complete.json").write_text(json.dumps(info))
    return folder


@pytest.mark.parametrize("marker, message", [
    (None, "is incomplete: it has no complete.json"),
    ({"dirty": True, "git_revision": "abc123-dirty"}, "uncommitted changes"),
    ({"dirty": True, "uncommitted": ["docs/results.md", "lbw_utils/train.py"]}, "uncommitted changes"),
    ({"dirty": True, "uncommitted": ["docs/results/x.md"] * 20}, "uncommitted changes"),  # a list that may be cut
    ({"dirty": True, "uncommitted": ["README.md"], "revision_at_start": "abc000"}, "uncommitted changes"),
    ({"profile": "smoke"}, "belongs to profile 'smoke'"),
])
def test_publish_refuses_incomplete_or_dirty_results_and_writes_nothing(tmp_path, monkeypatch, capsys, marker,
                                                                        message):
    folder = _finished_results(tmp_path, **(marker or {}))
    if marker is None:
        (folder / "complete.json").unlink()
    monkeypatch.setattr("lbw_utils.runner.publish.REPO_ROOT", tmp_path / "repo")
    assert main(["--profile", "cpu", "--results-dir", str(tmp_path / "results")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
    with pytest.raises(NotPublishable, match="does not exist"):
        check_publishable(tmp_path / "results" / "gpu", "gpu")


def test_a_run_whose_only_uncommitted_changes_were_an_earlier_publication_is_publishable(tmp_path):
    """Publishing one profile and running the next before committing changes only what publishing writes."""
    changed = ["README.md", "docs/results.md", "docs/results/frontier/per_seed.csv"]
    folder = _finished_results(tmp_path, dirty=True, uncommitted=changed, revision_at_start="abc123")
    assert check_publishable(folder, "cpu")["uncommitted"] == changed


def test_publish_cli_publishes_a_complete_clean_run(tmp_path, monkeypatch, capsys):
    _finished_results(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("<!-- headline:start -->\n<!-- headline:end -->\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "results.md").write_text("<!-- cpu-results:start -->\nold\n<!-- cpu-results:end -->\n")
    monkeypatch.setattr("lbw_utils.runner.publish.REPO_ROOT", repo)
    assert main(["--profile", "cpu", "--results-dir", str(tmp_path / "results")]) == 0
    assert "published" in capsys.readouterr().out
    text = (repo / "docs" / "results.md").read_text()
    assert "names5_methods.md" in text and "2 CPU cores (AMD EPYC), no GPU" in text and "\nold\n" not in text
    assert (repo / "docs" / "results" / "cpu" / "names5_methods.md").exists()


def test_publish_shows_paired_goal_and_length_tables_where_a_dataset_has_them(tmp_path):
    results = tmp_path / "results" / "length"
    (results / "tables" / "fashion_mnist").mkdir(parents=True)
    (results / "tables" / "fashion_mnist" / "length.md").write_text("| arm | method |\n|---|---|\n| main | baseline |\n")
    (results / "figures" / "fashion_mnist").mkdir(parents=True)
    (results / "figures" / "fashion_mnist" / "length_effect.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- headline:start -->\nkept\n<!-- headline:end -->\n")
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("<!-- length-results:start -->\n<!-- length-results:end -->\n")
    target = publish(results, "length", "2 CPU cores", "fashion_mnist", docs_root=tmp_path / "docs" / "results", readme=readme)
    text = page.read_text()
    assert "kept" in readme.read_text()  # no goal or paired table: the headline stays
    assert "| main | baseline |" in text and "fashion_mnist_length_effect.png" in text
    assert (target / "fashion_mnist_length.md").exists()


def test_the_readme_paragraph_beyond_re_deciding_comes_from_notebook_09s_sentences(tmp_path):
    results = tmp_path / "results" / "frontier"
    tables = results / "tables" / "fashion_mnist"
    tables.mkdir(parents=True)
    (tables / "beyond_frontier.md").write_text("The re-decision frontier: ...\n- augment-all: above the baseline's curve.\n\n"
                                                "| method | level |\n|---|---|\n| augment-all | 0.9 |\n")
    (tables / "beyond_goal.md").write_text("**fashion_mnist**: goal: +15 points. Not met.\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- headline:start -->\nkept\n<!-- headline:end -->\n"
                      "<!-- beyond:start -->\nold\n<!-- beyond:end -->\noutro\n")
    (tmp_path / "docs").mkdir()

    publish(results, "frontier", "2 CPU cores", "fashion_mnist", docs_root=tmp_path / "docs" / "results", readme=readme)

    text = readme.read_text()
    block = text.split("<!-- beyond:start -->")[1].split("<!-- beyond:end -->")[0]
    assert "old" not in block and "kept" in text  # no paired.md/goal.md here: the headline stays as it was
    assert "`frontier` profile on 2 CPU cores" in block and "[docs/results.md](docs/results.md)" in block
    assert "- augment-all: above the baseline's curve." in block and "| augment-all |" not in block
    assert "**fashion_mnist**: goal: +15 points. Not met." in block


def test_the_headline_comes_from_the_profiles_headline_dataset_and_none_leaves_the_readme(tmp_path):
    from test_headline import _record, ROWS

    results = tmp_path / "results" / "names"
    for dataset in ("fashion_mnist", "names5"):
        for label in ROWS:
            for seed in range(3):
                record = _record(label, seed, dataset)
                write_record(record_path(results, dataset, label, seed), record)
        (results / "tables" / dataset).mkdir(parents=True)
        (results / "tables" / dataset / "paired.md").write_text("| method |\n|---|\n| baseline |\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- headline:start -->\nold\n<!-- headline:end -->\n")
    publish(results, "names", "2 CPU cores", None, docs_root=tmp_path / "docs" / "results", readme=readme)
    assert "old" in readme.read_text()  # no headline dataset: the README stays as it was
    publish(results, "names", "2 CPU cores", "names5", docs_root=tmp_path / "docs" / "results", readme=readme)
    assert "| names (5 nationalities), 3 seeds |" in readme.read_text() and "Fashion-MNIST" not in readme.read_text()


def test_a_profile_names_its_headline_dataset_and_a_bad_one_is_refused(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("studies: {}\nheadline: names5\n")
    assert headline_dataset(profile) == "names5"
    profile.write_text("studies: {}\nheadline: null\n")
    assert headline_dataset(profile) is None
    profile.write_text("studies: {}\n")
    assert headline_dataset(profile) == DEFAULT_HEADLINE == headline_dataset("cpu")
    for bad in ("../docs", "[names5]", "''"):
        profile.write_text(f"studies: {{}}\nheadline: {bad}\n")
        with pytest.raises(ProfileError, match=r"headline=.* must be a dataset name as its tables folder is named"):
            headline_dataset(profile)
