"""Training and inference throughput, the fraction of the arithmetic peak, and the levers.

    python benchmarks/throughput.py                  # Fashion-MNIST CNN + names RNN on this machine
    python benchmarks/throughput.py --compile        # also measure torch.compile (slow to compile)

Tables:
1. images/s of our ``fit`` (a full epoch, its validation pass subtracted) and of
   the plain reference's training loop, with achieved GFLOP/s and the fraction
   of the theoretical and of the measured-matmul peak (see ``common``);
2. the levers, one at a time, on the same training step as ``fit`` (data on the
   device, shuffled batch indexing): bf16 autocast, channels_last, a host sync
   per step (``loss.item()``), torch.compile;
3. inference images/s: ``predict`` (batched, bf16) vs fp32 vs the reference's
   DataLoader evaluation;
4. the names RNN: names/s for training (length-bucketed batches vs plain
   shuffling, bf16 vs fp32) and inference (split order vs length-sorted).
Peak memory (RSS on CPU, max_memory_allocated on GPU) is given per row.
"""

from __future__ import annotations

import itertools
import math
import time

import torch
from torch import nn

import common
from reference import Reference

from lbw_utils.data.images import load_image_dataset
from lbw_utils.models import make_model
from lbw_utils.speed import autocast, bf16_pays
from lbw_utils.train import TrainConfig, make_optimizer, make_scheduler, fit, predict


def _fractions(row: dict, gflops: float, dtype: str, peaks: dict) -> dict:
    theory = peaks["theoretical_gflops"].get(dtype)
    row["GFLOP/s"] = gflops
    row["% theor. peak"] = 100 * gflops / theory if theory else None
    row["% matmul peak"] = 100 * gflops / peaks["matmul_gflops"][dtype]
    return row


def _cycle(data, split, batch_size, seed, augment=False):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from data.batches(split, batch_size, shuffle=True, generator=generator, augment=augment)


def step_loop(data, *, size, batch_size, amp, channels_last, compiled, sync, steps, warmup, lr=0.1, augment=False):
    """``fit``'s training step with one lever changed; returns seconds per step (after warm-up)."""
    device = data.device
    torch.manual_seed(0)
    model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape, size=size)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    config = TrainConfig(epochs=1, batch_size=batch_size, lr=lr)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, 10**6)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    step_fn = torch.compile(model) if compiled else model
    batches = _cycle(data, "train", batch_size, 0, augment)
    loss_sum = torch.zeros((), device=device)
    compile_seconds = None
    common.reset_peak_memory(device)
    model.train()
    start = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            common.synchronize(device)
            if compiled:
                compile_seconds = time.perf_counter() - start
            start = time.perf_counter()
        (images,), targets = next(batches)
        if not channels_last:
            images = images.contiguous()
        with autocast(device, amp):
            logits = step_fn(images)
        loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if sync:
            loss_sum += loss.item() * len(targets)
        else:
            loss_sum += loss.detach() * len(targets)
    common.synchronize(device)
    return {"seconds_per_step": (time.perf_counter() - start) / steps, "compile_and_warmup_seconds": compile_seconds,
            "peak_memory_mib": common.peak_memory_mib(device)}


def image_benchmarks(args, device, peaks) -> tuple[list, list, list, dict]:
    quick = args.quick
    dataset, size, batch, lr = args.dataset, args.model_size, args.batch_size, args.lr
    data = load_image_dataset(dataset, per_class=300 if quick else None, val_size=0.1 if quick else 5000,
                              seed=0, device=device)
    probe = make_model("cnn", num_classes=10, input_shape=data.input_shape, size=size).to(device)
    macs = common.cnn_macs_per_image(probe, data.input_shape)
    train_flops, infer_flops = 6 * macs, 2 * macs  # 3 passes x 2 FLOP per multiply-add
    fast_dtype = "bf16" if bf16_pays(device) else "fp32"
    train_rows, lever_rows, infer_rows = [], [], []

    # 1. our fit, a whole epoch (the second, warm), minus its validation pass
    config = TrainConfig(epochs=1 if quick else 2, batch_size=batch, lr=lr, augment=args.augment)
    torch.manual_seed(0)
    model = make_model("cnn", num_classes=10, input_shape=data.input_shape, size=size)
    common.reset_peak_memory(device)
    history = fit(model, data, None, config, seed=0, progress=False)
    fit_peak = common.peak_memory_mib(device)
    with common.Clock(device) as clock:
        predict(model, data, "val", batch_size=config.eval_batch_size)
    epoch = history.epoch_seconds[-1] - clock.seconds
    rate = data.size("train") / epoch
    train_rows.append(_fractions({"loop": f"ours: fit ({fast_dtype}, channels_last)", "images/s": rate,
                                  "s/epoch (no val)": epoch, "peak MiB": fit_peak},
                                 rate * train_flops / 1e9, fast_dtype, peaks))

    # reference loop (plain): after 2 warm-up steps, a fixed number of steps
    workers = args.ref_workers if args.ref_workers is not None else (8 if device.type == "cuda" else 0)
    common.reset_peak_memory(device)
    reference = Reference(dataset, data, seed=0, epochs=1, batch_size=batch, lr=lr, workers=workers,
                          augment=args.augment, model_size=size, per_class=300 if quick else None,
                          val_size=0.1 if quick else 5000, device=device)
    reference.train_epoch(max_steps=2)
    stats = reference.train_epoch(max_steps=5 if quick else 100)
    ref_rate = stats["images"] / stats["seconds"]
    train_rows.append(_fractions({"loop": f"reference: DataLoader(num_workers={workers}), fp32", "images/s": ref_rate,
                                  "s/epoch (no val)": data.size("train") / ref_rate,
                                  "peak MiB": common.peak_memory_mib(device)},
                                 ref_rate * train_flops / 1e9, "fp32", peaks))

    # 2. levers on fit's step
    steps, warmup = (5, 2) if quick else (120, 10)
    variants = [
        ("fit's step: bf16 autocast + channels_last, no sync", dict(amp=True, channels_last=True, sync=False)),
        ("fp32 (autocast off)", dict(amp=False, channels_last=True, sync=False)),
        ("contiguous (NCHW) instead of channels_last", dict(amp=True, channels_last=False, sync=False)),
        ("fp32 + contiguous", dict(amp=False, channels_last=False, sync=False)),
        ("+ loss.item() every step", dict(amp=True, channels_last=True, sync=True)),
    ]
    if args.compile:
        variants.append(("+ torch.compile", dict(amp=True, channels_last=True, sync=False, compiled=True)))
    base = None
    for label, options in variants:
        options.setdefault("compiled", False)
        result = step_loop(data, size=size, batch_size=batch, steps=steps, warmup=warmup, lr=lr, augment=args.augment,
                           **options)
        per_step = result["seconds_per_step"]
        base = base or per_step
        dtype = "bf16" if options["amp"] and bf16_pays(device) else "fp32"
        row = {"variant": label, "ms/step": per_step * 1e3, "images/s": batch / per_step,
               "vs fit's step": per_step / base, "peak MiB": result["peak_memory_mib"]}
        if result["compile_and_warmup_seconds"] is not None:
            row["compile+warm-up s"] = result["compile_and_warmup_seconds"]
            row["break-even steps"] = (result["compile_and_warmup_seconds"] / max(base - per_step, 1e-9)
                                       if per_step < base else math.inf)
        lever_rows.append(_fractions(row, batch / per_step * train_flops / 1e9, dtype, peaks))
        print(f"  lever {label}: {per_step * 1e3:.1f} ms/step", flush=True)

    # 3. inference
    repeats = 1 if quick else 3
    for label, amp in ((f"ours: predict, batch 2048, {fast_dtype}", True), ("ours: predict, batch 2048, fp32", False)):
        predict(model, data, "test", amp=amp)  # warm-up
        common.reset_peak_memory(device)
        times = []
        for _ in range(repeats):
            with common.Clock(device) as clock:
                predict(model, data, "test", amp=amp)
            times.append(clock.seconds)
        dtype = fast_dtype if amp else "fp32"
        rate = data.size("test") / min(times)
        infer_rows.append(_fractions({"loop": label, "images/s": rate, "peak MiB": common.peak_memory_mib(device)},
                                     rate * infer_flops / 1e9, dtype, peaks))
    reference.evaluate()
    common.reset_peak_memory(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reference.evaluate()
        times.append(time.perf_counter() - start)
    rate = reference.test_size / min(times)
    infer_rows.append(_fractions({"loop": f"reference: DataLoader eval, batch 1024, fp32", "images/s": rate,
                                  "peak MiB": common.peak_memory_mib(device)}, rate * infer_flops / 1e9, "fp32", peaks))
    facts = {"macs_per_image": macs, "train_flops_per_image": train_flops, "train_size": data.size("train"),
             "test_size": data.size("test"), "reference_workers": workers}
    return train_rows, lever_rows, infer_rows, facts


def names_benchmarks(args, device, peaks) -> tuple[list, dict]:
    from lbw_utils.data.names import load_names

    quick = args.quick
    rows = []
    facts = {}
    batch = 128
    for label, chunk, amp in (("length-bucketed (sort_chunk_batches=50)", 50, True),
                              ("plain shuffle (sort_chunk_batches=0)", 0, True),
                              ("length-bucketed, fp32", 50, False)):
        data = load_names("paper", per_class=100 if quick else None, seed=0, device=device, sort_chunk_batches=chunk)
        torch.manual_seed(0)
        model = make_model("name_rnn", num_classes=data.num_classes).to(device)
        config = TrainConfig(epochs=1, batch_size=batch, optimizer="adamw", lr=0.003, weight_decay=1e-5,
                             label_smoothing=0.0, amp=amp)
        optimizer = make_optimizer(model, config)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(0)
        epochs = 1 if quick else 2
        common.reset_peak_memory(device)
        seconds, names, work = [], 0, []
        for epoch in range(epochs):
            model.train()
            with common.Clock(device) as clock:
                for (codes, lengths), targets in data.batches("train", batch, shuffle=True, generator=generator):
                    with autocast(device, amp):
                        logits = model(codes, lengths)
                    loss = loss_fn(logits.float(), targets)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if epoch == epochs - 1:
                        work.append((codes.shape[1], lengths))  # read back after the clock stops
            seconds.append(clock.seconds)
        epoch_seconds = seconds[-1]  # the warm epoch
        work = [(width, lengths.cpu()) for width, lengths in work]
        rate = data.size("train") / epoch_seconds
        macs = common.name_rnn_macs(model, work)
        padded = sum(width * len(lengths) for width, lengths in work)
        valid = sum(int(lengths.sum()) for _, lengths in work)
        dtype = "bf16" if amp and bf16_pays(device) else "fp32"
        rows.append(_fractions({"names RNN": f"train: {label}" + ("" if amp else ""),
                                "names/s": rate, "s/epoch": epoch_seconds,
                                "padding share": 1 - valid / padded, "peak MiB": common.peak_memory_mib(device)},
                               3 * 2 * macs / epoch_seconds / 1e9, dtype, peaks))
        print(f"  names {label}: {rate:.0f} names/s", flush=True)
        if chunk == 50 and amp:
            facts = {"train_size": data.size("train"), "test_size": data.size("test"),
                     "forward_macs_per_train_epoch": macs}
            # inference: split order (what predict does) vs length-sorted batches
            for order in ("split order (predict)", "length-sorted"):
                model.eval()
                start_stop = data._range("test")
                index = torch.arange(*start_stop)
                if order == "length-sorted":
                    index = index[torch.argsort(data._lengths_cpu[index], stable=True)]
                batches = []
                for rows_index in index.split(512):
                    width = int(data._lengths_cpu[rows_index].max())
                    rows_device = rows_index.to(device)
                    batches.append((data._codes[rows_device, :width], data._lengths[rows_device]))
                best = math.inf
                for _ in range(1 if quick else 5):
                    with torch.no_grad(), common.Clock(device) as clock:
                        for codes, lengths in batches:
                            with autocast(device, True):
                                model(codes, lengths)
                    best = min(best, clock.seconds)
                work_eval = [(codes.shape[1], lengths.cpu()) for codes, lengths in batches]
                eval_macs = common.name_rnn_macs(model, work_eval)
                rows.append(_fractions({"names RNN": f"inference, batch 512: {order}",
                                        "names/s": data.size("test") / best, "s/epoch": None,
                                        "padding share": 1 - sum(int(l.sum()) for _, l in work_eval)
                                        / sum(w * len(l) for w, l in work_eval),
                                        "peak MiB": None}, 2 * eval_macs / best / 1e9, dtype, peaks))
    return rows, facts


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (minutes to compile on CPU)")
    p.add_argument("--ref-workers", type=int, default=None, help="reference DataLoader workers (default 0 CPU, 8 GPU)")
    p.add_argument("--skip-names", action="store_true")
    p.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "cifar10"])
    p.add_argument("--model-size", default="small")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--augment", action="store_true", help="flip + crop in both loops (the GPU recipe)")
    args = p.parse_args()
    device = common.setup(args)
    peaks = common.peak_table(device, args.peak_gflops, args.quick)
    print("peaks (GFLOP/s):", peaks, flush=True)
    train_rows, lever_rows, infer_rows, facts = image_benchmarks(args, device, peaks)
    name_rows, name_facts = ([], {}) if args.skip_names else names_benchmarks(args, device, peaks)
    where = f"{device}, {torch.get_num_threads()} threads"
    theory = peaks["theoretical_gflops"]
    tables = {
        f"Arithmetic peak ({where}), GFLOP/s": common.markdown_table([
            {"dtype": d, "theoretical": theory.get(d), "measured matmul": peaks["matmul_gflops"][d]}
            for d in ("fp32", "bf16")]) + f"\nTheoretical: {theory['how']}\n" + (
            f"\nThe measured matmul beats the nominal-clock peak: the cores ran at >= "
            f"{peaks['implied_clock_ghz_at_least']:.2f} GHz (boost), so '% theor. peak' overstates; "
            f"'% matmul peak' is the safer figure.\n" if "implied_clock_ghz_at_least" in peaks else ""),
        f"Training throughput, {args.dataset}, CNN {args.model_size}, batch {args.batch_size}"
        f"{', flip+crop' if args.augment else ''} ({where}; "
        f"{facts['train_flops_per_image'] / 1e6:.1f} MFLOP per training image)": common.markdown_table(train_rows),
        f"Levers on fit's training step ({where})": common.markdown_table(lever_rows),
        f"Inference throughput, {args.dataset} test split ({where})": common.markdown_table(infer_rows),
    }
    if name_rows:
        tables[f"Names RNN (5 classes, batch 128 training; {where})"] = common.markdown_table(name_rows)
    stem = "throughput" + ("" if args.dataset == "fashion_mnist" else f"_{args.dataset}")
    common.write_outputs(args.out, stem + ("_quick" if args.quick else ""), {
        "environment": common.environment(device), "peaks": peaks, "quick": args.quick, "image_facts": facts,
        "names_facts": name_facts, "training": train_rows, "levers": lever_rows, "inference": infer_rows,
        "names": name_rows,
    }, tables)


if __name__ == "__main__":
    main()
