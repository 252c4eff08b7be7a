"""publish copies a profile's key files beside the README and rewrites only its marked block."""

import json

import pytest

from lbw_utils.publish import NotPublishable, check_publishable, main, publish


def test_publish_copies_tables_and_figures_and_rewrites_the_marked_block(tmp_path):
    results = tmp_path / "results" / "cpu"
    (results / "tables" / "names5").mkdir(parents=True)
    (results / "tables" / "names5" / "methods.md").write_text("| method |\n|---|\n| baseline |\n")
    (results / "figures" / "names5").mkdir(parents=True)
    (results / "figures" / "names5" / "pareto.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- cpu-results:start -->\nold numbers\n<!-- cpu-results:end -->\noutro\n")

    target = publish(results, "cpu", "2 CPU cores", docs_root=tmp_path / "docs", readme=readme)

    assert (target / "names5_methods.md").read_text().endswith("| baseline |\n")
    assert (target / "names5_pareto.png").read_bytes() == b"png"
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| baseline |" in text and "2 CPU cores" in text
    assert "(docs/cpu/names5_pareto.png)" in text
    assert "(./names5_pareto.png)" in (target / "README.md").read_text()


def test_a_readme_without_markers_is_left_alone(tmp_path):
    (tmp_path / "r" / "tables" / "x").mkdir(parents=True)
    (tmp_path / "r" / "tables" / "x" / "methods.md").write_text("| m |\n")
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    publish(tmp_path / "r", "gpu", "one GPU", docs_root=tmp_path / "docs", readme=readme)
    assert readme.read_text() == "no markers here\n"


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
    ({"profile": "smoke"}, "belongs to profile 'smoke'"),
])
def test_publish_refuses_incomplete_or_dirty_results_and_writes_nothing(tmp_path, monkeypatch, capsys, marker,
                                                                        message):
    folder = _finished_results(tmp_path, **(marker or {}))
    if marker is None:
        (folder / "complete.json").unlink()
    monkeypatch.setattr("lbw_utils.publish.REPO_ROOT", tmp_path / "repo")
    assert main(["--profile", "cpu", "--results-dir", str(tmp_path / "results")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
    with pytest.raises(NotPublishable, match="does not exist"):
        check_publishable(tmp_path / "results" / "gpu", "gpu")


def test_publish_cli_publishes_a_complete_clean_run(tmp_path, monkeypatch, capsys):
    _finished_results(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("<!-- cpu-results:start -->\nold\n<!-- cpu-results:end -->\n")
    monkeypatch.setattr("lbw_utils.publish.REPO_ROOT", repo)
    assert main(["--profile", "cpu", "--results-dir", str(tmp_path / "results")]) == 0
    assert "published" in capsys.readouterr().out
    text = (repo / "README.md").read_text()
    assert "| baseline |" in text and "2 CPU cores (AMD EPYC), no GPU" in text and "old" not in text
    assert (repo / "docs" / "results" / "cpu" / "names5_methods.md").exists()


def test_publish_shows_paired_goal_and_length_tables_where_a_dataset_has_them(tmp_path):
    results = tmp_path / "results" / "length"
    (results / "tables" / "fashion_mnist").mkdir(parents=True)
    (results / "tables" / "fashion_mnist" / "length.md").write_text("| arm | method |\n|---|---|\n| main | baseline |\n")
    (results / "figures" / "fashion_mnist").mkdir(parents=True)
    (results / "figures" / "fashion_mnist" / "length_effect.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- length-results:start -->\n<!-- length-results:end -->\n")
    target = publish(results, "length", "2 CPU cores", docs_root=tmp_path / "docs", readme=readme)
    text = readme.read_text()
    assert "| main | baseline |" in text and "fashion_mnist_length_effect.png" in text
    assert (target / "fashion_mnist_length.md").exists()
