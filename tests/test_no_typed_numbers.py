"""No result typed by hand: outside the generated blocks, the prose of the README, of docs/*.md and of the notebooks'
markdown cells carries no result number, seed count, epoch count, subset size or run time. Such a sentence goes
stale the moment a profile or a run changes (the pages said "4 epochs, 3 seeds" long after the cpu profile trained
3 epochs on 10 seeds); the numbers belong in the blocks `make publish` and the profile files write, or in the
tables those link to.

What counts as result-like is a short list of patterns (:data:`RESULT_LIKE`); what may stand in prose all the same
is a short, explicit allow-list (:data:`ALLOWED`), each entry with its reason. Code spans and code blocks are not
prose: a parameter value is written there (`-p epochs 5`, `gamma=4`)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from lbw_utils.runner.profiles import available_profiles
from lbw_utils.stats import GOAL_MAX_ACCURACY_LOSS, GOAL_WORST_CLASS_GAIN

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_YET_SCANNED: set[str] = set()  # every notebook is scanned
NOTEBOOKS = [path for path in sorted((ROOT / "notebooks").glob("*.ipynb")) if path.stem not in NOT_YET_SCANNED]


def generated_block_names() -> set[str]:
    """The blocks a program writes: the README's headline and beyond-re-deciding paragraph, docs/results.md's
    findings, contents and each profile's block (lbw_utils.runner.publish), the profile table
    (lbw_utils.runner.profiles)."""
    return {"headline", "beyond", "findings", "contents", "profiles",
            *(f"{profile}-results" for profile in available_profiles())}


BLOCK = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.DOTALL)
FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INDENTED_CODE = re.compile(r"(?:^\n)((?: {4}[^\n]*\n)+)", re.MULTILINE)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)")

NUMBER = r"\d[\d,]*(?:\.\d+)?"
# Counts spelled out too; not "one" ("one study for one seed" names a unit, not a count).
NUMBER_WORD = r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty)"
UNIT = r"(?:seeds?|epochs?|folds|images?|names|points?|pts|min|minutes?|s|seconds|ms|h|hours?)"
QUALIFIER = r"(?:evaluated|tuning|paired|training|validation|test|more|extra|full|further)"
RESULT_LIKE = {
    "a percentage": rf"(?<![\w.]){NUMBER}\s?%",
    "a decimal number": r"(?<![\w.])[-+]?\d+\.\d+(?![\w.])",
    "a multiple": rf"(?<![\w.]){NUMBER}\s?x\b",
    "a count with its unit (10 evaluated seeds, 3 epochs, 8,000-image, 19.3 min)":
        rf"(?<![\w.])(?:{NUMBER}|(?i:{NUMBER_WORD}))[ -](?:{QUALIFIER} )?{UNIT}\b",
    "a numbered seed, epoch or fold (tuning seeds 100-102, fold 0)": rf"\b(?:seeds?|epochs?|folds?) {NUMBER}\b",
}
RESULT_PATTERN = re.compile("|".join(f"(?:{pattern})" for pattern in RESULT_LIKE.values()))

# Phrases that carry a number and are not results; each is removed before the scan.
GOAL = (f"+{100 * GOAL_WORST_CLASS_GAIN:g} points of worst-class TPR at no more than {100 * GOAL_MAX_ACCURACY_LOSS:g} "
        "points of accuracy")
ALLOWED = {
    "the research goal, the constants of lbw_utils.stats (a target, not a result)": re.escape(GOAL),
    "the confidence level of every interval (a convention, not a result)": r"\b95 %",
    "the accuracy a speed benchmark times to, its name (benchmarks/time_to_accuracy.py, make gpu-check)":
        r"\btime[ -]to[ -](?:91|94) %",
}
ALLOWED_PATTERN = re.compile("|".join(f"(?:{pattern})" for pattern in ALLOWED.values()))


def prose(text: str) -> str:
    """``text`` without generated blocks, code blocks, code spans and link targets (unknown block names stay in:
    only a block a program writes may hold numbers)."""
    text = BLOCK.sub(lambda match: "" if match.group(1) in generated_block_names() else match.group(0), text)
    text = FENCE.sub("", text)
    text = INDENTED_CODE.sub("\n", text)
    text = CODE_SPAN.sub("``", text)
    text = LINK_TARGET.sub("]()", text)
    return ALLOWED_PATTERN.sub("", text)


def typed_numbers(text: str) -> list[str]:
    """Each line of ``text``'s prose that holds a result-like number, with what was found."""
    found = []
    for line in prose(text).splitlines():
        hits = [match.group(0).strip() for match in RESULT_PATTERN.finditer(line)]
        if hits:
            found.append(f"{hits}: {line.strip()[:160]}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_a_page_types_no_result_number_outside_its_generated_blocks(page):
    found = typed_numbers(page.read_text(encoding="utf-8"))
    assert not found, (f"{page.relative_to(ROOT)} types result-like numbers outside generated blocks; generate "
                       "them (make publish, the profile files) or delete them:\n" + "\n".join(found))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_a_notebooks_markdown_types_no_result_number(path):
    notebook = nbformat.read(path, as_version=4)
    found = [f"cell {index} {line}" for index, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"
             for line in typed_numbers(cell.source)]
    assert not found, (f"{path.name}'s markdown types result-like numbers (a notebook's numbers are its outputs, "
                       "computed from the records):\n" + "\n".join(found))


@pytest.mark.parametrize("sentence", [
    "The cpu profile trains 4 epochs on 3 seeds.",
    "A 10,000-image Fashion-MNIST subset beside an 8,000-image one.",
    "The cpu profile took 19.3 min.",
    "Ours takes 0.193x the plain loop's time.",
    "Static weights gain 6.5 points of worst-class TPR.",
    "Tuning seeds 100-102 choose the exponent.",
    "It lifts the worst class by 12 % on 10 evaluated seeds.",
    "A run takes 31 s on one core.",
    "Three epochs on ten evaluated seeds.",
])
def test_the_scan_finds_results_counts_and_times(sentence):
    assert typed_numbers(sentence)


@pytest.mark.parametrize("sentence", [
    f"The research goal: {GOAL} lost.",
    "Mean ± 95 % interval over seeds, paired with the same seed's baseline.",
    "`make gpu-check` times the CIFAR-10 time-to-94 % recipe.",
    "Pass `-p epochs 5` to papermill; the method `{\"name\": \"static\", \"gamma\": 4}`.",
    "Notebook 05, section 3, the paper's Fig. 2; 5-fold cross-fitting; 5 and 42 nationalities.",
    "```bash\nmake reproduce PROFILE=cpu SEEDS=0  # 3 epochs\n```",
    "<!-- cpu-results:start -->\n28.0 min recorded, 10 seeds\n<!-- cpu-results:end -->",
    "See [the table](results/cpu/fashion_mnist_0.5_points.md).",
])
def test_the_scan_leaves_parameters_code_generated_blocks_and_the_allow_list_alone(sentence):
    assert not typed_numbers(sentence)


def test_only_a_block_a_program_writes_may_hold_numbers():
    assert typed_numbers("<!-- notes:start -->\n3 epochs, 10 seeds\n<!-- notes:end -->")
    assert "cpu-results" in generated_block_names() and "profiles" in generated_block_names()
