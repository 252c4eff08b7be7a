"""Tuning the recurrent names model on folds that no table reads: validation only, one step at a time.

    python benchmarks/names_rnn_tuning.py                      # 5 classes, partition 1, folds 0 1
    python benchmarks/names_rnn_tuning.py --classes all --folds-run 0 --only bag,rnn
    python benchmarks/names_rnn_tuning.py --quick              # 40 names a class: checks the script only

Every row trains one configuration with plain cross-entropy on k-fold cross-fitting of *partition seed 1*
(``--partition-seed``; the evaluated studies use partition 0, so no evaluated test name chose anything),
and reports the validation accuracy and worst-class TPR (mean over the folds run), the seconds a run and
the training names per second. Rows build on the one before (what each step bought is the difference), the
n-gram bag (``model_config = "ngram-bag"``) and the linear yardstick stand beside them for the target.
Output: ``<out>/names_rnn_tuning_<classes>.md`` and ``.json`` (default ``results/benchmarks/``).
"""

from __future__ import annotations

import numpy as np
import torch

import common
from lbw_utils.compare import mean_interval, mean_interval_text
from lbw_utils.metrics import per_class_tpr
from lbw_utils.models import make_model
from lbw_utils.name_model import name_model_parameters
from lbw_utils.names import load_names
from lbw_utils.names.dataset import NAME_SWITCH
from lbw_utils.train import TrainConfig, fit, predict, seed_everything
from lbw_utils.yardstick import ngram_logreg_outcome

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
CONFIG_ROWS = ("rnn", "ngram-bag", "author")  # rows read from NAME_MODEL_CONFIGS where it has them
YARDSTICK = "yardstick"


def config_row(name: str, classes: str):
    from lbw_utils.name_model import NAME_MODEL_CONFIGS

    if name not in NAME_MODEL_CONFIGS:
        return None
    parameters = name_model_parameters(name, classes=classes)
    training = {k: v for k, v in parameters.items() if k not in ("model", "model_options")}
    return (f"model_config {name!r}", parameters["model"], parameters["model_options"], training)


def scores(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> tuple[float, float]:
    predicted = logits.argmax(1)
    return (float((predicted == targets).float().mean()),
            float(per_class_tpr(targets, predicted, num_classes).min()))


def measure(row, data, seed: int, epochs_override: int | None) -> dict:
    if row == YARDSTICK:
        outcome = ngram_logreg_outcome({"name": "ngram-logreg", "C": 3.0}, data, seed)
        logits, seconds, epochs = outcome["val_logits"], outcome["train_seconds"], 1
    else:
        _, model_name, options, training = row
        training = {**training, **({"epochs": epochs_override} if epochs_override else {})}
        data.name_switch = training.pop("name_switch", NAME_SWITCH)
        seed_everything(seed)
        network = make_model(model_name, num_classes=data.num_classes, **options)
        history = fit(network, data, config=TrainConfig(**training), seed=seed, progress=False)
        logits, seconds, epochs = predict(network, data, "val"), history.train_seconds, training["epochs"]
    acc, worst = scores(logits.cpu(), data.labels("val").cpu(), data.num_classes)
    return {"val_acc": acc, "val_worst": worst, "seconds": seconds,
            "names_per_s": epochs * data.size("train") / seconds}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--classes", default="paper", help="paper (5 classes) or all (42)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--folds-run", type=int, nargs="+", default=[0, 1], help="which folds of the partition to train")
    p.add_argument("--partition-seed", type=int, default=1, help="not 0: the evaluated studies' partition")
    p.add_argument("--only", default=None, help=f"comma-separated rows among {[*ROWS, *CONFIG_ROWS, YARDSTICK]}")
    p.add_argument("--tag", default="", help="suffix of the output files")
    args = p.parse_args()
    device = common.setup(args)
    if args.partition_seed == 0:
        raise SystemExit("--partition-seed 0 is the evaluated partition; tune on another one")
    rows = [*ROWS, *CONFIG_ROWS, YARDSTICK] if args.only is None else args.only.split(",")
    resolved = {}
    for row in rows:
        resolved[row] = YARDSTICK if row == YARDSTICK else (ROWS.get(row) or config_row(row, args.classes))
        if resolved[row] is None:
            raise SystemExit(f"--only: unknown row {row!r}; allowed: {[*ROWS, *CONFIG_ROWS, YARDSTICK]}")
    folds_run = args.folds_run[:1] if args.quick else args.folds_run
    results: dict[str, dict[int, dict]] = {row: {} for row in rows}
    for fold in folds_run:
        data = load_names(args.classes, data_dir=args.data_dir, seed=fold, folds=args.folds,
                          partition_seed=args.partition_seed, device=device, per_class=40 if args.quick else None)
        for row in rows:
            r = results[row][fold] = measure(resolved[row], data, fold, 1 if args.quick else None)
            print(f"fold {fold} {row:16s} val acc {r['val_acc']:.4f} worst {r['val_worst']:.3f}  "
                  f"{r['seconds']:.1f} s  {r['names_per_s']:.0f} names/s", flush=True)
    table = []
    for row in rows:
        runs = [results[row][fold] for fold in folds_run]
        what = ("linear yardstick: char n-gram TF-IDF + logistic regression" if row == YARDSTICK
                else resolved[row][0])
        line = {"row": row, "what it changes": what}
        for key, title in (("val_acc", "val acc"), ("val_worst", "val worst TPR")):
            line[title] = mean_interval_text(*mean_interval([r[key] for r in runs]))
        line["s / run"] = round(float(np.median([r["seconds"] for r in runs])), 1)
        line["train names/s"] = round(float(np.median([r["names_per_s"] for r in runs])))
        table.append(line)
    where = f"{device}, {torch.get_num_threads()} thread(s)"
    title = (f"Recurrent names model, tuning steps, classes={args.classes}, partition seed {args.partition_seed}, "
             f"folds {folds_run} of {args.folds} ({where}); validation only, mean ± 95 % t half-width over folds")
    name = f"names_rnn_tuning_{args.classes}{args.tag}" + ("_quick" if args.quick else "")
    common.write_outputs(args.out, name,
                         {"environment": common.environment(device), "folds_run": folds_run, "classes": args.classes,
                          "partition_seed": args.partition_seed,
                          "runs": {row: {str(f): r for f, r in by_fold.items()} for row, by_fold in results.items()},
                          "table": table},
                         {title: common.markdown_table(table)})


if __name__ == "__main__":
    main()
