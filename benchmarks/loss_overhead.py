"""What each loss of the weighting study costs over plain cross-entropy, per training step.

    python benchmarks/loss_overhead.py            # goal: <= 5 % per step for every loss

Two measurements:
1. in training: one epoch of the library's ``fit`` per loss (Fashion-MNIST,
   CNN small, batch 256; names RNN, batch 128), the losses interleaved over
   ``--repeats`` rounds (order rotated each round) so that drifts of the machine hit all alike; per step =
   (epoch - validation pass) / steps, median over rounds; overhead = median
   per-step time / plain CE's - 1 (CDB's and min-recall's once-per-epoch weight
   updates are inside the epoch, and so are min-recall's validation passes every
   k steps: that variant's overhead is mostly those passes, not the loss);
2. isolated: forward + backward of the loss alone on ``[batch, classes]`` logits,
   microseconds per call; divided by CE's step time it is a noise-free estimate
   of the same overhead.
On CUDA it also counts host-device synchronisations inside a training step
(``torch.cuda.set_sync_debug_mode``); there should be none.
"""

from __future__ import annotations

import time
import warnings

import torch

import common

from lbw_utils.data.images import load_image_dataset
from lbw_utils.methods import make_loss
from lbw_utils.models import make_model
from lbw_utils.train import TrainConfig, fit, predict

METHODS = {
    "CE (baseline)": {"name": "baseline"},
    "static (mean-ratio, gamma 4)": {"name": "static", "scheme": "mean-ratio", "gamma": 4},
    "EMA faithful (alpha 0.01)": {"name": "ema", "alpha": 0.01},
    "EMA normalised (alpha 0.01)": {"name": "ema", "alpha": 0.01, "normalize": True},
    "focal (gamma 2)": {"name": "focal", "gamma": 2.0},
    "CDB CIFAR-LT form (tau dynamic)": {"name": "cdb"},
    "CDB ImageNet-LT form (tau dynamic)": {"name": "cdb", "variant": "imagenet"},
    "class DRO (eta 0.01)": {"name": "dro", "eta": 0.01},
    "group DRO (eta 0.01)": {"name": "dro", "form": "group"},
    "min-recall weighted (per epoch)": {"name": "minrecall", "form": "weighted"},
    "min-recall logit-adjusted (per epoch)": {"name": "minrecall", "form": "logit-adjusted"},
    "min-recall logit-adjusted (every 8 steps)": {"name": "minrecall", "eta": 0.25, "every": 8},
    "margin static (gamma 4)": {"name": "margin", "source": "static"},
    "margin static LDAM form": {"name": "margin", "source": "static", "form": "ldam"},
    "margin dynamic (gamma 4, alpha 0.01)": {"name": "margin", "source": "dynamic"},
}


def _tpr(num_classes: int) -> list[float]:
    """A plausible baseline TPR vector (static weights need one; its values do not change the cost)."""
    return torch.linspace(0.7, 0.98, num_classes).tolist()


def in_training(data, model_fn, config: TrainConfig, repeats: int, device, label_smoothing: float) -> dict:
    steps = -(-data.size("train") // config.batch_size)
    per_step = {name: [] for name in METHODS}
    memory = {}
    names = list(METHODS)
    for round_ in range(repeats):
        # rotate the order every round, so that no loss always runs first (warm-up) or last
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            method = METHODS[name]
            loss = make_loss(method, data.num_classes, tpr=_tpr(data.num_classes), label_smoothing=label_smoothing)
            torch.manual_seed(0)
            model = model_fn()
            common.reset_peak_memory(device)
            history = fit(model, data, loss, config, seed=0, progress=False)
            memory[name] = common.peak_memory_mib(device)
            with common.Clock(device) as clock:
                predict(model, data, "val", batch_size=config.eval_batch_size, amp=config.amp)
            per_step[name].append((history.epoch_seconds[-1] - clock.seconds) / steps)
            print(f"  round {round_ + 1} {name}: {per_step[name][-1] * 1e3:.2f} ms/step", flush=True)
    base = common.median(per_step["CE (baseline)"])
    rows = []
    for name, times in per_step.items():
        rows.append({"loss": name, "ms/step (median)": common.median(times) * 1e3,
                     "± (half range)": common.spread(times) * 1e3,
                     "overhead %": 100 * (common.median(times) / base - 1),
                     "overhead % (min)": 100 * (min(times) / min(per_step["CE (baseline)"]) - 1),
                     "peak MiB": memory[name]})
    return {"rows": rows, "raw_seconds_per_step": per_step, "steps_per_epoch": steps, "ce_seconds_per_step": base}


def isolated(batch: int, num_classes: int, device, iterations: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, num_classes, generator=generator).to(device).requires_grad_()
    targets = torch.randint(0, num_classes, (batch,), generator=generator).to(device)
    result = {}
    for name, method in METHODS.items():
        loss_fn = make_loss(method, num_classes, tpr=_tpr(num_classes), label_smoothing=0.1).to(device)
        loss_fn.train()
        for _ in range(10):
            loss_fn(logits, targets).backward()
        common.synchronize(device)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(iterations):
                loss_fn(logits, targets).backward()
            common.synchronize(device)
            best = min(best, (time.perf_counter() - start) / iterations)
        result[name] = best
    return result


def sync_check(data, device, config: TrainConfig) -> dict:
    """CUDA only: host-device synchronisations warned about during 5 training steps of each loss."""
    counts = {}
    for name, method in METHODS.items():
        loss_fn = make_loss(method, data.num_classes, tpr=_tpr(data.num_classes), label_smoothing=0.1).to(device)
        model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape).to(
            device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        batches = data.batches("train", config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        for _ in range(2):  # warm-up outside the check (allocations, cuDNN autotuning)
            (images,), targets = next(batches)
            loss_fn(model(images).float(), targets).backward()
        torch.cuda.synchronize(device)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(5):
                    (images,), targets = next(batches)
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        logits = model(images)
                    loss = loss_fn(logits.float(), targets)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts[name] = sum("synchroniz" in str(w.message).lower() for w in caught)
    return counts


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-names", action="store_true")
    args = p.parse_args()
    device = common.setup(args)
    quick = args.quick
    repeats = 1 if quick else args.repeats
    where = f"{device}, {torch.get_num_threads()} threads"

    data = load_image_dataset("fashion_mnist", per_class=200 if quick else None, val_size=0.1 if quick else 5000,
                              seed=0, device=device)
    config = TrainConfig(epochs=1, batch_size=256, lr=0.1, augment=False)
    image = in_training(data, lambda: make_model("cnn", num_classes=10, input_shape=data.input_shape, size="small"),
                        config, repeats, device, 0.1)
    micro = isolated(256, 10, device, 20 if quick else 300)
    for row in image["rows"]:
        extra = micro[row["loss"]] - micro["CE (baseline)"]
        row["loss alone µs"] = micro[row["loss"]] * 1e6
        row["isolated overhead %"] = 100 * extra / image["ce_seconds_per_step"]
    tables = {f"Loss overhead per step, Fashion-MNIST CNN small, batch 256, bf16 ({where}, "
              f"{repeats} interleaved rounds, {image['steps_per_epoch']} steps each)":
              common.markdown_table(image["rows"])}
    payload = {"environment": common.environment(device), "quick": quick, "repeats": repeats, "image": image,
               "isolated_seconds_per_call": micro}

    if not args.skip_names:
        from lbw_utils.data.names import load_names

        names = load_names("paper", per_class=100 if quick else None, seed=0, device=device)
        names_config = TrainConfig(epochs=1, batch_size=128, optimizer="adamw", lr=0.003, weight_decay=1e-5,
                                   label_smoothing=0.0)
        rnn = in_training(names, lambda: make_model("name_rnn", num_classes=names.num_classes), names_config,
                          repeats, device, 0.0)
        micro_names = isolated(128, names.num_classes, device, 20 if quick else 300)
        for row in rnn["rows"]:
            row["loss alone µs"] = micro_names[row["loss"]] * 1e6
            row["isolated overhead %"] = 100 * (micro_names[row["loss"]] - micro_names["CE (baseline)"]) \
                / rnn["ce_seconds_per_step"]
        tables[f"Loss overhead per step, names RNN (5 classes), batch 128 ({where})"] = common.markdown_table(rnn["rows"])
        payload["names"] = rnn
        payload["names_isolated_seconds_per_call"] = micro_names
    if device.type == "cuda":
        syncs = sync_check(data, device, config)
        payload["cuda_syncs_in_5_steps"] = syncs
        tables["CUDA synchronisations warned in 5 training steps"] = common.markdown_table(
            [{"loss": k, "syncs": v} for k, v in syncs.items()])
    common.write_outputs(args.out, "loss_overhead" + ("_quick" if quick else ""), payload, tables)


if __name__ == "__main__":
    main()
