"""How the time of a study grows with dataset size, seeds and methods.

    python benchmarks/scaling.py                            # dataset-size sweep (baseline, cpu-profile recipe)
    python benchmarks/scaling.py --records results/cpu      # + seeds x methods from a finished study

Dataset size: the baseline with the cpu profile's recipe (CNN small, batch 256,
4 epochs, no augmentation) on seeded random subsets of Fashion-MNIST's 55,000
training images (validation stays the full 5,000, evaluated every epoch). The
table gives training seconds and a least-squares fit ``t = a + b * N``.

Seeds and methods: a study is ``sum over seeds and methods`` of independent
runs, so its training time is ``seeds x sum_m t_m`` (t_m: one run of method m)
plus the notebooks' own overhead; ``--records`` reads t_m from the run records
of a finished study and checks that the per-seed totals are flat.
"""

from __future__ import annotations

import dataclasses
import statistics

import torch

import common
from profile_times import collect

from lbw_utils.data.images import load_image_dataset
from lbw_utils.models import make_model
from lbw_utils.train import TrainConfig, fit


def size_sweep(device, fractions: list[float], epochs: int, quick: bool) -> list[dict]:
    full = load_image_dataset("fashion_mnist", per_class=100 if quick else None, val_size=0.1 if quick else 5000,
                              seed=0, device=device)
    order = torch.randperm(full.size("train"), generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for fraction in fractions:
        keep = order[: max(1, round(fraction * full.size("train")))]
        data = dataclasses.replace(full, images={**full.images, "train": full.images["train"][keep]},
                                   targets={**full.targets, "train": full.targets["train"][keep]})
        config = TrainConfig(epochs=epochs, batch_size=256, lr=0.1, augment=False)
        torch.manual_seed(0)
        model = make_model("cnn", num_classes=10, input_shape=data.input_shape, size="small")
        common.reset_peak_memory(device)
        history = fit(model, data, None, config, seed=0, progress=False)
        rows.append({"share of training split": fraction, "train images": data.size("train"),
                     "epochs": epochs, "train s": history.train_seconds,
                     "s per 1k images per epoch": history.train_seconds / epochs / data.size("train") * 1000,
                     "val acc": history.val_accuracy[-1], "peak MiB": common.peak_memory_mib(device)})
        print(f"  N={data.size('train')}: {history.train_seconds:.1f} s", flush=True)
    return rows


def linear_fit(xs, ys) -> tuple[float, float]:
    mean_x, mean_y = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--fractions", default="0.0625,0.125,0.25,0.5,1", help="shares of the 55,000 training images")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--records", default=None, help="a finished study's results folder (e.g. results/cpu)")
    args = p.parse_args()
    device = common.setup(args)
    fractions = [float(f) for f in args.fractions.split(",")]
    epochs = args.epochs
    if args.quick:
        fractions, epochs = [0.5, 1.0], 1
    rows = size_sweep(device, fractions, epochs, args.quick)
    intercept, slope = linear_fit([r["train images"] for r in rows], [r["train s"] for r in rows])
    where = f"{device}, {torch.get_num_threads()} threads"
    tables = {f"Training time vs dataset size, Fashion-MNIST baseline, {epochs} epochs ({where}); "
              f"fit: t = {intercept:.2f} s + {slope * 1000:.3f} s per 1k images":
              common.markdown_table(rows)}
    payload = {"environment": common.environment(device), "quick": args.quick, "sizes": rows,
               "fit": {"intercept_s": intercept, "seconds_per_image": slope}}
    if args.records:
        study = collect(common.REPO_ROOT / args.records if not args.records.startswith("/") else args.records)
        payload["study"] = study
        trained = [row for row in study["by_method"] if row["train s (mean)"] > 0]
        per_seed = sum(row["train s (median)"] for row in study["by_method"])
        seed_totals = ", ".join("%.0f" % seconds for seconds in study["seed_totals"].values())
        overhead = study["notebook_overhead_seconds"]
        overhead = "n/a" if overhead is None else f"{overhead:.0f} s"
        tables[f"Seeds x methods, from the run records of {args.records}"] = common.markdown_table(
            study["by_method"]) + (
            f"\nOne seed of every method: {per_seed:.0f} s of training (medians over seeds); "
            f"per-seed totals of the runs' wall time {seed_totals} s; "
            f"{len(trained)} trained methods. Study time ~ seeds x {per_seed:.0f} s + notebook overhead "
            f"({overhead} here).\n")
    common.write_outputs(args.out, "scaling" + ("_quick" if args.quick else ""), payload, tables)


if __name__ == "__main__":
    main()
