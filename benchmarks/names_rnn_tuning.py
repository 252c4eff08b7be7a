"""Tuning the recurrent names model on the tuning share: validation on names no evaluated run ever sees.

    python benchmarks/names_rnn_tuning.py --threads 1          # 5 classes, the default candidates, seeds 0-3
    python benchmarks/names_rnn_tuning.py --quick              # 40 training names a class, 1 epoch: checks only
    python benchmarks/names_rnn_tuning.py --only rnn,+words,ensemble3:rnn --seeds 0 1 2 3 4 --tag _round2
    python benchmarks/names_rnn_tuning.py --classes all --only rnn,8epochs-b128 --tag _42
    python benchmarks/names_rnn_tuning.py --only rnn,ngram-bag --per-class 500 --tag _n500  # a learning curve point
    python benchmarks/names_rnn_tuning.py --curve A.json B.json --reference ngram-bag       # ... and the curve

Every row trains one configuration with plain cross-entropy in a *tuning run* of the names data
(``load_names(..., tuning=True)``): it trains on names outside the tuning share (``--tuning-share``, the
studies' default 0.1: a fixed, stratified share of each class's names that every evaluated split leaves
out, whatever the fold or partition) and validates on the tuning share; a tuning run has no test names.
``--per-class`` training names a class are drawn from each training seed (default ``fold``: as many as an
evaluated fold of ``--folds`` trains on), so the seeds differ in training names, initialisation and batch
order. Each row reports the validation accuracy and worst-class TPR (mean ± 95 % t half-width over the
seeds), its change against ``--reference`` (default ``rnn``, the recurrent default) paired seed by seed,
the seconds a run and the training names per second, and a generated reading and choice under the table.

The choice: the row with the highest mean validation accuracy among those whose paired gain in validation
accuracy over the reference has a 95 % t interval above 0; the reference when none has. ``ensembleK:ROW``
averages the softmax of K independently trained members of a row; ``ngram-bag`` stands beside the
candidates for the target. Output, written atomically: ``<out>/names_rnn_tuning_share_<classes><tag>.md``
and ``.json`` (default ``docs/results/names_tuning/``; ``--quick`` writes into ``results/benchmarks/``).
Earlier tables of ``docs/results/names_tuning/`` were made by an earlier version of this script on k-fold
partition seed 1 (the same names the studies test) and remain as history (``--from-json`` and ``--curve``
still read them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import common
from lbw_utils.reporting.tables import mean_interval_text
from lbw_utils.stats import mean_interval
from lbw_utils.metrics import per_class_tpr
from lbw_utils.models import make_model
from lbw_utils.models.recurrent import NameClassifier, name_model_parameters
from lbw_utils.data.names import load_names
from lbw_utils.data.names.dataset import NAME_SWITCH, TUNING_SHARE
from lbw_utils.files import atomic_write_text
from lbw_utils.train import TrainConfig, fit, predict, seed_everything
from lbw_utils.methods.yardstick import ngram_logreg_outcome

TRAINING = {"optimizer": "adamw", "weight_decay": 0.01, "label_smoothing": 0.0, "augment": False}
SMALL = {"embedding_dim": 64, "conv_channels": 0, "num_layers": 1, "dropout": 0.3}
RNN = {**SMALL, "hidden_size": 64, "cell": "bigru", "pooling": "meanmax", "ngram_buckets": 2**15,
       "ngram_orders": (2, 4), "dropout": 0.5}
# name -> (what it changes, model name, model options, training options)
ROWS = {
    "gru-last": ("1-layer GRU (64), last state, emb 64, no conv, AdamW 3e-3 triangular, batch 128, 8 epochs",
                 "name_rnn", {**SMALL, "hidden_size": 64, "cell": "gru"},
                 {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 3e-3, "schedule": "triangular"}),
    "bigru-last": ("bidirectional", "name_rnn", {**SMALL, "hidden_size": 64, "cell": "bigru"},
                   {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 3e-3, "schedule": "triangular"}),
    "bigru-meanmax": ("mean and max over time instead of the last state", "name_rnn",
                      {**SMALL, "hidden_size": 64, "cell": "bigru", "pooling": "meanmax"},
                      {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 3e-3, "schedule": "triangular"}),
    "+ngrams": ("hashed 2-4-gram embeddings (2^15) beside the characters", "name_rnn",
                {**SMALL, "hidden_size": 64, "cell": "bigru", "pooling": "meanmax", "ngram_buckets": 2**15,
                 "ngram_orders": (2, 4)},
                {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 3e-3, "schedule": "triangular"}),
    "+regularised": ("one-cycle lr 5e-3, weight decay 0.1, dropout 0.5", "name_rnn", RNN,
                     {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 5e-3, "schedule": "onecycle",
                      "weight_decay": 0.1}),
    "+name-switch": ("the author's name switch on 50 % of the training names", "name_rnn", RNN,
                     {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 5e-3, "schedule": "onecycle",
                      "weight_decay": 0.1, "augment": True, "name_switch": 0.5}),
    "+batch256": ("batch 256, 6 epochs (1.3x the names/s, fewer epochs)", "name_rnn", RNN,
                  {**TRAINING, "epochs": 6, "batch_size": 256, "lr": 5e-3, "schedule": "onecycle",
                   "weight_decay": 0.1, "augment": True, "name_switch": 0.5}),
    "+12epochs": ("batch 256, 12 epochs", "name_rnn", RNN,
                  {**TRAINING, "epochs": 12, "batch_size": 256, "lr": 5e-3, "schedule": "onecycle",
                   "weight_decay": 0.1, "augment": True, "name_switch": 0.5}),
}
# Round 2, each on top of the default (the "+name-switch" row): richer inputs, more capacity, longer training.
DEFAULT_TRAINING = {**TRAINING, "epochs": 8, "batch_size": 128, "lr": 5e-3, "schedule": "onecycle",
                    "weight_decay": 0.1, "augment": True, "name_switch": 0.5}
WIDE = {**RNN, "ngram_buckets": 2**17, "ngram_orders": (2, 5), "words": True}
ROWS.update({
    "+words": ("whole-word hashed embeddings at each word's last character", "name_rnn", {**RNN, "words": True},
               DEFAULT_TRAINING),
    "+wide-inputs": ("words, 2-5-grams, 2^17 buckets (the bag's orders and table size)", "name_rnn", WIDE,
                     DEFAULT_TRAINING),
    "+hidden128": ("wide inputs, hidden 128 a direction", "name_rnn", {**WIDE, "hidden_size": 128},
                   DEFAULT_TRAINING),
    "+2layers": ("wide inputs, two recurrent layers", "name_rnn", {**WIDE, "num_layers": 2}, DEFAULT_TRAINING),
    "+16epochs": ("wide inputs, 16 epochs", "name_rnn", WIDE, {**DEFAULT_TRAINING, "epochs": 16}),
    "bag+bigru": ("reference: the n-gram bag with a bidirectional GRU (64) beside it", "name_ngram",
                  {"buckets": 2**17, "recurrent_hidden": 64},
                  {**TRAINING, "epochs": 6, "batch_size": 128, "lr": 3e-3, "schedule": "onecycle",
                   "weight_decay": 0.1}),
})
TOWERS = "towers"  # a model of this script only: NameClassifierTowers


class NameClassifierTowers(nn.Module):
    """The mean of the logits of ``towers`` independently initialised :class:`NameClassifier` networks, trained
    as one network (one loss on the averaged logits): an ensemble whose members learn together, against the
    ``ensembleK:ROW`` rows' members trained apart."""

    def __init__(self, num_classes: int, *, towers: int, **options):
        super().__init__()
        self.towers = nn.ModuleList(NameClassifier(num_classes, **options) for _ in range(towers))

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.stack([tower(codes, lengths) for tower in self.towers]).mean(0)


# Round 3: round 2 said more capacity and longer training overfit; regularise instead.
ROWS.update({
    "+avg-weights": ("an exponential moving average of the weights (decay 0.98 a step) is evaluated", "name_rnn", RNN,
                     {**DEFAULT_TRAINING, "average_weights": 0.98}),
    "+emb-dropout": ("dropout 0.2 on the input vectors (characters + n-grams)", "name_rnn",
                     {**RNN, "embedding_dropout": 0.2}, DEFAULT_TRAINING),
    "+6epochs": ("6 epochs instead of 8", "name_rnn", RNN, {**DEFAULT_TRAINING, "epochs": 6}),
    "+smoothing": ("label smoothing 0.1", "name_rnn", RNN, {**DEFAULT_TRAINING, "label_smoothing": 0.1}),
    "towers3": ("3 recurrent networks, logits averaged, trained together as one", TOWERS, {**RNN, "towers": 3},
                DEFAULT_TRAINING),
})
# For all 42 nationalities, against the default's former 4 epochs at batch 256 there (the cpu profile's schedule):
ROWS.update({
    "8epochs-b128": ("8 epochs at batch 128 (the 5-class schedule; the gpu profile's for 42 classes)", "name_rnn", RNN,
                     DEFAULT_TRAINING),
    "hidden128-b256": ("hidden 128 a direction, 4 epochs at batch 256", "name_rnn", {**RNN, "hidden_size": 128},
                       {**DEFAULT_TRAINING, "epochs": 4, "batch_size": 256}),
})
PREVIOUS = "previous"  # --reference previous: each row paired against the row above it
ENSEMBLE_PREFIX = "ensemble"  # "ensemble3:+wide-inputs": 3 members of a row, softmax averaged
CONFIG_ROWS = ("rnn", "ngram-bag", "author")  # rows read from NAME_MODEL_CONFIGS where it has them
YARDSTICK = "yardstick"


def config_row(name: str, classes: str):
    from lbw_utils.models.recurrent import NAME_MODEL_CONFIGS

    if name not in NAME_MODEL_CONFIGS:
        return None
    parameters = name_model_parameters(name, classes=classes)
    training = {k: v for k, v in parameters.items() if k not in ("model", "model_options")}
    return (f"model_config {name!r}", parameters["model"], parameters["model_options"], training)


def resolve_row(row: str, classes: str):
    """A row's definition: a tuning step, a model configuration, the yardstick, or ``ensembleK:ROW``."""
    if row == YARDSTICK:
        return YARDSTICK
    if row.startswith(ENSEMBLE_PREFIX) and ":" in row:
        count, member = row[len(ENSEMBLE_PREFIX):].split(":", 1)
        member_row = ROWS.get(member) or config_row(member, classes)
        if not count.isdigit() or int(count) < 2 or member_row is None:
            return None
        return (ENSEMBLE_PREFIX, int(count), member_row)
    return ROWS.get(row) or config_row(row, classes)


def describe(row: str, definition) -> str:
    """The table's "what it changes" text of a resolved row."""
    if definition == YARDSTICK:
        return "linear yardstick: char n-gram TF-IDF + logistic regression"
    if definition[0] == ENSEMBLE_PREFIX:
        return f"{definition[1]} members of {row.split(':', 1)[1]}, softmax averaged"
    return definition[0]


def tuning_table(results: dict[str, dict], folds_run: list[int], what: dict[str, str],
                 reference: str | None) -> list[dict]:
    """One line a row: validation accuracy and worst-class TPR (mean ± 95 % t half-width over the folds or
    seeds run, ``folds_run``), with ``reference`` (a row name) the change against that row paired by fold or
    seed, in points, and the time columns."""
    if reference not in (None, PREVIOUS, *results):
        raise SystemExit(f"--reference {reference!r} is not among the rows run: {list(results)} (or {PREVIOUS!r})")
    table = []
    for index, (row, by_fold) in enumerate(results.items()):
        runs = [by_fold[fold] for fold in folds_run]
        line = {"row": row, "what it changes": what[row]}
        for key, title in (("val_acc", "val acc"), ("val_worst", "val worst TPR")):
            line[title] = mean_interval_text(*mean_interval([r[key] for r in runs]))
        if reference is not None:
            against = paired_with(list(results), index, reference)
            for key, title in (("val_acc", "acc"), ("val_worst", "worst TPR")):
                line[f"Δ {title} vs {reference} (pts)"] = ("–" if against is None else mean_interval_text(
                    *paired_change(results, folds_run, row, against, key), digits=1))
        line["s / run"] = round(float(np.median([r["seconds"] for r in runs])), 1)
        line["train names/s"] = round(float(np.median([r["names_per_s"] for r in runs])))
        table.append(line)
    return table


def paired_with(rows: list[str], index: int, reference: str) -> str | None:
    """The row that ``rows[index]`` is paired with under ``reference`` (a row name, or the row above it for
    ``previous``); None for the reference itself and for the first row under ``previous``."""
    against = rows[index - 1] if reference == PREVIOUS else reference
    return None if rows[index] == against or (reference == PREVIOUS and index == 0) else against


def paired_change(results: dict[str, dict], folds_run: list[int], row: str, against: str,
                  key: str) -> tuple[float, float]:
    """``row`` minus ``against`` in ``key``, fold by fold, in points: mean and 95 % t half-width."""
    return mean_interval([100 * (results[row][fold][key] - results[against][fold][key]) for fold in folds_run])


def reading(results: dict[str, dict], folds_run: list[int], reference: str | None, unit: str = "fold") -> str:
    """The table's generated reading: which rows the paired validation changes against ``reference`` put above or
    below it (95 % t interval away from 0) in accuracy and in worst-class TPR, and which show no change;
    ``unit``: what ``folds_run`` counts (``fold``, or ``seed`` for the tuning share's training seeds)."""
    if reference is None or len(folds_run) < 2:
        return ""
    rows = list(results)
    sentences = []
    for key, what in (("val_acc", "validation accuracy"), ("val_worst", "validation worst-class TPR")):
        moved = {"above": [], "below": []}
        unchanged = []
        for index, row in enumerate(rows):
            against = paired_with(rows, index, reference)
            if against is None:
                continue
            mean, half = paired_change(results, folds_run, row, against, key)
            label = f"{row}" + (f" (against {against})" if reference == PREVIOUS else "")
            if abs(mean) > half:
                moved["above" if mean > 0 else "below"].append(f"{label} {mean:+.1f} ± {half:.1f}")
            else:
                unchanged.append(label)
        parts = [f"{side}: {', '.join(items)}" for side, items in moved.items() if items]
        parts.append(f"no change shown: {', '.join(unchanged) if unchanged else 'none'}")
        sentences.append(f"In {what}, " + "; ".join(parts) + ".")
    against = "the row above it" if reference == PREVIOUS else reference
    return (f"Paired with {against} {unit} by {unit} over {len(folds_run)} {unit}s, in points, 95 % t interval "
            f"(\"above\"/\"below\": the interval excludes 0). " + " ".join(sentences))


def scores(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> tuple[float, float]:
    predicted = logits.argmax(1)
    return (float((predicted == targets).float().mean()),
            float(per_class_tpr(targets, predicted, num_classes).min()))


def measure(row, data, seed: int, epochs_override: int | None) -> dict:
    if isinstance(row, tuple) and row[0] == ENSEMBLE_PREFIX:
        _, members, member_row = row
        logits, seconds = [], 0.0
        for member in range(members):  # members differ in initialisation and batch order only
            outcome = _measure_one(member_row, data, seed + 1000 * member, epochs_override, return_logits=True)
            logits.append(torch.softmax(outcome.pop("logits").float(), dim=1))
            seconds += outcome["seconds"]
        acc, worst = scores(torch.stack(logits).mean(0).cpu(), data.labels("val").cpu(), data.num_classes)
        epochs = epochs_override or member_row[3]["epochs"]
        return {"val_acc": acc, "val_worst": worst, "seconds": seconds,
                "names_per_s": members * epochs * data.size("train") / seconds}
    return _measure_one(row, data, seed, epochs_override)


def _measure_one(row, data, seed: int, epochs_override: int | None, return_logits: bool = False) -> dict:
    if row == YARDSTICK:
        outcome = ngram_logreg_outcome({"name": "ngram-logreg", "C": 3.0}, data, seed)
        logits, seconds, epochs = outcome["val_logits"], outcome["train_seconds"], 1
    else:
        _, model_name, options, training = row
        training = {**training, **({"epochs": epochs_override} if epochs_override else {})}  # a copy to pop from
        data.name_switch = training.pop("name_switch", NAME_SWITCH)
        seed_everything(seed)
        network = (NameClassifierTowers(data.num_classes, **options) if model_name == TOWERS
                   else make_model(model_name, num_classes=data.num_classes, **options))
        history = fit(network, data, config=TrainConfig(**training), seed=seed, progress=False)
        logits, seconds, epochs = predict(network, data, "val"), history.train_seconds, training["epochs"]
    acc, worst = scores(logits.cpu(), data.labels("val").cpu(), data.num_classes)
    return {"val_acc": acc, "val_worst": worst, "seconds": seconds,
            "names_per_s": epochs * data.size("train") / seconds, **({"logits": logits} if return_logits else {})}


# The rows a plain run compares: the default and single-network variants of it from earlier rounds, one change
# each (an ensemble, a wider or a longer-trained network would not fit the cpu profile's time).
CANDIDATES = ("rnn", "+6epochs", "+smoothing", "+words", "+emb-dropout")
DEFAULT_OUT = common.REPO_ROOT / "docs" / "results" / "names_tuning"
QUICK_OUT = common.DEFAULT_OUT


def fold_training_size(classes: str, data_dir, folds: int, share: float) -> int:
    """Training names a class of an evaluated fold (fold 0 of ``folds``, partition 0) with this tuning share:
    the fewest over the classes."""
    data = load_names(classes, data_dir=data_dir, seed=0, folds=folds, tuning_share=share, device="cpu")
    return min(np.bincount(data.labels("train").cpu().numpy(), minlength=data.num_classes).tolist())


def choose(results: dict[str, dict], seeds: list[int], reference: str) -> tuple[str, str]:
    """The selection rule on the tuning share's validation scores: ``(row, why)``, the row with the highest mean
    validation accuracy among those whose paired gain over ``reference`` has a 95 % t interval above 0, else
    ``reference``."""
    gains = {row: paired_change(results, seeds, row, reference, "val_acc") for row in results if row != reference}
    above = {row: mean for row, (mean, half) in gains.items() if len(seeds) > 1 and mean - half > 0}
    if not above:
        return reference, (f"no row's paired gain in validation accuracy over {reference} has a 95 % t interval "
                           f"above 0 over {len(seeds)} seeds, so {reference} stays")
    row = max(above, key=above.get)
    mean, half = gains[row]
    return row, (f"{row}: paired gain in validation accuracy over {reference} {mean:+.1f} ± {half:.1f} points over "
                 f"{len(seeds)} seeds, the highest of the rows whose interval is above 0 ({', '.join(above)})")


def main() -> None:
    p = common.parser(__doc__)
    p.set_defaults(out=None)
    p.add_argument("--classes", default="paper", help="paper (5 classes) or all (42)")
    p.add_argument("--tuning-share", type=float, default=TUNING_SHARE,
                   help="the share of each class's names set aside for tuning (the studies' DataOptions.tuning_share)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3],
                   help="training seeds (at least 3 for a choice)")
    p.add_argument("--folds", type=int, default=5, help="the evaluated studies' folds, for --per-class fold")
    p.add_argument("--per-class", default="fold",
                   help="training names a class, drawn from each seed outside the tuning share: 'fold' (as many as "
                        "an evaluated fold of --folds trains on), 'all', or a number (a learning curve)")
    p.add_argument("--only", default=",".join(CANDIDATES),
                   help=f"comma-separated rows among {[*ROWS, *CONFIG_ROWS]}, or ensembleK:ROW "
                        f"(default: {','.join(CANDIDATES)})")
    p.add_argument("--tag", default="", help="suffix of the output files")
    p.add_argument("--reference", default="rnn",
                   help="the row every row is paired against (seed by seed) and the choice falls back to, or "
                        "'previous' (the row above; no choice)")
    p.add_argument("--from-json", default=None,
                   help="rewrite the tables of an earlier run's JSON (with --reference) instead of training")
    p.add_argument("--curve", nargs="+", default=None, metavar="JSON",
                   help="write a learning curve from earlier runs' JSON files (each with a different --per-class, "
                        "the same seeds or folds): every row's validation accuracy and worst-class TPR by names a "
                        "class, and each row's change against --reference, paired by seed or fold")
    args = p.parse_args()
    if args.from_json:
        return retable(Path(args.from_json), args.reference)
    out = Path(args.out or (QUICK_OUT if args.quick else DEFAULT_OUT))
    if args.curve:
        return learning_curve([Path(path) for path in args.curve], args.reference, out, args.tag)
    started, monitor = time.perf_counter(), common.InterferenceMonitor()
    device = common.setup(args)
    rows = args.only.split(",")
    resolved = {}
    for row in rows:
        resolved[row] = None if row == YARDSTICK else resolve_row(row, args.classes)
        if resolved[row] is None:
            raise SystemExit(f"--only: unknown row {row!r}; allowed: {[*ROWS, *CONFIG_ROWS]}, or "
                             f"{ENSEMBLE_PREFIX}K:ROW for K members of a row (the yardstick scores test names, which "
                             "a tuning run has none of)")
    if args.reference not in (PREVIOUS, *rows):
        raise SystemExit(f"--reference {args.reference!r} is not among the rows: {rows} (or {PREVIOUS!r})")
    seeds = args.seeds[:1] if args.quick else args.seeds
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {seeds} repeats a seed")
    per_class = (40 if args.quick else None if args.per_class == "all" else
                 fold_training_size(args.classes, args.data_dir, args.folds, args.tuning_share)
                 if args.per_class == "fold" else int(args.per_class))
    results: dict[str, dict[int, dict]] = {row: {} for row in rows}
    sizes = {}
    for seed in seeds:
        data = load_names(args.classes, data_dir=args.data_dir, seed=seed, tuning=True,
                          tuning_share=args.tuning_share, per_class=per_class, device=device)
        sizes = {split: data.size(split) for split in ("train", "val", "test")}
        assert sizes["test"] == 0  # a tuning run: nothing evaluated can select anything
        for row in rows:
            r = results[row][seed] = measure(resolved[row], data, seed, 1 if args.quick else None)
            print(f"seed {seed} {row:16s} val acc {r['val_acc']:.4f} worst {r['val_worst']:.3f}  "
                  f"{r['seconds']:.1f} s  {r['names_per_s']:.0f} names/s", flush=True)
    what = {row: describe(row, resolved[row]) for row in rows}
    table = tuning_table(results, seeds, what, args.reference)
    choice, why = (None, "") if args.reference == PREVIOUS else choose(results, seeds, args.reference)
    where = f"{device}, {torch.get_num_threads()} thread(s)"
    trained = f"{per_class} training names a class" if per_class else "every non-tuning name trains"
    title = (f"Recurrent names model on the tuning share, classes={args.classes}, tuning_share={args.tuning_share} "
             f"({sizes['val']} validation names), {trained}, training seeds {seeds} ({where}); validation on the "
             f"tuning share only, mean ± 95 % t half-width over seeds")
    text = common.markdown_table(table) + with_reading(results, seeds, args.reference, "seed")
    if choice is not None:
        text += (f"\nChoice (rule: the highest mean validation accuracy among rows whose paired gain over "
                 f"{args.reference} is above 0, else {args.reference}): **{choice}**; {why}.\n")
    interference = {**monitor.report(), "wall_seconds": time.perf_counter() - started}
    rendered = f"### {title}\n\n{text}\n_{common.interference_note(interference)}_\n"
    name = f"names_rnn_tuning_share_{args.classes}{args.tag}" + ("_quick" if args.quick else "")
    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "interference": interference,
               "environment": common.environment(device), "seeds": seeds, "classes": args.classes,
               "tuning_share": args.tuning_share, "per_class": per_class, "folds": args.folds, "sizes": sizes,
               "reference": args.reference, "choice": choice, "why": why, "title": title, "what": what,
               "runs": {row: {str(seed): r for seed, r in by_seed.items()} for row, by_seed in results.items()},
               "table": table}
    print(rendered, flush=True)
    atomic_write_text(out / f"{name}.json", json.dumps(payload, indent=1, default=str) + "\n")
    atomic_write_text(out / f"{name}.md", rendered)
    print(f"wrote {out / name}.md and .json", flush=True)


def with_reading(results: dict[str, dict], folds_run: list[int], reference: str | None, unit: str = "fold") -> str:
    text = reading(results, folds_run, reference, unit)
    return f"\n{text}\n" if text else ""


def replicates(saved: dict) -> tuple[list[int], str]:
    """What a saved run paired on: ``(its training seeds, "seed")`` for a tuning-share run, ``(its folds of
    partition 1, "fold")`` for the tables of the earlier version of this script."""
    return (saved["seeds"], "seed") if "seeds" in saved else (saved["folds_run"], "fold")


def learning_curve(paths: list[Path], reference: str | None, out: Path, tag: str) -> None:
    """``names_rnn_tuning_curve_<classes><tag>.md``/``.json``: the rows common to every file, by names a class
    (a file run without ``--per-class`` holds every name and reads "all"), each with its change in accuracy against
    ``reference`` paired by seed (or, for earlier files, by fold)."""
    saved = [json.loads(path.read_text()) for path in paths]
    kinds = {(tuple(replicates(run)[0]), replicates(run)[1]) for run in saved}
    if len(kinds) != 1:
        raise SystemExit(f"--curve: the files ran different seeds or folds {sorted(kinds)}; a curve pairs the same "
                         "ones")
    folds_run, unit = kinds.pop()
    folds_run = list(folds_run)
    rows = [row for row in saved[0]["runs"] if all(row in run["runs"] for run in saved)]
    if reference is not None and reference not in rows:
        raise SystemExit(f"--reference {reference!r} is not a row of every file: {rows}")
    saved.sort(key=lambda run: run.get("per_class") or float("inf"))
    table = []
    for run in saved:
        results = {row: {int(f): r for f, r in run["runs"][row].items()} for row in rows}
        line = {"names a class": run.get("per_class") or "all"}
        for row in rows:
            line[f"{row} val acc"] = mean_interval_text(*mean_interval([results[row][f]["val_acc"] for f in folds_run]))
            line[f"{row} val worst TPR"] = mean_interval_text(
                *mean_interval([results[row][f]["val_worst"] for f in folds_run]))
        for row in rows if reference is not None else []:
            if row != reference:
                change = [100 * (results[row][f]["val_acc"] - results[reference][f]["val_acc"]) for f in folds_run]
                line[f"Δ acc {row} vs {reference} (pts)"] = mean_interval_text(*mean_interval(change), digits=1)
        table.append(line)
    first = saved[0]
    if unit == "seed":
        split = (f"tuning_share={first['tuning_share']}, training seeds {folds_run} (that many training names a "
                 f"class drawn outside the tuning share; 'all': every one)")
    else:
        split = (f"partition seed {first['partition_seed']}, folds {folds_run} of {first.get('folds', 5)} (each "
                 f"class sub-sampled to that many names before the folds are cut; 'all': every name)")
    title = (f"Learning curve, classes={first['classes']}, {split}; validation only, mean ± 95 % t half-width over "
             f"{unit}s; from {', '.join(path.name for path in paths)}")
    common.write_outputs(out, f"names_rnn_tuning_curve_{first['classes']}{tag}",
                         {"files": [path.name for path in paths], f"{unit}s": folds_run, "reference": reference,
                          "table": table}, {title: common.markdown_table(table)})


def retable(path: Path, reference: str | None) -> None:
    """Rewrite ``path`` (and its ``.md``) with the tables recomputed from its runs, e.g. with ``--reference``;
    the run's own interference note is kept (and, for a tuning-share run, the choice recomputed)."""
    saved = json.loads(path.read_text())
    folds_run, unit = replicates(saved)
    results = {row: {int(fold): run for fold, run in by_fold.items()} for row, by_fold in saved["runs"].items()}
    what = saved.get("what") or {line["row"]: line["what it changes"] for line in saved["table"]}
    saved["table"] = tuning_table(results, folds_run, what, reference)
    title = saved.get("title") or next(line[4:] for line in path.with_suffix(".md").read_text().splitlines()
                                       if line.startswith("### "))
    saved["title"] = title
    note = common.interference_note(saved.get("interference") or {})
    table = common.markdown_table(saved["table"]) + with_reading(results, folds_run, reference, unit)
    if unit == "seed" and reference not in (None, PREVIOUS):
        saved["reference"] = reference
        saved["choice"], saved["why"] = choose(results, folds_run, reference)
        table += (f"\nChoice (rule: the highest mean validation accuracy among rows whose paired gain over "
                  f"{reference} is above 0, else {reference}): **{saved['choice']}**; {saved['why']}.\n")
    rendered = f"### {title}\n\n{table}\n_{note}_\n"
    atomic_write_text(path.with_suffix(".md"), rendered)
    atomic_write_text(path, json.dumps(saved, indent=1, default=str) + "\n")
    print(rendered + f"\nwrote {path}", flush=True)


if __name__ == "__main__":
    main()
