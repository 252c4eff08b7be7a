"""What each choice of the n-gram bag names model bought: an ablation from the author's configuration (as this
repository trained it before issue 25) to ``model_config = "ngram-bag"`` (called "tuned" when the rows of
docs/names-tuning.md were measured), with the linear yardstick beside it, over several seeds.

    python benchmarks/names_ablation.py                     # 5 classes, 5 seeds (about 11 min on 2 cores)
    python benchmarks/names_ablation.py --classes all --seeds 0 1 2 --only tuned,yardstick
    python benchmarks/names_ablation.py --quick             # 40 names a class, 1 seed: checks the script only

Each row is one model configuration: the author's LSTM as configured before tuning, the same network
with the tuned training, then the n-gram bag network one change at a time up to the tuned one, and
variants of the tuned one (a recurrent branch, less dropout, longer training). For every row and seed it
trains once with plain cross-entropy and reports the *validation* accuracy and worst-class TPR (what the
choice was made on), the test ones, the training seconds per run and the training names per second.
Means ± 95 % t half-widths over the seeds; "Δ vs yardstick" is paired (same seed, same split).
"""

from __future__ import annotations

import numpy as np
import torch

import common
from lbw_utils.reporting.tables import mean_interval_text
from lbw_utils.stats import mean_interval
from lbw_utils.metrics import per_class_tpr
from lbw_utils.models import make_model
from lbw_utils.models.recurrent import name_model_parameters
from lbw_utils.data.names import load_names
from lbw_utils.train import TrainConfig, fit, predict, seed_everything
from lbw_utils.methods.yardstick import ngram_logreg_outcome

TUNED_TRAINING = {key: value for key, value in name_model_parameters("ngram-bag").items()
                  if key not in ("model", "model_options")}
# The training this repository gave the author's network before issue 25 (not his recipe: model_config "author").
AUTHOR_TRAINING = {"epochs": 8, "batch_size": 128, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-5,
                   "schedule": "triangular", "label_smoothing": 0.0, "augment": False}
TUNED_MODEL = name_model_parameters("ngram-bag")["model_options"]
PLAIN_BAG = {"word_positions": False, "words": False}
# name -> (what it changes, model name, model options, training options); rows build on the previous one.
ROWS = {
    "author": ("the author's LSTM, this repository's earlier training", "name_rnn", {}, AUTHOR_TRAINING),
    "author+tuned-training": ("same LSTM, one-cycle, weight decay 0.1, 6 epochs", "name_rnn", {}, TUNED_TRAINING),
    "bag-1-4": ("n-gram bag (orders 1-4), the author's training", "name_ngram",
                {**PLAIN_BAG, "ngram_orders": [1, 4]}, AUTHOR_TRAINING),
    "bag-1-4+tuned-training": ("n-gram bag (orders 1-4), tuned training", "name_ngram",
                               {**PLAIN_BAG, "ngram_orders": [1, 4]}, TUNED_TRAINING),
    "bag-1-5": ("orders 1-5", "name_ngram", PLAIN_BAG, TUNED_TRAINING),
    "bag-1-5+words": ("+ whole words", "name_ngram", {"word_positions": False}, TUNED_TRAINING),
    "tagged-2^16": ("+ n-grams tagged with their word (2^16 buckets)", "name_ngram", {}, TUNED_TRAINING),
    "tuned": ("twice the hash buckets (2^17) = model_config 'ngram-bag'", "name_ngram", TUNED_MODEL, TUNED_TRAINING),
    "tuned+bigru": ("+ a bidirectional GRU branch (64 units)", "name_ngram",
                    {**TUNED_MODEL, "recurrent_hidden": 64}, TUNED_TRAINING),
    "tuned-dropout0.2": ("dropout 0.2 instead of 0.5", "name_ngram", {**TUNED_MODEL, "dropout": 0.2},
                         TUNED_TRAINING),
    "tuned-12epochs": ("12 epochs instead of 6", "name_ngram", TUNED_MODEL, {**TUNED_TRAINING, "epochs": 12}),
}
YARDSTICK = "yardstick"


def scores(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> tuple[float, float]:
    predicted = logits.argmax(1)
    return (float((predicted == targets).float().mean()),
            float(per_class_tpr(targets, predicted, num_classes).min()))


def measure(row: str, data, seed: int) -> dict:
    """One run of a row: validation and test accuracy and worst-class TPR, seconds, names/s."""
    if row == YARDSTICK:
        outcome = ngram_logreg_outcome({"name": "ngram-logreg", "C": 3.0}, data, seed)
        logits = {split: outcome[f"{split}_logits"] for split in ("val", "test")}
        seconds = outcome["train_seconds"]
        epochs = 1
    else:
        _, model_name, options, training = ROWS[row]
        seed_everything(seed)
        network = make_model(model_name, num_classes=data.num_classes, **options)
        history = fit(network, data, config=TrainConfig(**training), seed=seed, progress=False)
        logits = {split: predict(network, data, split) for split in ("val", "test")}
        seconds, epochs = history.train_seconds, training["epochs"]
    result = {"seconds": seconds, "names_per_s": epochs * data.size("train") / seconds}
    for split in ("val", "test"):
        result[f"{split}_acc"], result[f"{split}_worst"] = scores(logits[split].cpu(), data.labels(split).cpu(),
                                                                  data.num_classes)
    return result


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--classes", default="paper", help="paper (5 classes) or all (42)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--only", default=None, help=f"comma-separated rows among {[*ROWS, YARDSTICK]}")
    args = p.parse_args()
    device = common.setup(args)
    rows = [*ROWS, YARDSTICK] if args.only is None else args.only.split(",")
    unknown = sorted(set(rows) - {*ROWS, YARDSTICK})
    if unknown:
        raise SystemExit(f"--only: unknown row(s) {unknown}; allowed: {[*ROWS, YARDSTICK]}")
    seeds = args.seeds[:1] if args.quick else args.seeds
    results: dict[str, dict[int, dict]] = {row: {} for row in rows}
    for seed in seeds:
        data = load_names(args.classes, data_dir=args.data_dir, seed=seed, device=device,
                          per_class=40 if args.quick else None)
        for row in rows:
            results[row][seed] = measure(row, data, seed)
            r = results[row][seed]
            print(f"seed {seed} {row:24s} val {r['val_acc']:.4f} / {r['val_worst']:.3f}  "
                  f"test {r['test_acc']:.4f} / {r['test_worst']:.3f}  {r['seconds']:.1f} s", flush=True)
    table = []
    for row in rows:
        runs = [results[row][seed] for seed in seeds]
        line = {"row": row, "what it changes": "linear yardstick: char n-gram TF-IDF + logistic regression"
                if row == YARDSTICK else ROWS[row][0]}
        for key, title in (("val_acc", "val acc"), ("val_worst", "val worst TPR"), ("test_acc", "test acc"),
                           ("test_worst", "test worst TPR")):
            line[title] = mean_interval_text(*mean_interval([r[key] for r in runs]))
        if YARDSTICK in results and row != YARDSTICK:
            for key, title in (("test_acc", "Δ test acc vs yardstick (pts)"),
                               ("test_worst", "Δ test worst vs yardstick (pts)")):
                change = [100 * (results[row][s][key] - results[YARDSTICK][s][key]) for s in seeds]
                line[title] = mean_interval_text(*mean_interval(change), digits=1)
        line["s / run"] = round(float(np.median([r["seconds"] for r in runs])), 1)
        line["train names/s"] = round(float(np.median([r["names_per_s"] for r in runs])))
        table.append(line)
    where = f"{device}, {torch.get_num_threads()} threads"
    title = (f"Names ablation, classes={args.classes}, seeds {seeds} ({where}); means ± 95 % t half-width; "
             "selection on validation, test reported")
    common.write_outputs(args.out, f"names_ablation_{args.classes}" + ("_quick" if args.quick else ""),
                         {"environment": common.environment(device), "seeds": seeds, "classes": args.classes,
                          "runs": {row: {str(s): r for s, r in by_seed.items()} for row, by_seed in results.items()},
                          "table": table},
                         {title: common.markdown_table(table)})


if __name__ == "__main__":
    main()
