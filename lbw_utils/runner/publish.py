"""Copy a profile's key figures and tables into docs/, and the headline into the README.

    make publish PROFILE=cpu          # = python -m lbw_utils.runner.publish --profile cpu

``results/`` is git-ignored; ``docs/results/<profile>/`` is not. ``docs/results.md`` shows
the profile's tables and figures from there: the block between its
``<!-- <profile>-results:start -->`` and ``<!-- <profile>-results:end -->`` markers is rewritten
here (and appended, with its markers, when the page has none for the profile). The README's
``<!-- headline:start -->`` ... ``<!-- headline:end -->`` block is rewritten from the same tables:
the goal statement of the profile's headline dataset (its ``headline`` key, :mod:`lbw_utils.runner.profiles`) and
its paired table cut to the baseline and at most
:data:`HEADLINE_ROWS` methods of the Pareto front, largest worst-class gain first, for a profile that has
them; its ``<!-- beyond:start -->`` ... ``<!-- beyond:end -->`` block from notebook 09's generated sentences
(which rows moved the ceiling of re-deciding, and the goal), for a profile that ran notebook 09. So
neither page shows a number that ``make reproduce`` did not produce. Beside the tables, ``per_seed.csv``
(:mod:`lbw_utils.reporting.per_seed`) holds every evaluated run's own numbers, so a reader can recompute them.
``make reproduce`` itself never writes outside ``results/``: publishing is
a maintainer's explicit step, and it refuses results that a whole-profile run did not
finish (no completion marker) or that came from a checkout with uncommitted changes (other than the outputs of
an earlier publication: the README, ``docs/results.md`` and ``docs/results/``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

from lbw_utils.ceiling import CEILING_LABEL
from lbw_utils.config import REPO_ROOT
from lbw_utils.config import results_dir as default_results_root
from lbw_utils.files import atomic_write_text, replace_marked_block
from lbw_utils.reporting.per_seed import PER_SEED_FILE, SKIPPED_FOLDERS, per_seed_line, write_per_seed
from lbw_utils.runner.profiles import ProfileError, headline_dataset, load_profile

# Tables shown in the profile's block of docs/results.md (the name is older), in this order, where a dataset
# has them (all of its tables are copied to docs/results/<profile>/): every method; the paired changes; the
# goal statement; the generated findings; the names studies' per-class TPR pooled over folds and their two model
# families side by side; the length study and its generated answer; notebook 09's answer, paired changes, ceiling
# shifts and compute (beyond re-deciding); the baseline search of each regime; the re-decision frontier, the
# post-hoc rows paired with re-deciding the baseline and their budgets on test.
README_TABLES = ("baseline_search_cpu", "baseline_search_frontier", "methods", "paired", "goal", "findings",
                 "frontier", "posthoc_vs_posthoc", "budget_overshoot", "pooled_summary", "families", "length",
                 "length_answer", "beyond_answer", "beyond_paired", "beyond_frontier", "beyond_posthoc_vs_posthoc",
                 "beyond_budget_overshoot", "beyond_compute", "separation", "beyond_separation")
KEY_FIGURES = ("fig1_tpr_bars", "fig2_tpr_bars", "pareto", "baseline_vs_best", "redecision_frontier", "length_effect",
               "length_arms", "length_train_vs_test", "beyond_pareto", "beyond_redecision_frontier")
# The README's headline: the headline dataset's goal statement and the baseline + at most this many rows of its
# paired table, those on the Pareto front where the table says (largest mean paired change of the worst-class TPR
# first), from a profile that has both tables.
HEADLINE_ROWS = 5
HEADLINE_COLUMNS = ("method", "accuracy", "worst-class TPR", "Δ accuracy (pts)", "Δ worst-class TPR (pts)")
# The marker lbw_utils.runner.reproduce writes when a whole profile ran to its end.
COMPLETE_MARKER = "complete.json"
# The fan-out's shard folders (lbw_utils.runner.sequential.SHARDS_FOLDER; sequential imports this module, so it
# cannot be imported here), whose records are copies of those merged into the profile folder: not published twice.
SHARDS = "shards"


class NotPublishable(RuntimeError):
    """A results folder that must not be shown beside the README, and why."""


def check_publishable(folder: Path, profile: str) -> dict:
    """The completion marker of ``folder``, or NotPublishable saying what is missing or wrong."""
    marker = folder / COMPLETE_MARKER
    if not folder.is_dir():
        raise NotPublishable(f"{folder} does not exist: run `make reproduce PROFILE={profile}` first")
    if not marker.exists():
        raise NotPublishable(
            f"{folder} is incomplete: it has no {COMPLETE_MARKER}, which `make reproduce PROFILE={profile}` writes "
            "only when every notebook of the whole profile has finished; run it (again) to the end")
    info = json.loads(marker.read_text(encoding="utf-8"))
    if info.get("profile") != profile:
        raise NotPublishable(f"{marker} belongs to profile {info.get('profile')!r}, not {profile!r}")
    if info.get("git_revision") is None:
        raise NotPublishable(f"{folder} was made outside a git checkout: its numbers cannot be traced to a commit")
    if info.get("dirty") and not _only_publication_outputs(info):
        changed = info.get("uncommitted") or []
        shown = f" ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''})" if changed else ""
        raise NotPublishable(
            f"{folder} was made from a checkout with uncommitted changes{shown} at revision "
            f"{info['git_revision']}: its numbers cannot be traced to a commit; commit, then rerun "
            f"`make reproduce PROFILE={profile}` and publish")
    return info


# What `make publish` itself writes: a checkout that has just published one profile (and not committed it yet) runs
# the next one with these changed, and no number of a run can depend on them.
PUBLICATION_OUTPUTS = ("README.md", "docs/results.md", "docs/results/")
# The completion marker lists at most this many uncommitted paths (lbw_utils.runner.sequential): a full list may
# have been cut, so it proves nothing.
MARKER_PATHS = 20


def _only_publication_outputs(info: dict) -> bool:
    """Whether every uncommitted change of the run's checkout was a publication output (and the list is whole, and
    the revision did not move during the run)."""
    changed = info.get("uncommitted") or []
    same_revision = info.get("revision_at_start", info.get("git_revision")) == info.get("git_revision")
    return (bool(changed) and len(changed) < MARKER_PATHS and same_revision
            and all(path in PUBLICATION_OUTPUTS or path.startswith(PUBLICATION_OUTPUTS[-1]) for path in changed))


def publish(folder: Path, profile: str, hardware: str, headline: str | None, docs_root: Path | None = None,
            readme: Path | None = None, results_page: Path | None = None) -> Path:
    """Copy key figures (PNG) and tables (markdown) of ``folder``; refresh the profile's block of the
    results page (default: ``docs/results.md`` beside the README) and the README's generated blocks from the
    tables of the ``headline`` dataset (None: the README is left as it is)."""
    target = (docs_root or REPO_ROOT / "docs" / "results") / profile
    readme = readme or REPO_ROOT / "README.md"
    results_page = results_page or readme.parent / "docs" / "results.md"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    runs = write_per_seed(folder, target / PER_SEED_FILE, skip=(*SKIPPED_FOLDERS, SHARDS))
    sections = []
    for dataset_folder in sorted((folder / "tables").glob("*")):
        dataset = dataset_folder.name
        shown = [dataset_folder / f"{stem}.md" for stem in README_TABLES if (dataset_folder / f"{stem}.md").exists()]
        if not shown:
            continue
        # every markdown table, and the per-seed re-decision frontier curves a reader recomputes them from
        for extra in sorted([*dataset_folder.glob("*.md"), *dataset_folder.glob("*frontier_curves.csv")]):
            shutil.copy(extra, target / f"{dataset}_{extra.name}")
        figures = []
        for name in KEY_FIGURES:
            source = folder / "figures" / dataset / f"{name}.png"
            if source.exists():
                shutil.copy(source, target / f"{dataset}_{name}.png")
                figures.append(f"{dataset}_{name}.png")
        sections.append((dataset, "\n".join(path.read_text(encoding="utf-8").strip() + "\n" for path in shown), figures))
    atomic_write_text(target / "README.md", _readme_block(profile, hardware, sections, ".", runs))
    link_base = Path(os.path.relpath(target, results_page.parent)).as_posix()
    _replace_results_block(results_page, profile, _readme_block(profile, hardware, sections, link_base, runs))
    if headline is None:
        return target
    results_link = Path(os.path.relpath(results_page, readme.parent)).as_posix()
    block = _headline_block(folder / "tables" / headline, profile, hardware, results_link)
    if block is not None:
        _replace_block(readme, "<!-- headline:start -->", "<!-- headline:end -->", block)
    beyond = _beyond_block(folder / "tables" / headline, profile, hardware, results_link)
    if beyond is not None:
        _replace_block(readme, "<!-- beyond:start -->", "<!-- beyond:end -->", beyond)
    return target


def _readme_block(profile: str, hardware: str, sections, link_base: str, runs) -> str:
    """The profile's block: where it comes from and what it runs (its description, pilots disclosed there), the
    per-seed file (``runs``: its frame), each dataset's tables."""
    lines = [f"Generated by `make reproduce` with the `{profile}` profile on {hardware}, published with "
             f"`make publish PROFILE={profile}`. Test-set metrics, mean ± 95 % interval over seeds (over the "
             "folds of a cross-fitted names study); Δ: paired change against the same seed's (fold's) baseline.", "",
             f"The profile: {_description(profile)}", "",
             per_seed_line(runs, f"{link_base}/{PER_SEED_FILE}"), ""]
    for dataset, table, figures in sections:
        lines += [f"**{dataset}**", "", table.strip(), ""]
        lines += [f"![{dataset}: {name}]({link_base}/{name})" for name in figures
                  if any(part in name for part in ("pareto", "fig", "length_effect", "length_arms", "frontier"))]
        lines.append("")
    return "\n".join(lines)


def _description(profile: str) -> str:
    """The profile file's one-line description ('' for a profile that is not a shipped or given file)."""
    try:
        return load_profile(profile)[0].get("description", "")
    except ProfileError:
        return ""


def _markdown_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the one markdown table (as written by DataFrame.to_markdown) in ``path``."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        return []
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def _mean(cell: str) -> float:
    """The mean of a ``mean ± half-width`` cell (NaN when there is none)."""
    try:
        return float(cell.split("±")[0])
    except ValueError:
        return float("nan")


def _headline_block(tables: Path, profile: str, hardware: str, results_link: str) -> str | None:
    """The README's headline from ``tables`` (one dataset's tables), or None where it lacks the goal or
    paired table (e.g. the length profile): the goal statement, then the baseline and at most HEADLINE_ROWS
    methods on the Pareto front (all methods where the table has no such column), largest mean paired gain
    of the worst-class TPR first."""
    goal, paired = tables / "goal.md", tables / "paired.md"
    if not (goal.exists() and paired.exists()):
        return None
    rows = [row for row in _markdown_rows(paired) if all(column in row for column in HEADLINE_COLUMNS)]
    baseline = [row for row in rows if row["method"] == "baseline"]
    gains = {row["method"]: _mean(row["Δ worst-class TPR (pts)"]) for row in rows}
    front = [row for row in rows if row["method"] != "baseline" and row.get("Pareto front", "yes") == "yes"]
    others = sorted(front, key=lambda row: (math.isnan(gains[row["method"]]), -gains[row["method"]]))  # NaN last
    # the ceiling of re-deciding (a reference row, labelled as such in paired.md) closes the table
    ceiling = [row for row in rows if row["method"] == CEILING_LABEL]
    shown = baseline + others[:HEADLINE_ROWS] + ceiling
    lines = [f"The `{profile}` profile on {hardware}: test set, mean ± 95 % interval over seeds, Δ paired with "
             "the same seed's baseline; the baseline, the methods on the Pareto front and the ceiling of "
             "re-deciding the baseline (a reference, not a method). Every method and "
             f"dataset: [{results_link}]({results_link}).", "",
             goal.read_text(encoding="utf-8").strip(), "",
             "| " + " | ".join(HEADLINE_COLUMNS) + " |",
             "|:--|" + "--:|" * (len(HEADLINE_COLUMNS) - 1)]
    lines += ["| " + " | ".join(row[column] for column in HEADLINE_COLUMNS) + " |" for row in shown]
    return "\n".join(lines) + "\n"


def _beyond_block(tables: Path, profile: str, hardware: str, results_link: str) -> str | None:
    """The README's paragraph on notebook 09 (beyond re-deciding), from its generated sentences: which rows' curves
    lie above the baseline's re-decision frontier (the first paragraph of ``beyond_frontier.md``), the goal
    statement (``beyond_goal.md``) and, where it ran, re-deciding on top of each row against re-deciding the
    baseline (the first paragraph of ``beyond_posthoc_vs_posthoc.md``); None where the profile has neither of the
    first two (only notebook 09 writes them)."""
    frontier, goal = tables / "beyond_frontier.md", tables / "beyond_goal.md"
    if not (frontier.exists() and goal.exists()):
        return None
    parts = [frontier.read_text(encoding="utf-8").strip().split("\n\n")[0], goal.read_text(encoding="utf-8").strip()]
    separation = tables / "beyond_separation.md"  # any row above the frontier, at one network and at any cost
    if separation.exists():
        parts.append(separation.read_text(encoding="utf-8").strip().split("\n\n")[0])
    posthoc = tables / "beyond_posthoc_vs_posthoc.md"
    if posthoc.exists():
        parts.append(posthoc.read_text(encoding="utf-8").strip().split("\n\n")[0])
    return (f"The `{profile}` profile on {hardware}; test set, paired with the same seed's baseline; every row: "
            f"[{results_link}]({results_link}).\n\n" + "\n\n".join(parts) + "\n")


def _replace_results_block(page: Path, profile: str, block: str) -> None:
    """Rewrite the profile's block of the results page; append it (with its markers) where it has none."""
    start, end = f"<!-- {profile}-results:start -->", f"<!-- {profile}-results:end -->"
    text = page.read_text(encoding="utf-8") if page.exists() else "# Results\n"
    if start not in text or end not in text:
        page.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(page, f"{text.rstrip()}\n\n## The `{profile}` profile\n\n{start}\n{end}\n")
    _replace_block(page, start, end, block)


def _replace_block(path: Path, start: str, end: str, block: str) -> None:
    """Replace what lies between the markers ``start`` and ``end`` of ``path``; leave a file without them alone."""
    replace_marked_block(path, start, end, block)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="the profile whose results to publish, e.g. cpu")
    parser.add_argument("--results-dir", default=None, help="results root (default: $LBW_RESULTS_DIR or results/)")
    args = parser.parse_args(argv)
    folder = Path(args.results_dir or default_results_root()) / args.profile
    try:
        info = check_publishable(folder, args.profile)
        headline = headline_dataset(args.profile)
    except (NotPublishable, ProfileError) as error:
        print(f"not published: {error}", file=sys.stderr)
        return 1
    # The wall time and revision come from the results folder itself, so no quote of them can drift.
    hardware = (f"{_hardware_of(folder) or 'the machine named in summary.md'} "
                f"({info['total_seconds'] / 60:.1f} min recorded by `make reproduce`, revision "
                f"{info['git_revision'][:12]})")
    target = publish(folder, args.profile, hardware, headline)
    print(f"published {folder} (revision {info['git_revision'][:12]}, {info['total_seconds'] / 60:.1f} min) "
          f"to {target}, the {args.profile}-results block of docs/results.md and the README's generated blocks")
    return 0


def _hardware_of(folder: Path) -> str | None:
    """The hardware line of the profile's summary.md (written by reproduce)."""
    summary = folder / "summary.md"
    if summary.exists():
        for line in summary.read_text(encoding="utf-8").splitlines():
            if line.startswith("- hardware: "):
                return line.removeprefix("- hardware: ").split(";")[0]
    return None


if __name__ == "__main__":
    raise SystemExit(main())
