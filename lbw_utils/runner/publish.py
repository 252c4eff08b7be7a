"""Copy a profile's key figures and tables into docs/, and the headline into the README.

    make publish PROFILE=cpu          # = python -m lbw_utils.runner.publish --profile cpu

``results/`` is git-ignored; ``docs/results/<profile>/`` is not. Publication copies there the profile's markdown
tables, the raw files the findings are computed from (``per_seed.csv``, :mod:`lbw_utils.reporting.per_seed`: every
evaluated run's own numbers; the re-decision frontier curves; the length study's table) and its key figures, then
rewrites the generated blocks of two pages:

* ``docs/results.md``: the profile's block (between ``<!-- <profile>-results:start -->`` and
  ``<!-- <profile>-results:end -->``; appended with its markers where the page has none), one section per dataset,
  one table per question (:data:`QUESTIONS`: the paired table carries the absolute means, so the method table is a
  link; a paragraph already shown in the block is not shown again), every figure copied shown under its question;
  then the page's Findings (``<!-- findings:start -->``: :func:`lbw_utils.reporting.headline.findings_block`, from
  every profile published so far) and its contents list (``<!-- contents:start -->``, from the page's headings),
  both put at the top of the page where it has no markers for them;
* the README's ``<!-- headline:start -->`` ... ``<!-- headline:end -->`` block
  (:func:`lbw_utils.reporting.headline.headline_block`: at most six rows, two or three sentences, one figure) on the
  profile's headline dataset (its ``headline`` key, :mod:`lbw_utils.runner.profiles`), and its
  ``<!-- beyond:start -->`` ... ``<!-- beyond:end -->`` block from notebook 09's generated sentences, for a profile
  that ran notebook 09.

So neither page shows a number that ``make reproduce`` did not produce. ``make reproduce`` itself never writes
outside ``results/``: publishing is a maintainer's explicit step, and it refuses results that a whole-profile run did
not finish (no completion marker) or that came from a checkout with uncommitted changes (other than the outputs of
an earlier publication: the README, ``docs/results.md`` and ``docs/results/``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lbw_utils.config import REPO_ROOT
from lbw_utils.config import results_dir as default_results_root
from lbw_utils.files import atomic_write_text, replace_marked_block
from lbw_utils.reporting import plots
from lbw_utils.reporting.display import dataset_name
from lbw_utils.reporting.headline import Published, findings_block, headline_block, published_records
from lbw_utils.reporting.per_seed import PER_SEED_FILE, SKIPPED_FOLDERS, per_seed_line, write_per_seed
from lbw_utils.runner.profiles import ProfileError, available_profiles, headline_dataset, load_profile
from lbw_utils.studies.redecision import validated_points

@dataclass(frozen=True)
class Question:
    """One question a profile's block of the results page answers, and the files of a dataset that answer it:
    ``tables`` (stems of ``tables/<dataset>/<stem>.md``, shell patterns allowed; shown whole), ``texts`` (stems
    whose sentences are shown and whose long table is a link) and ``figures`` (stems of its PNG figures)."""

    title: str
    tables: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()


# The questions of a profile's block, in this order; a dataset shows those it has files for. The method table
# (every metric) is left to a link: the paired table beside it carries the absolute means.
QUESTIONS = (
    Question("Which baseline recipe did the search choose, and how strong is it?", tables=("baseline_search_*",)),
    Question("Which rows lift the worst class, and at what accuracy?", tables=("goal", "paired", "findings"),
             figures=("fig1_tpr_bars", "fig2_tpr_bars", "pareto", "baseline_vs_best")),
    Question("Does any row separate the classes better than re-deciding the baseline?",
             tables=("separation",), texts=("frontier",), figures=("redecision_frontier",)),
    Question("Train it, then re-decide: does that beat re-deciding the baseline?", tables=("posthoc_vs_posthoc",)),
    Question("Did each post-hoc row's validation budget hold on the test split?", tables=("budget_overshoot",)),
    Question("Pooled over every name: how well is each class recalled?", tables=("pooled_summary",)),
    Question("Does a weighting act differently on the recurrent network than on the n-gram bag?",
             tables=("families",)),
    Question("Does an ensemble of recurrent networks, or its distilled student, reach the n-gram bag?",
             tables=("against_bag",)),
    Question("Does the weights' effect fade with training?", tables=("length_answer", "length"),
             figures=("length_effect", "length_arms", "length_train_vs_test")),
    Question("Beyond re-weighting: which rows lift the worst class?", tables=("beyond_answer", "beyond_paired"),
             figures=("beyond_pareto",)),
    Question("Beyond re-weighting: does any row separate the classes better?", tables=("beyond_separation",),
             texts=("beyond_frontier",), figures=("beyond_redecision_frontier",)),
    Question("Beyond re-weighting: train it, then re-decide?", tables=("beyond_posthoc_vs_posthoc",)),
    Question("Beyond re-weighting: did the budgets hold on the test split?", tables=("beyond_budget_overshoot",)),
    Question("Beyond re-weighting: what does each row cost?", tables=("beyond_compute",)),
)
# Every figure a publication copies (PNG), each shown under its question.
KEY_FIGURES = tuple(figure for question in QUESTIONS for figure in question.figures)
# The raw files copied beside the tables, which the findings are computed from.
RAW_FILES = ("*frontier_curves.csv", "length.csv")
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
    """Copy the tables, raw files and key figures of ``folder`` to ``<docs_root>/<profile>/``; refresh the
    profile's block of the results page (default: ``docs/results.md`` beside the README), its Findings and
    contents, and the README's generated blocks on the ``headline`` dataset (None: the README is left as it is)."""
    docs_root = docs_root or REPO_ROOT / "docs" / "results"
    target = docs_root / profile
    readme = readme or REPO_ROOT / "README.md"
    results_page = results_page or readme.parent / "docs" / "results.md"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    runs = write_per_seed(folder, target / PER_SEED_FILE, skip=(*SKIPPED_FOLDERS, SHARDS))
    sections = []
    for dataset_folder in sorted((folder / "tables").glob("*")):
        dataset = dataset_folder.name
        if not any(dataset_folder.glob("*.md")):
            continue
        # every markdown table, and the raw files the findings are computed from
        for extra in sorted([*dataset_folder.glob("*.md"), *(found for pattern in RAW_FILES
                                                              for found in dataset_folder.glob(pattern))]):
            shutil.copy(extra, target / f"{dataset}_{extra.name}")
        figures = []
        for name in KEY_FIGURES:
            source = folder / "figures" / dataset / f"{name}.png"
            if source.exists():
                shutil.copy(source, target / f"{dataset}_{name}.png")
                figures.append(name)
        sections.append((dataset, dataset_folder, figures))
    atomic_write_text(target / "README.md", _results_block(profile, hardware, sections, ".", runs))
    link_base = Path(os.path.relpath(target, results_page.parent)).as_posix()
    _replace_results_block(results_page, profile, _results_block(profile, hardware, sections, link_base, runs))
    _refresh_findings_and_contents(results_page, docs_root)
    if headline is None:
        return target
    results_link = Path(os.path.relpath(results_page, readme.parent)).as_posix()
    figure = next((target / f"{headline}_{name}.png" for name in ("redecision_frontier", "pareto")
                   if (target / f"{headline}_{name}.png").exists()), None)
    figure_link = None if figure is None else Path(os.path.relpath(figure, readme.parent)).as_posix()
    block = headline_block(target, profile, headline, hardware, results_link, figure_link)
    if block is not None:
        _replace_block(readme, "<!-- headline:start -->", "<!-- headline:end -->", block)
    beyond = _beyond_block(folder / "tables" / headline, profile, hardware, results_link)
    if beyond is not None:
        _replace_block(readme, "<!-- beyond:start -->", "<!-- beyond:end -->", beyond)
    return target


def _stems(dataset_folder: Path, question: Question) -> list[tuple[str, str]]:
    """(stem, "table" or "text") of ``question``'s files that ``dataset_folder`` holds, in the question's order."""
    found = []
    names = sorted(path.stem for path in dataset_folder.glob("*.md"))
    for kind, patterns in (("table", question.tables), ("text", question.texts)):
        for pattern in patterns:
            found += [(stem, kind) for stem in names if fnmatch.fnmatchcase(stem, pattern)]
    order = [*question.tables, *question.texts]
    return sorted(found, key=lambda item: next(i for i, pattern in enumerate(order)
                                               if fnmatch.fnmatchcase(item[0], pattern)))


def _results_block(profile: str, hardware: str, sections, link_base: str, runs) -> str:
    """The profile's block: where it comes from and what it runs (its description, pilots disclosed there), the
    per-seed file (``runs``: its frame), then per dataset one subsection per question it answers (a table shown
    whole, or a text's sentences with its long table linked; the question's figures), and links to the dataset's
    other tables. A paragraph already shown in the block is not shown again."""
    lines = [f"Generated by `make reproduce` with the `{profile}` profile on {hardware}, published with "
             f"`make publish PROFILE={profile}`. Test-set metrics, mean ± 95 % interval over seeds (over the "
             "folds of a cross-fitted names study); Δ: paired change against the same seed's (fold's) baseline.", "",
             f"The profile: {_description(profile)}", "",
             per_seed_line(runs, f"{link_base}/{PER_SEED_FILE}"), ""]
    shown_paragraphs: set[str] = set()
    for dataset, dataset_folder, figures in sections:
        lines += [f"### {dataset_name(dataset)} (`{profile}`)", ""]
        used = set()
        for question in QUESTIONS:
            stems = _stems(dataset_folder, question)
            pictures = [name for name in question.figures if name in figures]
            if not stems and not pictures:
                continue
            lines += [f"#### {question.title}", ""]
            for stem, kind in stems:
                used.add(stem)
                text = (dataset_folder / f"{stem}.md").read_text(encoding="utf-8").strip()
                link = f"{link_base}/{dataset}_{stem}.md"
                if kind == "text":
                    text = "\n\n".join(part for part in text.split("\n\n") if not part.lstrip().startswith("|"))
                    text += f"\n\nEvery row and level: [{dataset}_{stem}.md]({link})."
                for paragraph in text.split("\n\n"):
                    if paragraph.strip() and paragraph.strip() not in shown_paragraphs:
                        shown_paragraphs.add(paragraph.strip())
                        lines += [paragraph.strip(), ""]
            lines += [f"![{dataset_name(dataset)}: {name.replace('_', ' ')}]({link_base}/{dataset}_{name}.png)"
                      for name in pictures]
            lines.append("")
        others = sorted(path.stem for path in dataset_folder.glob("*.md") if path.stem not in used)
        if others:
            lines += ["Further tables of this dataset (the method table holds every metric of every row): "
                      + ", ".join(f"[{stem}]({link_base}/{dataset}_{stem}.md)" for stem in others) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


def _description(profile: str) -> str:
    """The profile file's one-line description ('' for a profile that is not a shipped or given file)."""
    try:
        return load_profile(profile)[0].get("description", "")
    except ProfileError:
        return ""


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


def _published_profiles(docs_root: Path) -> list[Published]:
    """Every profile published under ``docs_root`` (a folder with a per-seed file or a length table), with the
    dataset its headline reads (None for a profile that names none or is no longer a profile file)."""
    found = []
    for folder in sorted(path for path in docs_root.glob("*") if path.is_dir()):
        if not ((folder / PER_SEED_FILE).exists() or any(folder.glob("*_length.csv"))):
            continue
        try:
            headline = headline_dataset(folder.name) if folder.name in available_profiles() else None
        except ProfileError:
            headline = None
        found.append(Published(folder.name, folder, headline))
    return found


FINDINGS = ("<!-- findings:start -->", "<!-- findings:end -->")
CONTENTS = ("<!-- contents:start -->", "<!-- contents:end -->")


def _refresh_findings_and_contents(page: Path, docs_root: Path) -> None:
    """Rewrite the results page's Findings (from every profile published under ``docs_root``) and contents list
    (from its headings); a page without their markers gets them after its title, Findings first."""
    text = page.read_text(encoding="utf-8")
    if FINDINGS[0] not in text or CONTENTS[0] not in text:
        added = "".join(f"{heading}\n\n{start}\n{end}\n\n" for heading, (start, end) in
                        (("## Findings", FINDINGS), ("## Contents", CONTENTS)) if start not in text)
        title, _, rest = text.partition("\n") if text.startswith("# ") else ("", "", text)
        atomic_write_text(page, (f"{title}\n\n" if title else "") + added + rest.lstrip())
    link_base = Path(os.path.relpath(docs_root, page.parent)).as_posix()
    _replace_block(page, *FINDINGS, findings_block(_published_profiles(docs_root), link_base))
    _replace_block(page, *CONTENTS, contents_list(page.read_text(encoding="utf-8")))


def contents_list(page: str) -> str:
    """A nested list of the page's ``##`` and ``###`` headings (outside code fences), each linked to its anchor
    as GitHub writes it; the Findings and Contents headings left out."""
    lines, fenced, used = [], False, {}
    for line in page.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        found = re.match(r"(#{2,3}) (.+)", line)
        if fenced or not found or found.group(2).strip() in ("Findings", "Contents"):
            continue
        title = found.group(2).strip()
        anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = used.get(anchor, 0)
        used[anchor] = count + 1
        anchor = anchor if not count else f"{anchor}-{count}"
        lines.append(f"{'  ' * (len(found.group(1)) - 2)}- [{title}](#{anchor})")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--headline-only", action="store_true",
                        help="rewrite only the README's headline (and the results page's findings and contents) from "
                             "the profile's already published files in docs/results/<profile>/, no results folder")
    args = parser.parse_args(argv)
    if args.headline_only:
        return _refresh_headline(args.profile)
    folder = Path(args.results_dir or default_results_root()) / args.profile
    try:
        info = check_publishable(folder, args.profile)
        headline = headline_dataset(args.profile)
    except (NotPublishable, ProfileError) as error:
        print(f"not published: {error}", file=sys.stderr)
        return 1
    # The wall time and revision come from the results folder itself, so no quote of them can drift.
    hardware = (f"{_hardware_of(folder) or 'the machine named in summary.md'} "
                f"({recorded_time(info)}, revision {info['git_revision'][:12]})")
    target = publish(folder, args.profile, hardware, headline)
    print(f"published {folder} (revision {info['git_revision'][:12]}, {info['total_seconds'] / 60:.1f} min) "
          f"to {target}, the {args.profile}-results block of docs/results.md and the README's generated blocks")
    return 0


def recorded_time(info: dict) -> str:
    """The marker's wall time in words. A resumed run's marker times only its last invocation, so the runs that
    earlier, interrupted invocations had trained are named beside it (their time is not on record)."""
    minutes = f"{info['total_seconds'] / 60:.1f} min recorded by `make reproduce`"
    found = info.get("runs_found_at_start") or 0
    if not found:
        return minutes
    return (f"{minutes}, its last invocation; {found} run{'s were' if found != 1 else ' was'} already trained when "
            f"it started, their time not counted")


def _refresh_headline(profile: str, docs_root: Path | None = None, readme: Path | None = None) -> int:
    """The README's headline rewritten from ``profile``'s published files (its per-seed file and frontier curves),
    its source (machine, recorded time, revision) read back from the first line of the block it published."""
    docs_root = docs_root or REPO_ROOT / "docs" / "results"
    readme = readme or REPO_ROOT / "README.md"
    target, results_page = docs_root / profile, readme.parent / "docs" / "results.md"
    published = target / "README.md"
    found = re.search(rf"with the `{re.escape(profile)}` profile on (.+?), published with",
                      published.read_text(encoding="utf-8")) if published.exists() else None
    if found is None:
        print(f"not refreshed: {published} does not say where the profile ran; publish it first "
              f"(make publish PROFILE={profile})", file=sys.stderr)
        return 1
    headline = headline_dataset(profile)
    results_link = Path(os.path.relpath(results_page, readme.parent)).as_posix()
    curves = target / f"{headline}_frontier_curves.csv"
    if curves.exists():  # the figure drawn again, as the plots draw it now, from the numbers the profile published
        plots.plot_redecision_frontier(pd.read_csv(curves), validated_points(published_records(target, headline)),
                                       target / f"{headline}_redecision_frontier.png")
    figure = next((target / f"{headline}_{name}.png" for name in ("redecision_frontier", "pareto")
                   if (target / f"{headline}_{name}.png").exists()), None)
    figure_link = None if figure is None else Path(os.path.relpath(figure, readme.parent)).as_posix()
    block = headline_block(target, profile, headline, found.group(1), results_link, figure_link)
    if block is None:
        print(f"not refreshed: {target} has no paired rows of {headline}", file=sys.stderr)
        return 1
    _replace_block(readme, "<!-- headline:start -->", "<!-- headline:end -->", block)
    _refresh_findings_and_contents(results_page, docs_root)
    print(f"rewrote the README's headline from {target} ({found.group(1)})")
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
