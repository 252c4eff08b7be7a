"""Time-to-accuracy of the baseline: our ``fit`` against the plain reference, in the same run.

    python benchmarks/time_to_accuracy.py                 # CPU: Fashion-MNIST to 91 %
    python benchmarks/time_to_accuracy.py --gpu-recipe    # GPU: CIFAR-10 to 94 % (unmeasured so far)

Procedure, identical for both sides: the learning-rate schedule needs a planned
length, so for each planned budget E of the ladder (``--budgets``, ascending) a
fresh run (same seed) trains epoch by epoch; after every epoch the test
accuracy is measured (``model.eval()``, no gradient; this time is *excluded*
from the training clock and reported apart) and the run stops as soon as it
reaches ``--target``. The first budget that reaches the target gives the
time-to-accuracy: the training seconds up to the epoch that crossed it. Budgets
that fell short are reported as search cost.

Our side runs the library's ``fit`` unchanged (its per-epoch validation pass
is inside our training clock, so the comparison is conservative). The test
evaluation hooks in through the loss's ``on_epoch_end``. The reference is
:mod:`reference` (torchvision dataset, per-sample transforms, DataLoader, fp32).
Its number of DataLoader workers is chosen by measurement (``--ref-workers``
candidates, the fastest over the first steps of an epoch wins, reported).
"""

from __future__ import annotations

import time

import torch

import common
from reference import Reference

from lbw_utils.data import load_image_dataset
from lbw_utils.losses import CrossEntropy
from lbw_utils.models import make_model
from lbw_utils.train import TrainConfig, fit, predict


class _Reached(Exception):
    pass


class _TestEachEpoch(CrossEntropy):
    """Plain label-smoothed CE whose epoch hook measures test accuracy and stops the run at the target."""

    def __init__(self, label_smoothing, model, data, config, target, started):
        super().__init__(label_smoothing)
        self._model, self._data, self._config, self._target = [model], data, config, target
        self.started = started
        self.epochs: list[dict] = []
        self.eval_seconds = 0.0

    def on_epoch_end(self, epoch, val_logits, val_targets):
        common.synchronize(self._data.device)
        entered = time.perf_counter()
        logits = predict(self._model[0], self._data, "test", batch_size=self._config.eval_batch_size,
                         amp=self._config.amp)
        accuracy = float((logits.argmax(1) == self._data.labels("test")).float().mean())
        left = time.perf_counter()
        train_clock = entered - self.started - self.eval_seconds
        self.eval_seconds += left - entered
        self.epochs.append({"epoch": epoch + 1, "train_seconds": train_clock, "test_accuracy": accuracy,
                            "eval_seconds": left - entered})
        print(f"  ours  E={self._config.epochs} epoch {epoch + 1}: acc {accuracy:.4f} "
              f"train {train_clock:.1f}s", flush=True)
        if accuracy >= self._target:
            raise _Reached


def ours_run(data, budget: int, args, recipe: dict) -> dict:
    config = TrainConfig(epochs=budget, batch_size=recipe["batch_size"], lr=recipe["lr"],
                         augment=recipe["augment"], label_smoothing=0.1, amp=True, compile=args.compile)
    torch.manual_seed(args.seed)
    model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape, size=recipe["model_size"])
    common.reset_peak_memory(data.device)
    common.synchronize(data.device)
    started = time.perf_counter()
    loss = _TestEachEpoch(0.1, model, data, config, args.target, started)
    try:
        fit(model, data, loss, config, seed=args.seed, progress=False)
    except _Reached:
        pass
    return {"budget": budget, "epochs": loss.epochs, "peak_memory_mib": common.peak_memory_mib(data.device)}


def reference_run(data, budget: int, workers: int, args, recipe: dict, device) -> dict:
    common.reset_peak_memory(device)
    reference = Reference(args.dataset, data, seed=args.seed, epochs=budget, batch_size=recipe["batch_size"],
                          lr=recipe["lr"], augment=recipe["augment"], model_size=recipe["model_size"],
                          workers=workers, per_class=args.per_class, val_size=args.val_size, device=device)
    epochs, clock, eval_total = [], 0.0, 0.0
    for epoch in range(budget):
        stats = reference.train_epoch()
        clock += stats["seconds"]
        start = time.perf_counter()
        accuracy = reference.evaluate()
        eval_seconds = time.perf_counter() - start
        eval_total += eval_seconds
        epochs.append({"epoch": epoch + 1, "train_seconds": clock, "test_accuracy": accuracy,
                       "eval_seconds": eval_seconds})
        print(f"  ref   E={budget} epoch {epoch + 1}: acc {accuracy:.4f} train {clock:.1f}s", flush=True)
        if accuracy >= args.target:
            break
    return {"budget": budget, "epochs": epochs, "workers": workers,
            "peak_memory_mib": common.peak_memory_mib(device)}


def choose_workers(data, candidates: list[int], args, recipe: dict, device, steps: int) -> tuple[int, list[dict]]:
    """Time the first ``steps`` training steps (loader start-up included) for each worker count."""
    trials = []
    for workers in candidates:
        reference = Reference(args.dataset, data, seed=args.seed, epochs=1, batch_size=recipe["batch_size"],
                              lr=recipe["lr"], augment=recipe["augment"], model_size=recipe["model_size"],
                              workers=workers, per_class=args.per_class, val_size=args.val_size, device=device)
        reference.train_epoch(max_steps=2)  # warm-up (allocator, oneDNN primitives)
        stats = reference.train_epoch(max_steps=steps)
        trials.append({"workers": workers, "steps": stats["steps"],
                       "seconds_per_step": stats["seconds"] / stats["steps"]})
        print(f"  reference with num_workers={workers}: {trials[-1]['seconds_per_step'] * 1e3:.1f} ms/step",
              flush=True)
    best = min(trials, key=lambda t: t["seconds_per_step"])
    return best["workers"], trials


def ladder(run, budgets: list[int], target: float) -> dict:
    """Run budgets in order until one reaches the target."""
    attempts = []
    for budget in budgets:
        attempt = run(budget)
        attempts.append(attempt)
        last = attempt["epochs"][-1]
        if last["test_accuracy"] >= target:
            return {"reached": True, "budget": budget, "epochs_to_target": last["epoch"],
                    "seconds_to_target": last["train_seconds"], "accuracy": last["test_accuracy"],
                    "eval_seconds": sum(e["eval_seconds"] for e in attempt["epochs"]),
                    "search_train_seconds": sum(a["epochs"][-1]["train_seconds"] for a in attempts),
                    "attempts": attempts}
    best = max((e for a in attempts for e in a["epochs"]), key=lambda e: e["test_accuracy"])
    return {"reached": False, "best_accuracy": best["test_accuracy"], "attempts": attempts}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--gpu-recipe", action="store_true", help="CIFAR-10, large CNN, flip+crop, target 94 %")
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--budgets", default=None, help="comma-separated planned epoch budgets, ascending")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ref-workers", default=None, help="comma-separated DataLoader worker counts to try")
    p.add_argument("--calibration-steps", type=int, default=40)
    p.add_argument("--compile", action="store_true", help="torch.compile our model")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    device = common.setup(args)
    if args.gpu_recipe:
        recipe = {"dataset": "cifar10", "model_size": "large", "batch_size": 512, "lr": 0.2, "augment": True,
                  "target": 0.94, "budgets": "10,15,20,30,40", "workers": "4,8"}
    else:
        recipe = {"dataset": "fashion_mnist", "model_size": "small", "batch_size": 256, "lr": 0.1,
                  "augment": False, "target": 0.91, "budgets": "3,4,5,6,8,10", "workers": "0,2"}
    args.dataset = recipe["dataset"]
    args.target = args.target if args.target is not None else recipe["target"]
    budgets = [int(b) for b in (args.budgets or recipe["budgets"]).split(",")]
    args.per_class = None
    if args.quick:
        args.per_class, budgets, args.target, args.calibration_steps = 300, [1], 0.0, 3
    args.val_size = 0.1 if args.quick else 5000
    data = load_image_dataset(args.dataset, per_class=args.per_class, val_size=args.val_size, seed=args.seed,
                              device=device)

    print(f"ours: fit, {recipe}", flush=True)
    ours = ladder(lambda budget: ours_run(data, budget, args, recipe), budgets, args.target)
    reference, workers, trials = None, None, []
    if not args.skip_reference:
        candidates = [int(w) for w in (args.ref_workers or recipe["workers"]).split(",")]
        workers, trials = choose_workers(data, candidates, args, recipe, device, args.calibration_steps)
        print(f"reference: num_workers={workers}", flush=True)
        reference = ladder(lambda budget: reference_run(data, budget, workers, args, recipe, device), budgets,
                           args.target)

    rows = []
    for name, result in (("ours (fit)", ours), ("reference", reference)):
        if result is None:
            continue
        row = {"loop": name, "reached": result["reached"]}
        if result["reached"]:
            row.update({"schedule (epochs)": result["budget"], "epochs to target": result["epochs_to_target"],
                        "train s to target": result["seconds_to_target"],
                        "test acc": result["accuracy"], "eval s (excluded)": result["eval_seconds"],
                        "search train s": result["search_train_seconds"],
                        "s/epoch": result["seconds_to_target"] / result["epochs_to_target"],
                        "peak MiB": result["attempts"][-1]["peak_memory_mib"]})
        else:
            row["test acc"] = result["best_accuracy"]
        rows.append(row)
    ratio = None
    if reference and ours["reached"] and reference["reached"]:
        ratio = ours["seconds_to_target"] / reference["seconds_to_target"]
    memory = "peak RSS" if device.type == "cpu" else "max_memory_allocated"
    tables = {
        f"Time to {args.target:.0%} test accuracy on {args.dataset} ({device}, {torch.get_num_threads()} threads; "
        f"ours/reference = {ratio:.3f})" if ratio else f"Time to {args.target:.0%} on {args.dataset}":
            common.markdown_table(rows),
        "Reference DataLoader workers (first steps of an epoch, loader start-up included)":
            common.markdown_table(trials) if trials else "(skipped)\n",
    }
    name = "time_to_accuracy" + ("_gpu" if args.gpu_recipe else "") + ("_quick" if args.quick else "")
    common.write_outputs(args.out, name, {
        "environment": common.environment(device), "recipe": recipe, "target": args.target, "budgets": budgets,
        "seed": args.seed, "quick": args.quick, "ours": ours, "reference": reference,
        "reference_workers": workers, "worker_trials": trials, "ratio_ours_over_reference": ratio,
        "memory_metric": memory,
    }, tables)


if __name__ == "__main__":
    main()
