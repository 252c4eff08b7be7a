"""publish copies a profile's key files beside the README and rewrites only its marked block."""

from lbw_utils.publish import publish


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
