"""Does the reader's plain script still beat the published baseline? Its test numbers, seed by seed, paired.

    python benchmarks/reader_script.py --regime frontier --seeds 0-9 \\
        --compare docs/results/frontier/per_seed.csv      # the paired answer, 10 seeds
    python benchmarks/reader_script.py --regime cpu --seeds 0-9 --compare docs/results/cpu/per_seed.csv
    python benchmarks/reader_script.py --regime frontier --report-only --compare PATH   # rewrite the answer from
                                                                                         # the per-seed file only
    python benchmarks/reader_script.py --regime frontier --seeds 100 --epochs 1 --out /tmp/x   # smoke run

The script is :mod:`plain_loop` (``wider_three_conv_cnn``: 3 convolutions of 32-64-128 channels, BN, max pooling
after each, the map flattened into the linear layer; SGD with Nesterov momentum, torch's ``OneCycleLR`` at
``--max-lr``, label smoothing 0.1, no augmentation, fp32), the form a reviewer's "plain 30-line CNN script"
takes here. For each seed it trains on exactly the training split the library's studies use for that seed
(``load_data(DataOptions(...), seed)``; the plain loop recomputes the split's indices and checks the labels of
the training split and of the test set against ours) for the regime's epochs, then reports on the test split:
accuracy, per-class TPR, worst-class TPR, the multiply-adds per image of its forward pass and its seconds.

Regimes (:data:`REGIMES`): ``frontier`` (Fashion-MNIST, 1,000 images per class in the training pool: 8,000 to
train on, 2,000 held out for validation, the full 10,000-image test set; 16 epochs) and ``cpu`` (the full
training set less the library's default validation split; 3 epochs). ``--epochs`` overrides the regime's epochs
(smoke runs only: the answer then says that it is not at the regime's length).

Output, written atomically into ``--out`` (default ``docs/results/reader_script``), after every seed:
``reader_script_<regime>.csv`` (one row per seed) and ``reader_script_<regime>.md``, a generated paragraph and
table: the script's mean test accuracy and worst-class TPR with 95 % t intervals, its compute against the
baseline's (the small CNN's multiply-adds per image x the baseline's epochs; the training images are the same),
and, with ``--compare`` (a published ``per_seed.csv``, :mod:`lbw_utils.reporting.per_seed`), the paired
difference script minus the published baseline (``method_label == "baseline"`` in the main study folder
``"."``, same seed) with a sentence per metric: the script beats the baseline (95 % interval above 0), is beaten
by it (below 0) or neither. Every number in the text comes from the computed values.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import pandas as pd

import common
from lbw_utils.files import atomic_write_text
from lbw_utils.reporting.per_seed import TOP, read_per_seed
from lbw_utils.reporting.tables import mean_interval_text, p_text, points_text
from lbw_utils.stats import mean_interval, paired_p_value

DATASET = "fashion_mnist"
DEFAULT_OUT = common.REPO_ROOT / "docs" / "results" / "reader_script"
# val_size None: the library's default (lbw_utils.data.images.DEFAULT_VAL_SIZE); per_class None: every image.
REGIMES = {
    # study_folder: where the regime's published baseline rows lie in its per-seed file (notebook 09's runs: beyond/)
    "frontier": {"per_class": 1000, "val_size": 2000, "epochs": 16, "study_folder": "beyond",
                 "words": "Fashion-MNIST, 1,000 images per class in the training pool, 2,000 of them held out for "
                          "validation"},
    "cpu": {"per_class": None, "val_size": None, "epochs": 3, "study_folder": TOP,
            "words": "Fashion-MNIST, the full training set less the library's default validation split"},
}
BASELINE_LABEL = "baseline"
BASELINE_MODEL_SIZE = "small"  # the network of the baseline recipe both regimes' profiles train
BATCH_SIZE = 256  # the plain loop's default
METRICS = {"accuracy": "accuracy", "worst_class_tpr": "worst-class TPR"}
COLUMNS = ["regime", "dataset", "seed", "epochs", "max_lr", "batch_size", "accuracy", "worst_class_tpr",
           "worst_class", "classes", "tpr", "train_images", "val_images", "test_images", "multiply_adds",
           "train_seconds", "seconds", "device", "torch_threads"]


# --- arguments -----------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"`` or a mix (``"0-2,7"``) as a sorted list of distinct seeds."""
    seeds = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                first, last = (int(value) for value in part.split("-", 1))
                if last < first:
                    raise ValueError
                seeds.update(range(first, last + 1))
            else:
                seeds.add(int(part))
        except ValueError:
            raise ValueError(f"--seeds {text!r}: {part!r} is not a seed or an ascending range like 0-9") from None
    if not seeds:
        raise ValueError(f"--seeds {text!r} names no seed")
    return sorted(seeds)


def seeds_text(seeds) -> str:
    """Seeds as ranges: ``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    seeds, parts = sorted(int(seed) for seed in seeds), []
    for seed in seeds:
        if parts and seed == parts[-1][1] + 1:
            parts[-1][1] = seed
        else:
            parts.append([seed, seed])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


# --- training (one seed) -------------------------------------------------------------------------


def run_seed(regime: str, seed: int, *, epochs: int, max_lr: float, device, data_dir=None) -> dict:
    """Train the plain script on the library's split of ``seed`` in ``regime``; its test numbers as a row."""
    import torch

    from plain_loop import PlainLoop

    from lbw_utils.data.images import DEFAULT_VAL_SIZE
    from lbw_utils.metrics import per_class_tpr
    from lbw_utils.models import multiply_adds
    from lbw_utils.runs.experiments import DataOptions, load_data

    settings = REGIMES[regime]
    started = time.perf_counter()
    data = load_data(DataOptions(DATASET, data_dir=data_dir, val_size=settings["val_size"],
                                 per_class=settings["per_class"], device=str(device)), seed)
    val_size = DEFAULT_VAL_SIZE if settings["val_size"] is None else settings["val_size"]
    loop = PlainLoop(data, seed=seed, epochs=epochs, batch_size=BATCH_SIZE, max_lr=max_lr, val_size=val_size,
                     per_class=settings["per_class"], device=device, data_dir=data_dir)
    train_seconds = 0.0
    for epoch in range(epochs):
        result = loop.train_epoch()
        train_seconds += result["seconds"]
        print(f"  seed {seed} epoch {epoch + 1}/{epochs}: loss {result['loss']:.4f} ({result['seconds']:.1f} s)",
              flush=True)
    predicted = loop.predict().cpu()
    truth = loop.test_y.cpu()
    tpr = per_class_tpr(truth, predicted, data.num_classes).tolist()
    worst = min(range(len(tpr)), key=lambda c: tpr[c])
    macs = multiply_adds(loop.model, torch.zeros(1, *data.input_shape, device=device))
    return {"regime": regime, "dataset": DATASET, "seed": seed, "epochs": epochs, "max_lr": max_lr,
            "batch_size": BATCH_SIZE, "accuracy": float((predicted == truth).double().mean()),
            "worst_class_tpr": float(tpr[worst]), "worst_class": data.classes[worst],
            "classes": json.dumps(list(data.classes)), "tpr": json.dumps(tpr),
            "train_images": data.size("train"), "val_images": data.size("val"), "test_images": data.size("test"),
            "multiply_adds": int(macs), "train_seconds": train_seconds, "seconds": time.perf_counter() - started,
            "device": str(device), "torch_threads": torch.get_num_threads()}


# --- the comparison and the text (pure functions: no training) ------------------------------------


def one_value(frame: pd.DataFrame, column: str):
    """The one value ``column`` takes over the rows (the regime's settings are the same for every seed)."""
    values = list(dict.fromkeys(frame[column]))
    if len(values) != 1:
        raise ValueError(f"the per-seed rows disagree on {column}: {values}")
    return values[0]


def baseline_rows(compare: pd.DataFrame, *, dataset: str = DATASET, study_folder: str = TOP,
                  label: str = BASELINE_LABEL) -> pd.DataFrame:
    """The published baseline's rows of ``compare`` (a :func:`read_per_seed` frame): ``label`` of ``dataset`` in
    ``study_folder``, one per seed, indexed by seed."""
    chosen = compare[(compare["dataset"] == dataset) & (compare["method_label"] == label)
                     & (compare["study_folder"].astype(str) == study_folder)]
    if chosen.empty:
        found = list(dict.fromkeys(compare["study_folder"][compare["method_label"] == label].astype(str)))
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ValueError(f"the compare file has no {label!r} row of {dataset!r} in study folder {study_folder!r}; "
                         f"its {label!r} rows lie in: {shown or 'none'}")
    if chosen["seed"].duplicated().any():
        raise ValueError(f"the compare file has several {label!r} rows for seeds "
                         f"{sorted(set(chosen['seed'][chosen['seed'].duplicated()]))} in study folder {study_folder!r}")
    return chosen.set_index(chosen["seed"].astype(int))


def check_same_regime(ours: pd.DataFrame, baseline: pd.DataFrame, regime: str) -> None:
    """The published baseline must have trained on as many images as the script, for the regime's epochs."""
    train_images = int(one_value(ours, "train_images"))
    published = sorted(set(int(v) for v in baseline["train_images"].dropna()))
    if published != [train_images]:
        raise ValueError(f"the compare file's baseline trained on {published} images, the script on {train_images}: "
                         f"it is not the {regime} regime's file")
    epochs = sorted(set(int(v) for v in baseline["epochs"].dropna()))
    if epochs != [REGIMES[regime]["epochs"]]:
        raise ValueError(f"the compare file's baseline trained {epochs} epochs, the {regime} regime "
                         f"{REGIMES[regime]['epochs']}: it is not the {regime} regime's file")


def paired(ours: pd.DataFrame, baseline: pd.DataFrame) -> dict:
    """Script minus baseline, seed by seed, for each of :data:`METRICS`, over the seeds both have."""
    own = ours.set_index(ours["seed"].astype(int))
    seeds = sorted(set(own.index) & set(baseline.index))
    result = {"seeds": seeds, "unpaired": sorted(set(own.index) - set(baseline.index))}
    for key in METRICS:
        script, published = own.loc[seeds, key].to_numpy(float), baseline.loc[seeds, key].to_numpy(float)
        result[key] = {"script": mean_interval(script), "baseline": mean_interval(published),
                       "difference": mean_interval(script - published),
                       "p": paired_p_value(script, published) if seeds else math.nan}
    return result


def verdict(mean: float, half_width: float) -> str:
    """``beats`` (the 95 % interval of script minus baseline lies above 0), ``beaten`` (below 0), ``neither``
    (it holds 0) or ``no interval`` (fewer than 2 paired seeds)."""
    if math.isnan(mean) or math.isnan(half_width):
        return "no interval"
    if mean - half_width > 0:
        return "beats"
    if mean + half_width < 0:
        return "beaten"
    return "neither"


VERDICT_WORDS = {
    "beats": "the script beats the published baseline (the 95 % interval lies above 0)",
    "beaten": "the script is beaten by the published baseline (the 95 % interval lies below 0)",
    "neither": "neither beats the other (the 95 % interval holds 0)",
    "no interval": "no verdict (fewer than 2 paired seeds give no interval)",
}


def compute(ours: pd.DataFrame, baseline_epochs: int, small_macs: int) -> dict:
    """The script's forward multiply-adds per image x its epochs against the small CNN's x the baseline's epochs
    (the training images are the same split, so they cancel)."""
    macs, epochs = int(one_value(ours, "multiply_adds")), int(one_value(ours, "epochs"))
    return {"script_macs": macs, "script_epochs": epochs, "small_macs": int(small_macs),
            "baseline_epochs": int(baseline_epochs), "ratio": macs * epochs / (small_macs * baseline_epochs)}


def _epochs(count: int) -> str:
    return f"{count} epoch{'s' if count != 1 else ''}"


def _interval(values: tuple[float, float]) -> str:
    return mean_interval_text(*values)


def _signed_points(values: tuple[float, float]) -> str:
    text = points_text(*values)
    return text if text.startswith(("-", "–")) else f"+{text}"


def report(ours: pd.DataFrame, regime: str, cost: dict, comparison: dict | None = None,
           compare_name: str | None = None) -> str:
    """The generated paragraph and table (markdown) on the per-seed rows ``ours`` of ``regime``."""
    seeds = sorted(int(seed) for seed in ours["seed"])
    epochs, max_lr = int(one_value(ours, "epochs")), float(one_value(ours, "max_lr"))
    accuracy, worst = mean_interval(ours["accuracy"]), mean_interval(ours["worst_class_tpr"])
    train_s = mean_interval(ours["train_seconds"])
    regime_epochs = REGIMES[regime]["epochs"]
    lines = [
        f"The reader's plain script (`benchmarks/plain_loop.py`: 3 convolutions of 32-64-128 channels with BN and "
        f"max pooling, SGD with Nesterov momentum, one-cycle max lr {max_lr:g}, label smoothing 0.1, no "
        f"augmentation) in the {regime} regime ({REGIMES[regime]['words']}; the script "
        f"trained {_epochs(epochs)} on the same {int(one_value(ours, 'train_images')):,} training images as the "
        f"library's runs of each seed; {int(one_value(ours, 'test_images')):,} test images), {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({seeds_text(seeds)}): test accuracy {_interval(accuracy)}, worst-class "
        f"TPR {_interval(worst)} (mean ± 95 % t interval over seeds; {train_s[0]:.1f} s of training a seed on "
        f"{one_value(ours, 'device')}).",
        f"Its compute: {_epochs(cost['script_epochs'])} x {cost['script_macs']:,} multiply-adds per image = "
        f"{cost['ratio']:.2f}x the baseline's ({_epochs(cost['baseline_epochs'])} x {cost['small_macs']:,} of the "
        f"{BASELINE_MODEL_SIZE} CNN), on the same training images.",
    ]
    if epochs != regime_epochs:
        lines.append(f"Not the regime's length: {_epochs(epochs)} instead of "
                     f"{regime_epochs} (an --epochs override, for a smoke run); these numbers answer nothing.")
    rows = [{"row": f"plain script (max lr {max_lr:g})", "seeds": len(seeds), "accuracy": _interval(accuracy),
             "worst-class TPR": _interval(worst), "multiply-adds / image": f"{cost['script_macs']:,}",
             "epochs": epochs, "compute (x baseline)": f"{cost['ratio']:.2f}"}]
    if comparison is not None:
        pairs = comparison["seeds"]
        acc, wst = comparison["accuracy"], comparison["worst_class_tpr"]
        source = f" (`{compare_name}`)" if compare_name else ""
        if not pairs:
            lines.append(f"The published baseline{source} has no run of the seeds {seeds_text(seeds)}: no pairing.")
        else:
            if comparison["unpaired"]:
                lines.append(f"Seeds without a published baseline run, left out of the pairing: "
                             f"{seeds_text(comparison['unpaired'])}.")
            lines.append(
                f"Paired by seed against the published baseline{source}, {len(pairs)} seed"
                f"{'s' if len(pairs) != 1 else ''} ({seeds_text(pairs)}; the baseline: accuracy "
                f"{_interval(acc['baseline'])}, worst-class TPR {_interval(wst['baseline'])}), script minus "
                f"baseline: {_signed_points(acc['difference'])} points of accuracy (paired t-test p "
                f"{p_text(acc['p'])}) and {_signed_points(wst['difference'])} points of worst-class TPR (p "
                f"{p_text(wst['p'])}).")
            verdicts = {key: verdict(*comparison[key]["difference"]) for key in METRICS}
            lines.append(f"On accuracy, {VERDICT_WORDS[verdicts['accuracy']]}; on worst-class TPR, "
                         f"{VERDICT_WORDS[verdicts['worst_class_tpr']]}.")
            rows.append({"row": "published baseline (same seeds)", "seeds": len(pairs),
                         "accuracy": _interval(acc["baseline"]), "worst-class TPR": _interval(wst["baseline"]),
                         "multiply-adds / image": f"{cost['small_macs']:,}", "epochs": cost["baseline_epochs"],
                         "compute (x baseline)": "1.00"})
            rows.append({"row": "script - baseline (points, paired)", "seeds": len(pairs),
                         "accuracy": f"{_signed_points(acc['difference'])} (p {p_text(acc['p'])})",
                         "worst-class TPR": f"{_signed_points(wst['difference'])} (p {p_text(wst['p'])})",
                         "multiply-adds / image": "", "epochs": "", "compute (x baseline)": ""})
    table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
    return "\n\n".join([" ".join(lines), table]) + "\n"


# --- files ---------------------------------------------------------------------------------------


def paths(out: str | Path, regime: str) -> tuple[Path, Path]:
    out = Path(out)
    return out / f"reader_script_{regime}.csv", out / f"reader_script_{regime}.md"


def write_outputs(out, regime: str, rows: list[dict], comparison_source=None, small_macs: int | None = None) -> str:
    """Write the per-seed CSV and the generated markdown of ``rows``; return the markdown."""
    csv_path, md_path = paths(out, regime)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write_text(csv_path, frame.to_csv(index=False))
    text = answer(frame, regime, comparison_source, small_macs)
    atomic_write_text(md_path, text)
    return text


def answer(frame: pd.DataFrame, regime: str, compare_path=None, small_macs: int | None = None) -> str:
    """The markdown on the per-seed ``frame``, paired with the baseline of ``compare_path`` where given."""
    if small_macs is None:
        from lbw_utils.models import cnn_multiply_adds

        small_macs = cnn_multiply_adds(BASELINE_MODEL_SIZE, (1, 28, 28))
    baseline_epochs, comparison = REGIMES[regime]["epochs"], None
    if compare_path is not None:
        baseline = baseline_rows(read_per_seed(compare_path), study_folder=REGIMES[regime]["study_folder"])
        check_same_regime(frame, baseline, regime)
        comparison = paired(frame, baseline)
    return report(frame, regime, compute(frame, baseline_epochs, small_macs), comparison,
                  None if compare_path is None else _shown_path(compare_path))


def _shown_path(path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(common.REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regime", choices=sorted(REGIMES), required=True)
    p.add_argument("--seeds", default="0-9", help="a range or comma list: 0-9, 0,3,5 (default 0-9)")
    p.add_argument("--max-lr", type=float, default=0.2, help="the one-cycle schedule's peak (default 0.2)")
    p.add_argument("--epochs", type=int, default=None, help="override the regime's epochs (smoke runs only)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the CSV and markdown")
    p.add_argument("--compare", default=None, help="a published per_seed.csv to pair with (its baseline rows)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite the markdown from the per-seed CSV already in --out")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: $LBW_DATA_DIR, else data/)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = p.parse_args()
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs {args.epochs} must be at least 1")
    csv_path, md_path = paths(args.out, args.regime)
    if args.report_only:
        frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
        text = answer(frame, args.regime, args.compare)
        atomic_write_text(md_path, text)
        print(text, flush=True)
        print(f"wrote {md_path}", flush=True)
        return
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as error:
        p.error(str(error))
    if args.compare is not None:  # refuse a wrong file before any training
        try:
            baseline_rows(read_per_seed(args.compare), study_folder=REGIMES[args.regime]["study_folder"])
        except (OSError, ValueError) as error:
            p.error(f"--compare {args.compare}: {error}")
    device = common.setup(args)
    epochs = args.epochs or REGIMES[args.regime]["epochs"]
    rows = []
    for seed in seeds:
        row = run_seed(args.regime, seed, epochs=epochs, max_lr=args.max_lr, device=device, data_dir=args.data_dir)
        rows.append(row)
        print(f"seed {seed}: test accuracy {row['accuracy']:.4f}, worst-class TPR {row['worst_class_tpr']:.4f} "
              f"({row['worst_class']}), {row['multiply_adds']:,} multiply-adds per image, "
              f"{row['train_seconds']:.1f} s training, {row['seconds']:.1f} s in all", flush=True)
        text = write_outputs(args.out, args.regime, rows, args.compare)
    print(text, flush=True)
    print(f"wrote {csv_path} and {md_path}", flush=True)


if __name__ == "__main__":
    main()
