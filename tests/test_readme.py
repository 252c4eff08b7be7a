"""The README stays a first-contact page: short, its links and the docs' links resolve, every module of the
package is named in docs/package.md, and the files that make the repository citable and its notebooks clean
by construction are there."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# Pages the README links to that other changes write; a link to one is checked once the page exists.
PAGES_WRITTEN_ELSEWHERE = {ROOT / "docs" / "extending.md", ROOT / "docs" / "gpu.md"}
# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def test_the_readme_is_at_most_200_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = [match.group(1) for match in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file(page):
    missing = []
    for target in relative_links(page):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() and path not in PAGES_WRITTEN_ELSEWHERE:
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_the_link_pattern_finds_links_and_images():
    page = "[a](docs/x.md#part) ![b](img/y.png) [web](https://example.org) [here](#top)\n```\n[no](z.md)\n```\n"
    text = FENCE.sub("", page)
    assert [m.group(1) for m in LINK.finditer(text)] == ["docs/x.md#part", "img/y.png", "https://example.org",
                                                          "#top"]


def package_modules() -> set[str]:
    """Every module of lbw_utils as docs/package.md names it: `name` for a top-level module, `pkg/name` inside
    a subpackage, and `path/__init__.py` / `fanout/__main__.py` for those files."""
    names = set()
    package = ROOT / "lbw_utils"
    for path in package.rglob("*.py"):
        relative = path.relative_to(package)
        if path.name in ("__init__.py", "__main__.py"):
            names.add(relative.as_posix() if relative.parent != Path(".") else "lbw_utils/__init__.py")
        else:
            names.add(relative.with_suffix("").as_posix())
    return names


def declares_specs(path: Path) -> bool:
    """Whether a module assigns ``SPECS`` at its top level (read with ``ast``; nothing is imported)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(target, ast.Name) and target.id == "SPECS" for target in targets):
            return True
    return False


def method_files(methods_dir: Path = ROOT / "lbw_utils" / "methods") -> dict[str, Path]:
    """The method files as docs/package.md would name them (``methods/static``): the modules of
    lbw_utils/methods that declare ``SPECS``. Each is described by its own docstring, not by a row."""
    return {f"methods/{path.stem}": path for path in sorted(methods_dir.glob("*.py"))
            if path.name != "__init__.py" and declares_specs(path)}


def test_every_module_is_named_in_docs_package_md():
    text = (ROOT / "docs" / "package.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE))
    modules = package_modules()
    assert "runner/fanout/merge" in modules and "methods/registry" in modules and "train" in modules
    unlisted = modules - named - set(method_files())
    assert not unlisted, f"modules missing from docs/package.md: {sorted(unlisted)}"
    assert not named - modules, f"docs/package.md names modules that do not exist: {sorted(named - modules)}"


def test_a_method_file_may_go_unlisted_but_says_what_it_holds():
    files = method_files()
    assert {"methods/static", "methods/posthoc", "methods/yardstick"} <= set(files)
    assert not {"methods/registry", "methods/spec", "methods/kinds", "methods/common"} & set(files)
    undocumented = [name for name, path in files.items() if not ast.get_docstring(ast.parse(path.read_text("utf-8")))]
    assert not undocumented, f"method files without a module docstring (it is their only description): {undocumented}"


def test_the_method_file_rule_reads_specs_from_the_source(tmp_path):
    (tmp_path / "listed.py").write_text('"""A family."""\nSPECS = []\n')
    (tmp_path / "typed.py").write_text("SPECS: list = []\n")
    (tmp_path / "helper.py").write_text("def f():\n    SPECS = []\n")  # not at the top level: not a method file
    (tmp_path / "__init__.py").write_text("SPECS = []\n")
    assert set(method_files(tmp_path)) == {"methods/listed", "methods/typed"}


def test_license_and_citation_are_there():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    for field in ("message", "title", "authors", "type"):
        assert citation[field], field
    titles = [reference["title"] for reference in citation["references"]]
    assert titles == ["Weighting the loss function based on previous seen true positive rates",
                      "Loss weighting for learnability imbalance in multiclass-classification",
                      "An Intuitive Loss for Imbalanced Classification"]
    for reference in citation["references"]:
        assert reference["type"] and reference["authors"], reference["title"]


SOURCE_FILE_WORDING = re.compile(r"\bseeds? 00\d")


def test_the_sources_are_named_by_title_not_by_file_number():
    """'seed 000', 'seeds 000/001' were names of files a reader does not have; the pages name the sources."""
    pages = [*PAGES, *(ROOT / "notebooks").glob("*.ipynb")]
    found = [page.name for page in pages if SOURCE_FILE_WORDING.search(page.read_text(encoding="utf-8"))]
    assert not found


# --- notebooks clean by construction ------------------------------------------------------------------------

def test_every_notebook_is_committed_without_outputs():
    """What nbstripout (the pre-commit hook) guarantees, checked without it: no outputs, no execution counts."""
    dirty = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
                dirty.append(f"{path.name} cell {index}")
    assert not dirty, ("notebooks saved with outputs (strip them: .venv/bin/nbstripout --keep-id "
                       f"notebooks/*.ipynb; `make lab` installs the hook that does it at commit): {dirty}")


def test_nbstripout_would_leave_every_notebook_as_it_is():
    nbstripout = shutil.which("nbstripout", path=str(Path(sys.executable).parent)) or shutil.which("nbstripout")
    if nbstripout is None:
        pytest.skip("nbstripout is not installed (it comes with the lab extra: make lab)")
    notebooks = sorted(str(path) for path in (ROOT / "notebooks").glob("*.ipynb"))
    result = subprocess.run([nbstripout, "--verify", "--keep-id", *notebooks], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def pre_commit_hooks() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def test_the_pre_commit_config_strips_notebooks_and_runs_ruff_without_downloading():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert all(repo["repo"] == "local" for repo in config["repos"])  # nothing to download on the first commit
    hooks = pre_commit_hooks()
    assert {"nbstripout", "ruff"} <= set(hooks)
    assert all(hook["language"] == "system" for hook in hooks.values())
    assert "nbstripout" in hooks["nbstripout"]["entry"] and "--keep-id" in hooks["nbstripout"]["entry"]
    assert re.search(hooks["nbstripout"]["files"], "notebooks/01_baseline.ipynb")


def test_the_ruff_hook_passes_on_the_tree():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the lab extra: make lab)")
    hook = pre_commit_hooks()["ruff"]
    arguments = hook["args"]
    result = subprocess.run([ruff, "check", "--no-cache", *arguments, "lbw_utils", "tests", "benchmarks", "notebooks"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# The README's papermill example at tiny scale: the same command, with sizes a test can afford.
TINY_PAPERMILL = ("-p epochs 1 -y 'seeds: [0]' -p per_class 20 -p val_size 0.25 -p batch_size 64 "
                  "-p model_size tiny -p device cpu")


def test_the_readme_papermill_example_runs_in_a_fresh_checkout(tmp_path):
    """Copied as a reader copies it, into a checkout without results/ (papermill refuses to create the folder of
    the executed notebook), with tiny sizes appended (a later -p wins) and the test's interpreter for .venv's."""
    from test_notebooks import copy_of_checkout

    block = next(match.group(0) for match in FENCE.finditer(README.read_text(encoding="utf-8"))
                 if "bin/papermill notebooks/" in match.group(0))
    script = "\n".join(block.splitlines()[1:-1]).replace("\\\n", " ")
    script = script.replace(".venv/bin/papermill", f"{sys.executable} -m papermill")
    script = re.sub(r"(-p results_dir \S+)", rf"\1 {TINY_PAPERMILL}", script)
    checkout = copy_of_checkout(tmp_path / "checkout")
    assert not (checkout / "results").exists()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("LBW_RESULTS_DIR", None)
    shown = subprocess.run(["bash", "-euc", script], cwd=checkout, env=env, capture_output=True, text=True,
                           timeout=600)
    assert shown.returncode == 0, (shown.stdout + shown.stderr)[-3000:]
    written = [path.relative_to(checkout).as_posix() for path in (checkout / "results").rglob("*") if path.is_file()]
    assert "results/my_study/01_baseline.ipynb" in written
    assert "results/my_study/records/fashion_mnist/baseline__seed0.json" in written
