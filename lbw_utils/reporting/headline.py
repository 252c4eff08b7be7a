"""The findings, told first: the README's headline and the numbered Findings that open docs/results.md.

Both are computed here from what a publication copies to ``docs/results/<profile>/`` (:mod:`lbw_utils.runner.publish`):
the per-seed file (:mod:`lbw_utils.reporting.per_seed`, read back into records), the re-decision frontier curves
(``<dataset>_frontier_curves.csv``, ``<dataset>_beyond_frontier_curves.csv``) and the length study's raw table
(``<dataset>_length.csv``). So the README and the results page show only numbers a finished ``make reproduce``
produced, and publishing one profile rewrites the Findings from every profile published so far.

The headline (:func:`headline_block`): at most :data:`MAX_HEADLINE_ROWS` rows (the baseline; post-hoc offsets on
the baseline; the :data:`LEADING_ROWS` trained rows best on validation; post-hoc offsets on the first of them; the
ceiling of re-deciding the baseline, a reference, not a method), columns accuracy, the worst class (named) and the
paired changes in points; two or three sentences of one idea each (:func:`headline_sentences`); one figure. Rows are
chosen on validation only (:func:`lbw_utils.stats.validation_scores`), never on the test numbers shown.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils.reporting.display import adjusted_run, dataset_name, examples_noun, listed, row_name
from lbw_utils.reporting.per_seed import PER_SEED_FILE, as_records, read_per_seed
from lbw_utils.reporting.tables import p_text
from lbw_utils.stats import mean_interval, paired_table, validation_scores
from lbw_utils.studies import redecision

BASELINE = "baseline"
# The trained rows best on validation that the headline shows, and its rows in all.
LEADING_ROWS = 2
MAX_HEADLINE_ROWS = 6
# A generated sentence of the headline or the findings says one idea in fewer words than this (display names
# counted); the tests hold the generators to it.
MAX_WORDS = 40
MAX_FINDINGS = 6
CEILING_NAME = "ceiling of re-deciding the baseline (reference, not a method)"
# The study folder of a profile's main records in its per-seed file (lbw_utils.reporting.per_seed.TOP).
TOP = "."


# --------------------------------------------------------------------------
# Reading a publication
# --------------------------------------------------------------------------

def published_records(profile_folder: str | Path, dataset: str, study_folder: str = TOP) -> list[dict]:
    """The records of ``dataset`` in one study folder of a published profile's per-seed file (none where the
    profile has no such file), as :mod:`lbw_utils.stats` reads them."""
    frame = _frame(profile_folder, dataset, study_folder)
    if frame.empty:
        return []
    # a cross-fitted study's runs are folds: the file says how many, the records keep it
    return [{**record, "folds": None if pd.isna(folds) else int(folds)}
            for record, folds in zip(as_records(frame), frame["folds"])]


def _frame(profile_folder: str | Path, dataset: str, study_folder: str = TOP) -> pd.DataFrame:
    """The rows of ``dataset`` in one study folder of a published profile's per-seed file (empty without one)."""
    path = Path(profile_folder) / PER_SEED_FILE
    if not path.exists():
        return pd.DataFrame(columns=["dataset", "study_folder"])
    frame = read_per_seed(path)
    return frame[(frame["dataset"] == dataset) & (frame["study_folder"] == study_folder)]


def regime_words(profile: str, records: list[dict], profile_folder: str | Path | None = None,
                 study_folder: str = TOP) -> str:
    """The regime a finding holds in, in words: "the `cpu` profile (Fashion-MNIST, 55,000 training images, 3 epochs,
    10 seeds)": the dataset, its training images (names) and epochs where the profile's per-seed file says them (one value
    each), the seeds (folds) counted."""
    parts = [dataset_name(records[0]["dataset"])]
    if profile_folder is not None:
        frame = _frame(profile_folder, records[0]["dataset"], study_folder)
        images = set(frame["train_images"].dropna()) if "train_images" in frame else set()
        epochs = set(frame["epochs"].dropna()) if "epochs" in frame else set()
        if len(images) == 1:
            parts.append(f"{int(images.pop()):,} training {examples_noun(records[0]['dataset'])}")
        if len(epochs) == 1:
            epochs = int(epochs.pop())
            parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    parts.append(count_of(records))
    return f"the `{profile}` profile ({', '.join(parts)})"


def count_of(records: list[dict]) -> str:
    """"10 seeds", or "5 folds" for a cross-fitted study (its records say how many folds)."""
    seeds = len({record["seed"] for record in records})
    return f"{seeds} {unit_of(records)}{'s' if seeds != 1 else ''}"


def unit_of(records: list[dict]) -> str:
    """"fold" where the records are folds of a cross-fitted study (the per-seed file's ``folds``), else "seed"."""
    folds = [record.get("folds") for record in records]
    return "fold" if any(isinstance(value, (int, np.integer)) and not isinstance(value, bool) for value in folds) \
        else "seed"


def worst_class(records: list[dict], label: str) -> tuple[str, int, int]:
    """The class most often worst on test among ``label``'s runs, in how many of them, and their number."""
    found = Counter(record["test"]["worst_class"] for record in records if record["method_label"] == label)
    if not found:
        raise ValueError(f"no runs of {label!r} among the records")
    name, count = found.most_common(1)[0]
    return str(name), count, sum(found.values())


def _worst_class_text(records: list[dict], label: str) -> str:
    """The worst class's name for a table cell: "Shirt", or "Shirt, 6 of 10" where other classes were worst on
    some seeds (folds)."""
    name, count, runs = worst_class(records, label)
    return name if count == runs else f"{name}, {count} of {runs}"


# --------------------------------------------------------------------------
# The headline
# --------------------------------------------------------------------------

def _ranked_on_validation(records: list[dict], baseline: str) -> list[str]:
    """The rows that may be chosen (no reference row, no baseline), highest mean validation worst-class TPR first
    (post-hoc rows' validation scores are cross-fitted)."""
    try:
        scores = validation_scores(records, exclude=(baseline,))
    except ValueError:  # nothing besides the baseline
        return []
    return sorted(scores, key=lambda label: -float(np.mean(scores[label])))


def headline_rows(records: list[dict], baseline: str = BASELINE) -> pd.DataFrame:
    """The headline's rows of one dataset's records, in reading order: the baseline, the post-hoc offsets on the
    baseline best on validation, the :data:`LEADING_ROWS` trained rows best on validation, the post-hoc offsets
    on the first of them best on validation, and the ceiling of re-deciding the baseline (where the records have
    one). Columns: ``name``, ``label`` (empty for the ceiling), ``role``, ``accuracy``, ``worst_class_tpr``,
    ``worst_class`` (named), ``d_worst_class_tpr``/``_ci``, ``d_accuracy``/``_ci`` (fractions), ``seeds``."""
    paired = paired_table(records, baseline)
    if paired.empty or baseline not in set(paired["method"]):
        raise ValueError(f"the records have no {baseline!r} runs to pair with: the headline needs them")
    ranked = _ranked_on_validation(records, baseline)
    trained = [label for label in ranked if adjusted_run(label) is None]
    leading = trained[:LEADING_ROWS]
    chosen = [(baseline, "baseline")]
    on_baseline = [label for label in ranked if adjusted_run(label) == baseline]
    if on_baseline:
        chosen.append((on_baseline[0], "post-hoc offsets on the baseline, best on validation"))
    chosen += [(label, f"trained row {index + 1} on validation") for index, label in enumerate(leading)]
    if leading:
        on_leading = [label for label in ranked if adjusted_run(label) == leading[0]]
        if on_leading:
            chosen.append((on_leading[0], "post-hoc offsets on the first trained row, best on validation"))
    table = paired.set_index("method")
    rows = []
    for label, role in chosen:
        row = table.loc[label]
        rows.append({"name": row_name(label), "label": label, "role": role, "accuracy": row["accuracy"],
                     "worst_class_tpr": row["worst_class_tpr"], "worst_class": _worst_class_text(records, label),
                     "d_worst_class_tpr": row["d_worst_class_tpr"], "d_worst_class_tpr_ci": row["d_worst_class_tpr_ci"],
                     "d_accuracy": row["d_accuracy"], "d_accuracy_ci": row["d_accuracy_ci"],
                     "seeds": int(row["seeds"])})
    ceiling = _ceiling_row(records, baseline)
    if ceiling is not None:
        rows.append(ceiling)
    return pd.DataFrame(rows[:MAX_HEADLINE_ROWS])


def _ceiling_row(records: list[dict], baseline: str) -> dict | None:
    """The ceiling of re-deciding the baseline (offsets fitted on its own test split within the goal's accuracy
    budget), paired by seed with the baseline: a reference row, never a method."""
    runs = [r for r in records if r["method_label"] == baseline and r.get("ceiling")
            and not math.isnan(r["ceiling"].get("worst_class_tpr", math.nan))]
    if not runs:
        return None
    worst = [r["ceiling"]["worst_class_tpr"] for r in runs]
    accuracy = [r["ceiling"].get("accuracy", math.nan) for r in runs]
    d_worst = mean_interval([w - r["test"]["worst_class_tpr"] for w, r in zip(worst, runs)])
    d_accuracy = mean_interval([a - r["test"]["accuracy"] for a, r in zip(accuracy, runs)])
    return {"name": CEILING_NAME, "label": "", "role": "reference", "accuracy": float(np.nanmean(accuracy)),
            "worst_class_tpr": float(np.mean(worst)), "worst_class": "", "d_worst_class_tpr": d_worst[0],
            "d_worst_class_tpr_ci": d_worst[1], "d_accuracy": d_accuracy[0], "d_accuracy_ci": d_accuracy[1],
            "seeds": len(runs)}


def _signed(mean: float, half_width: float) -> str:
    """A change (a fraction) in signed points with its half-width: ``+6.5 ± 1.2``."""
    if math.isnan(mean):
        return "–"
    return f"{100 * mean:+.1f}" + ("" if math.isnan(half_width) else f" ± {100 * half_width:.1f}")


def headline_table(rows: pd.DataFrame, dataset: str, count: str) -> str:
    """The headline's markdown table: one line per row of :func:`headline_rows`; accuracy and the worst class's TPR
    in per cent (means), the worst class named, the paired changes in points (mean ± 95 % half-width)."""
    header = [f"{dataset_name(dataset)}, {count}", "accuracy (%)", "worst class: TPR (%)", "Δ worst class (pts)",
              "Δ accuracy (pts)"]
    lines = ["| " + " | ".join(header) + " |", "|:--|--:|--:|--:|--:|"]
    for row in rows.itertuples(index=False):
        baseline = row.role == "baseline"
        worst = f"{100 * row.worst_class_tpr:.1f}" + (f" ({row.worst_class})" if row.worst_class else "")
        cells = [row.name, f"{100 * row.accuracy:.1f}", worst,
                 "–" if baseline else _signed(row.d_worst_class_tpr, row.d_worst_class_tpr_ci),
                 "–" if baseline else _signed(row.d_accuracy, row.d_accuracy_ci)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def frontier_verdicts(curves_path: str | Path, baseline: str = BASELINE) -> pd.DataFrame | None:
    """Per trained row of a published ``*frontier_curves.csv``: does its re-decision frontier lie above the
    baseline's (:func:`lbw_utils.studies.redecision.frontier_verdicts`); None where the file is missing or has no
    baseline curve."""
    path = Path(curves_path)
    if not path.exists():
        return None
    curves = pd.read_csv(path)
    if baseline not in set(curves["method"]):
        return None
    return redecision.frontier_verdicts(redecision.frontier_comparison(curves, baseline))


def frontier_sentence(verdicts: pd.DataFrame) -> str:
    """One sentence: how many trained rows' re-decision frontiers lie above the baseline's, and which."""
    above = verdicts[verdicts["verdict"] == redecision.ABOVE]
    rows = f"{len(verdicts)} trained row{'s' if len(verdicts) != 1 else ''}"
    if above.empty:
        subject = "The one trained row" if len(verdicts) == 1 else f"None of the {rows}"
        return (f"{subject} has no re-decision frontier above the baseline's: at equal accuracy, none is shown "
                "to separate the classes better than re-deciding the baseline.").replace(
            f"None of the {rows} has no", f"None of the {rows} has a")
    verb = "has" if len(above) == 1 else "have"
    return (f"{len(above)} of the {rows} {verb} a re-decision frontier above the baseline's at every accuracy level "
            f"compared: {listed(map(row_name, above['method']))}.")


def headline_sentences(rows: pd.DataFrame, dataset: str, count: str, verdicts: pd.DataFrame | None = None) -> list[str]:
    """Two or three sentences of one idea each: the baseline's worst class; what the trained row best on
    validation changes; and whether any trained row's re-decision frontier lies above the baseline's (``verdicts``,
    :func:`frontier_verdicts`), or else how far re-deciding the baseline on test reaches (the ceiling row)."""
    base = rows[rows["role"] == "baseline"].iloc[0]
    named = base.worst_class.replace(", ", " on ", 1) + (f" {count.split()[-1]}" if ", " in base.worst_class else "")
    sentences = [f"On {dataset_name(dataset)} ({count}), the baseline reaches {100 * base.accuracy:.1f} % accuracy but "
                 f"recalls its worst class ({named}) {100 * base.worst_class_tpr:.1f} % of the time."]
    leading = rows[rows["role"] == "trained row 1 on validation"]
    if len(leading):
        row = leading.iloc[0]
        sentences.append(f"The trained row best on validation, {row['name']}, changes that by "
                         f"{_signed(row.d_worst_class_tpr, row.d_worst_class_tpr_ci)} points at "
                         f"{_signed(row.d_accuracy, row.d_accuracy_ci)} points of accuracy.")
    ceiling = rows[rows["role"] == "reference"]
    if verdicts is not None and len(verdicts):
        sentences.append(frontier_sentence(verdicts))
    elif len(ceiling):
        row = ceiling.iloc[0]
        sentences.append(f"Re-deciding the baseline with offsets fitted on the test split itself (a reference, not a "
                         f"method) lifts its worst class by {_signed(row.d_worst_class_tpr, row.d_worst_class_tpr_ci)} "
                         "points.")
    return sentences


def headline_block(profile_folder: str | Path, profile: str, dataset: str, source: str, results_link: str,
                   figure_link: str | None) -> str | None:
    """The README's headline of a published profile (``profile_folder``: its ``docs/results/<profile>/``) on
    ``dataset``: where it comes from (``source``: hardware, time, revision), the table, the sentences, the figure
    (``figure_link``, relative to the README; None: no figure) and the link to every table
    (``results_link``); None where the profile has no paired rows of that dataset."""
    records = published_records(profile_folder, dataset)
    if not records or BASELINE not in {record["method_label"] for record in records}:
        return None
    rows = headline_rows(records)
    count = count_of(records)
    curves = Path(profile_folder) / f"{dataset}_frontier_curves.csv"
    sentences = headline_sentences(rows, dataset, count, frontier_verdicts(curves))
    lines = [" ".join(sentences), "",
             headline_table(rows, dataset, count).strip(), ""]
    if figure_link is not None:
        lines += [f"![{dataset_name(dataset)}: each trained row's re-decision frontier (a reference, not a method), "
                  f"its test point and its post-hoc offsets]({figure_link})", ""]
    lines.append(f"The `{profile}` profile on {source}. Test set; means over {unit_of(records)}s, ± a 95 % interval; Δ "
                 f"paired with the same {unit_of(records)}'s baseline. Rows chosen on validation only. Every row, "
                 f"dataset and question: [{results_link}]({results_link}).")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The Findings of docs/results.md
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """One published profile: its name and folder (``docs/results/<profile>/``), and the dataset its headline
    reads (None: the profile has none)."""

    profile: str
    folder: Path
    headline: str | None


def _link(text: str, published: Published, name: str, link_base: str) -> str:
    """A link to a published file of the profile; where the publication has no such file, to its per-seed file
    (the numbers a finding is computed from)."""
    if not (published.folder / name).exists():
        text, name = "per-seed numbers", PER_SEED_FILE
    return f"[{text}]({link_base}/{published.profile}/{name})"


def gain_finding(published: Published, dataset: str, link_base: str) -> str | None:
    """What the trained row best on validation changes, against the same seed's baseline (its paired table)."""
    records = published_records(published.folder, dataset)
    ranked = [label for label in _ranked_on_validation(records, BASELINE) if adjusted_run(label) is None]
    if not ranked:
        return None
    row = paired_table(records).set_index("method").loc[ranked[0]]
    return (f"In {regime_words(published.profile, records, published.folder)}, the trained row best on "
            f"validation among {len(ranked)}, {row_name(ranked[0])}, changes the worst-class TPR by "
            f"{_signed(row['d_worst_class_tpr'], row['d_worst_class_tpr_ci'])} points at "
            f"{_signed(row['d_accuracy'], row['d_accuracy_ci'])} points of accuracy "
            f"({_link('paired table', published, f'{dataset}_paired.md', link_base)}).")


def posthoc_finding(published: Published, dataset: str, link_base: str, prefix: str = "") -> str | None:
    """The trained row best on validation, re-decided, against re-deciding the baseline the same way (paired by
    seed; Holm over the re-decided rows), where the profile ran both."""
    from lbw_utils.studies.representation import posthoc_vs_posthoc_table

    study = "beyond" if prefix else TOP
    records = published_records(published.folder, dataset, study)
    ranked = _ranked_on_validation(records, BASELINE)
    trained = [label for label in ranked if adjusted_run(label) is None]
    labels = {record["method_label"] for record in records}
    for label in trained:
        for adjusted in [found for found in ranked if adjusted_run(found) == label]:
            reference = BASELINE + "+" + adjusted.split("+", 1)[1]
            if reference not in labels:
                continue
            table = posthoc_vs_posthoc_table(records, reference).set_index("method")
            row = table.loc[adjusted]
            return (f"In {regime_words(published.profile, records, published.folder, study)}, after re-deciding, "
                    f"{row_name(adjusted)} differs from re-deciding the baseline by "
                    f"{_signed(row['d_worst_class_tpr'], row['d_worst_class_tpr_ci'])} points of worst-class TPR "
                    f"(Holm-adjusted p {p_text(row['p_worst_class_tpr_holm'])}; "
                    f"{_link('table', published, f'{dataset}_{prefix}posthoc_vs_posthoc.md', link_base)}).")
    return None


def frontier_finding(published: Published, dataset: str, link_base: str, prefix: str = "") -> str | None:
    """How many trained rows' re-decision frontiers lie above the baseline's (a reference, paired by seed)."""
    verdicts = frontier_verdicts(published.folder / f"{dataset}_{prefix}frontier_curves.csv")
    if verdicts is None or verdicts.empty:
        return None
    study = "beyond" if prefix else TOP
    records = published_records(published.folder, dataset, study)
    regime = (regime_words(published.profile, records, published.folder, study) if records
              else f"the `{published.profile}` profile ({dataset_name(dataset)})")
    figure = f"{dataset}_{prefix}redecision_frontier.png"
    link = (_link("figure", published, figure, link_base) if (published.folder / figure).exists()
            else _link("table", published, f"{dataset}_{prefix}frontier.md", link_base))
    sentence = frontier_sentence(verdicts).removesuffix(".")
    return f"In {regime}, {sentence[0].lower()}{sentence[1:]} (95 % paired intervals; {link})."


def length_finding(published: Published, dataset: str, link_base: str) -> str | None:
    """The length study: the first weighting run at two budgets or more without label smoothing (the others may
    run in the main arm only): its paired worst-class change at the shortest and longest such budget, and at the
    longest with label smoothing."""
    path = published.folder / f"{dataset}_length.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path)
    for method in dict.fromkeys(table["method"]):
        of_method = table[table["method"] == method].sort_values("budget")
        plain = of_method[of_method["arm"] == "no-label-smoothing"]
        main = of_method[of_method["arm"] == "main"]
        if method != BASELINE and len(plain) >= 2 and not main.empty:
            break
    else:
        return None
    first, last, smoothed = plain.iloc[0], plain.iloc[-1], main.iloc[-1]
    seeds = int(table["seeds"].max())
    return (f"In the `{published.profile}` profile ({dataset_name(dataset)}, {seeds} seeds), without label smoothing, "
            f"{row_name(method)} changes the worst-class TPR by "
            f"{_signed(first['d_worst_class_tpr'], first['d_worst_class_tpr_ci'])} points at {int(first['budget'])} "
            f"epochs and {_signed(last['d_worst_class_tpr'], last['d_worst_class_tpr_ci'])} at {int(last['budget'])}, "
            f"against {_signed(smoothed['d_worst_class_tpr'], smoothed['d_worst_class_tpr_ci'])} at "
            f"{int(smoothed['budget'])} with it ({_link('table', published, f'{dataset}_length.md', link_base)}).")


# The order of the profiles a finding is looked for in: the full study first, then the reduced one.
MAIN_PROFILES = ("gpu", "cpu")


def _ordered(published: list[Published]) -> list[Published]:
    rank = {profile: index for index, profile in enumerate(MAIN_PROFILES)}
    return sorted(published, key=lambda found: (rank.get(found.profile, len(rank)), found.profile))


def findings(published: list[Published], link_base: str) -> list[str]:
    """At most :data:`MAX_FINDINGS` one-sentence findings over the published profiles, in this order: on the main
    profile's headline dataset (gpu, else cpu, else the first with one), the trained row best on validation, whether
    re-deciding it beats re-deciding the baseline, how many rows' re-decision frontiers lie above the baseline's;
    then the first profile's with the length study, with notebook 09's rows (beyond re-weighting), and with a names
    task as its headline or among its datasets."""
    ordered = _ordered(published)
    found: list[str | None] = []
    main = next((p for p in ordered if p.headline and published_records(p.folder, p.headline)), None)
    if main is not None:
        found += [gain_finding(main, main.headline, link_base), posthoc_finding(main, main.headline, link_base),
                  frontier_finding(main, main.headline, link_base)]
    headline = None if main is None else (main.profile, main.headline)
    found.append(_first(length_finding(profile, dataset, link_base)
                        for profile in ordered for dataset in _datasets(profile)))
    found.append(_first(frontier_finding(profile, dataset, link_base, "beyond_")
                        for profile in ordered for dataset in _datasets(profile)))
    found.append(_first(gain_finding(profile, dataset, link_base) for profile in ordered
                        for dataset in _datasets(profile)
                        if dataset.startswith("names") and (profile.profile, dataset) != headline))
    return [sentence for sentence in found if sentence][:MAX_FINDINGS]


def _first(sentences) -> str | None:
    """The first sentence a generator of findings gives (None: none), computing no more of them."""
    return next((sentence for sentence in sentences if sentence), None)


def _datasets(published: Published) -> list[str]:
    """The datasets a published profile holds files of (the prefix of its ``<dataset>_*`` files that its per-seed
    file or a study's table names)."""
    found = []
    path = published.folder / PER_SEED_FILE
    if path.exists():
        found += list(dict.fromkeys(read_per_seed(path)["dataset"]))
    found += [file.name.removesuffix("_length.csv") for file in sorted(published.folder.glob("*_length.csv"))]
    return list(dict.fromkeys(found))


def findings_block(published: list[Published], link_base: str) -> str:
    """The Findings section's generated text: the findings numbered, or a line saying none is published yet."""
    found = findings(published, link_base)
    if not found:
        return "No profile with findings is published yet: run `make reproduce` and `make publish`.\n"
    return ("Each finding is one sentence generated from the published per-seed files; its link leads to the table "
            "or figure behind it.\n\n" + "\n".join(f"{index}. {text}" for index, text in enumerate(found, 1)) + "\n")
