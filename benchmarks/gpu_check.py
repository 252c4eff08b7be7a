"""The first check on a CUDA machine: how fast the GPU path is, and how long the gpu profile will take.

    make gpu-check                                        # = python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --probe-epochs 3 --budgets 10,15,20
    python benchmarks/gpu_check.py --device cpu --tiny    # the measuring code at toy sizes on the CPU (tests)

Without a CUDA device it prints that none is present, writes nothing and exits 0.

On a CUDA device it measures, with the library's own ``fit`` (mixed precision as the device allows:
bf16 where native, else fp16 with loss scaling; the precision is in the output):

1. CIFAR-10 time-to-94 %: the recipe of ``time_to_accuracy.py --gpu-recipe`` (large CNN, batch 512,
   lr 0.2, flip + crop; a ladder of planned budgets, the first that reaches the target gives the time).
   With the real CIFAR-10 under the data folder only. Without it, the same recipe trains on synthetic
   data of CIFAR-10's shape (45 000 / 5 000 / 10 000 random images) for timing only: seconds per epoch,
   and no time-to-accuracy (the output says "synthetic").
2. Per study of the gpu profile: one run of the study's baseline, with the study's own data, model and
   training settings, trained for ``--probe-epochs`` epochs; its first epoch (which pays cuDNN's
   autotuning, and the compilation with ``--compile``) and its later epochs are timed. The study's time
   is *extrapolated*, not measured: every run the study's notebooks train (counted from the profile's
   parameters by :func:`planned_runs`, which ``tests/test_gpu_profile.py`` checks against a real tiny run
   of the profile), for every seed, costs one first epoch plus its remaining epochs at the later epochs'
   rate. Runs the notebooks do not train (post-hoc offsets, the linear yardstick) and the notebooks' own
   overhead (kernel start, data loading, figures) are left out.
3. The whole profile: the sum of the studies.

Writes ``gpu_check.json`` and ``gpu_check.md`` under ``--out`` (default ``results/benchmarks/``); with
``--tiny``, ``gpu_check_tiny_<device>.*``, titled as a check of the script, not as timings.
"""

from __future__ import annotations

import ast
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

import common

from lbw_utils.data.images import CIFAR10_FOLDER, CIFAR10_MD5, DEFAULT_VAL_SIZE, IMAGE_READERS, ImageData
from lbw_utils.runs.experiments import BASELINE, Settings, load_data, method_label
from lbw_utils.methods import METHODS, exponent_key
from lbw_utils.models import make_model
from lbw_utils.models.recurrent import name_model_parameters
from lbw_utils.runner.profiles import load_profile, notebook_parameters
from lbw_utils.speed import autocast_precision
from lbw_utils.train import TrainConfig, fit, seed_everything
from lbw_utils.studies import training_length, tuning

NO_CUDA = ("gpu-check: no CUDA device is present (torch.cuda.is_available() is False); nothing was measured "
           "and nothing was written. Run it on a machine with an NVIDIA GPU; `--device cpu --tiny` checks the "
           "script itself at toy sizes.")
CIFAR10_SHAPE = {"train": 45_000, "val": 5_000, "test": 10_000}  # 50 000 training images, 5 000 held out
TINY_SHAPE = {"train": 200, "val": 50, "test": 50}
TINY_SIZES = {"epochs": 1, "batch_size": 32, "model_size": "tiny", "per_class": 20, "val_size": 0.25}
TINY_NAMES = {"per_class": 20, "model_options": {"embedding_dim": 16, "hidden_size": 16, "ngram_buckets": 1024},
              "bag_options": {"dim": 16, "buckets": 4096}, "batch_size": 32}


# --- what a study trains ------------------------------------------------------------------------


def notebook_defaults(notebook: str) -> dict:
    """A notebook's declared parameters with their default values (the `parameters` cell holds literals)."""
    return {name: ast.literal_eval(source) for name, source in notebook_parameters(notebook).items()}


def step_parameters(step) -> dict:
    return {**notebook_defaults(step.notebook), **step.parameters}


def _names_methods(p: dict) -> list[dict]:
    if p["methods"] is not None:
        return p["methods"]
    scheme, gamma = p["static_scheme"], p["static_gamma"]
    return [{"name": "static", "scheme": scheme, exponent_key(scheme): gamma},
            {"name": "ema", "alpha": p["ema_alpha"], "normalize": True}, {"name": "cdb", "tau": "dynamic"},
            {"name": "minrecall", "eta": 1.0, "form": "logit-adjusted", "every": "epoch"},
            {"name": "margin", "source": "static", "gamma": gamma}]


def planned_runs(steps) -> list[dict]:
    """The runs one seed of a study trains with the training loop: ``{"folder", "label", "epochs", "probe"}``.

    Mirrors the notebooks' cells that build their method lists (01, 03, 04, 05, 07, 08, 09; 02 and 06 train
    nothing). A run is trained once per results folder (a later notebook reads the earlier one's record),
    so runs are counted once per (folder, label). ``probe`` names the timed run whose epochs it costs:
    "main", "author" for the names study's author row, or "bag" for its n-gram bag family."""
    runs = {}

    def add(folder, method, epochs, probe="main"):
        if METHODS[method["name"]].kind.trains_with_loop:
            runs.setdefault((folder, method_label(method)),
                            {"folder": folder, "label": method_label(method), "epochs": epochs, "probe": probe})

    for step in steps:
        p = step_parameters(step)
        if step.notebook == "01_baseline":
            add("", BASELINE, p["epochs"])
        elif step.notebook == "03_static_weighting":
            for method in [BASELINE] + [{"name": "static", "scheme": "mean-ratio", "gamma": g} for g in p["gammas"]] \
                    + [{"name": "static", "scheme": "cdb", "tau": tau} for tau in p["cdb_taus"]]:
                add("", method, p["epochs"])
        elif step.notebook == "04_dynamic_weighting":
            for method in [BASELINE] + p["methods"]:  # notebook 04's list, before the post-hoc combination
                add("", method, p["epochs"])
        elif step.notebook == "05_name_nationality_rnn":
            tuned = name_model_parameters(p["model_config"], _names_overrides(p), p["classes"])
            for method in [BASELINE] + _names_methods(p):
                add("", method, tuned["epochs"])
            if p["author_row"] and p["model_config"] != "author":
                add("", {"name": "baseline", "label": "author-lstm"},
                    name_model_parameters("author", classes=p["classes"])["epochs"], probe="author")
            if p["bag_row"] and p["model_config"] != "ngram-bag":  # the second family, in its own folder
                bag = name_model_parameters("ngram-bag", _bag_overrides(p), p["classes"])
                for method in [BASELINE] + (p["bag_methods"] if p["bag_methods"] is not None else _names_methods(p)):
                    add("ngram-bag", method, bag["epochs"], probe="bag")
        elif step.notebook == "08_tuning_seeds":  # its own folder, on its own (tuning) seeds
            for method in [BASELINE] + tuning.candidates(tuning.check_grid(p["grid"])):
                add("tuning", method, p["epochs"])
        elif step.notebook == "09_beyond_reweighting":
            # A capacity row (a larger CNN) costs more per epoch than the timed baseline: counted at the
            # baseline's cost, so the estimate is low by that difference.
            for method in [BASELINE] + p["methods"]:
                add("beyond", method, p["epochs"])
        elif step.notebook == "07_training_length":
            scheme = p["static_scheme"]
            methods = [{"name": "static", "scheme": scheme, exponent_key(scheme): p["static_gamma"]},
                       {"name": "ema", "alpha": p["ema_alpha"], "normalize": True}, *p["extra_methods"]]
            budgets, arms = training_length.check_budgets(p["budgets"]), training_length.check_arms(p["arms"])
            for arm, budget, step_methods in training_length.plan(budgets, arms, methods):
                for method in step_methods:
                    add(f"{arm}-epochs{budget}", method, budget)
    return list(runs.values())


def _names_overrides(p: dict) -> dict:
    return {key: p[key] for key in ("epochs", "batch_size", "lr", "weight_decay", "model_options")}


def _bag_overrides(p: dict) -> dict:
    return {**(p.get("bag_training") or {}), "model_options": p.get("bag_options") or {}}


def study_steps(profile: str) -> dict[str, list]:
    _, steps = load_profile(profile)
    by_study = {}
    for step in steps:
        if step.study:
            by_study.setdefault(step.study, []).append(step)
    return by_study


# --- timing one run ------------------------------------------------------------------------------


def synthetic_cifar10(device: torch.device, sizes: dict, seed: int = 0) -> ImageData:
    """Random uint8 images of CIFAR-10's shape and balanced labels: for timing only (nothing to learn)."""
    generator = torch.Generator().manual_seed(seed)
    images = {split: torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
              for split, count in sizes.items()}
    targets = {split: torch.arange(count) % 10 for split, count in sizes.items()}
    floats = images["train"].float().div(255)
    return ImageData(name="cifar10-synthetic", classes=[f"class{c}" for c in range(10)],
                     images={k: v.to(device) for k, v in images.items()},
                     targets={k: v.to(device) for k, v in targets.items()},
                     mean=floats.mean(dim=(0, 2, 3)).to(device), std=floats.std(dim=(0, 2, 3)).to(device),
                     augment=dict(IMAGE_READERS["cifar10"].augment), source_checksums={"synthetic": "none"})


def real_cifar10_present(data_dir: str | Path | None) -> bool:
    from lbw_utils.config import data_dir as resolve

    folder = resolve(data_dir) / CIFAR10_FOLDER
    return all((folder / name).exists() for name in CIFAR10_MD5)


def time_run(settings: Settings, data, probe_epochs: int) -> dict:
    """Train the baseline of ``settings`` for ``probe_epochs`` epochs; its epoch times."""
    config = TrainConfig.from_dict({**settings.train.to_dict(), "epochs": probe_epochs, "track_train_tpr": False})
    seed_everything(0)
    model = make_model(settings.model.name, num_classes=data.num_classes,
                       input_shape=getattr(data, "input_shape", None), size=settings.model.size,
                       **settings.model.options)
    common.synchronize(data.device)
    history = fit(model, data, config=config, seed=0, progress=False)
    common.synchronize(data.device)
    seconds = history.epoch_seconds
    later = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    return {"probe_epochs": probe_epochs, "first_epoch_s": seconds[0], "later_epoch_s": later,
            "epoch_seconds": seconds, "train_examples": data.size("train"), "batch_size": config.batch_size,
            "model": f"{settings.model.name}/{settings.model.size}", "amp": config.amp, "compile": config.compile,
            "autocast": autocast_precision(data.device, config.amp)}


def study_settings(step, device: str, tiny: bool, compile_model: bool, results_dir: str, model_config=None):
    p = step_parameters(step)
    p.update({"device": device, "seeds": [0], "results_dir": results_dir, "compile": compile_model})
    if step.notebook == "05_name_nationality_rnn":
        if tiny:
            p.update(TINY_NAMES)
        config = model_config or p["model_config"]
        # as notebook 05 does: the profile's overrides shape its own model; the author's row keeps its own settings,
        # the bag family takes bag_options and bag_training
        overrides = (_names_overrides(p) if config == p["model_config"]
                     else _bag_overrides(p) if config == "ngram-bag" else None)
        return Settings.from_params({**p, "dataset": "names",
                                     **name_model_parameters(config, overrides, p["classes"])})
    if tiny:
        p.update(TINY_SIZES)
    if "epochs" not in p:  # notebook 07 names budgets, not epochs
        p["epochs"] = max(p["budgets"])
    return Settings.from_params(p)


def study_data(settings: Settings, tiny: bool, data_dir):
    if settings.data.dataset == "cifar10" and not real_cifar10_present(settings.data.data_dir or data_dir):
        val = settings.data.val_size if isinstance(settings.data.val_size, int) else DEFAULT_VAL_SIZE
        sizes = TINY_SHAPE if tiny else {"train": 50_000 - val, "val": val, "test": 10_000}
        return synthetic_cifar10(torch.device(settings.data.device), sizes), "synthetic CIFAR-10 shape (timing only)"
    data = load_data(settings.data, 0)
    return data, ("real" if settings.data.dataset != "cifar10" else "real CIFAR-10")


def estimate_study(study: str, steps, device: str, args) -> dict:
    runs = planned_runs(steps)
    seeds = len(step_parameters(steps[0])["seeds"])
    main_step = next(s for s in steps if s.notebook not in ("02_tpr_analysis", "06_paper_figures"))
    with tempfile.TemporaryDirectory() as scratch:
        probes, source = {}, None
        for probe in sorted({run["probe"] for run in runs}):
            settings = study_settings(main_step, device, args.tiny, args.compile, scratch,
                                      model_config={"author": "author", "bag": "ngram-bag"}.get(probe))
            data, source = study_data(settings, args.tiny, args.data_dir)
            probes[probe] = time_run(settings, data, args.probe_epochs)
            print(f"  {study}: {probe} run, {probes[probe]['later_epoch_s']:.2f} s per epoch "
                  f"(first {probes[probe]['first_epoch_s']:.2f} s)", flush=True)
    seconds = sum(probes[r["probe"]]["first_epoch_s"] + (r["epochs"] - 1) * probes[r["probe"]]["later_epoch_s"]
                  for r in runs) * seeds
    return {"study": study, "notebooks": [s.notebook for s in steps], "data": source, "seeds": seeds,
            "runs_per_seed": len(runs), "runs": len(runs) * seeds, "epochs": sum(r["epochs"] for r in runs) * seeds,
            "probes": probes, "estimated_seconds": seconds,
            "estimated_seconds_per_run": seconds / max(1, len(runs) * seeds)}


# --- the CIFAR-10 time-to-94 % recipe -------------------------------------------------------------


def measure_recipe(device: torch.device, args) -> dict:
    from time_to_accuracy import RECIPES, ladder, ours_run

    recipe = dict(RECIPES["gpu"])
    real = not args.tiny and real_cifar10_present(args.data_dir)
    if real:
        from lbw_utils.data.images import load_image_dataset

        data = load_image_dataset("cifar10", data_dir=args.data_dir, val_size=DEFAULT_VAL_SIZE, seed=0,
                                  device=device, download=False)
    else:
        data = synthetic_cifar10(device, TINY_SHAPE if args.tiny else CIFAR10_SHAPE)
    if args.tiny:
        recipe.update(model_size="tiny", batch_size=32)
    budgets = [int(b) for b in (args.budgets or recipe["budgets"]).split(",")] if real else [args.synthetic_epochs]
    target = recipe["target"] if real else 2.0  # synthetic: never reached, every epoch is timed
    run_args = SimpleNamespace(seed=0, compile=args.compile, target=target)
    result = ladder(lambda budget: ours_run(data, budget, run_args, recipe), budgets, target)
    epochs = result["attempts"][-1]["epochs"]  # the last planned budget's run (each attempt restarts the clock)
    steps = [e["train_seconds"] - previous["train_seconds"] for previous, e in zip([{"train_seconds": 0.0}] + epochs,
                                                                                 epochs)]
    return {"data": "real CIFAR-10" if real else "synthetic CIFAR-10 shape (timing only; accuracy meaningless)",
            "recipe": recipe, "budgets": budgets, "target": recipe["target"], "reached": result["reached"] if real
            else None, "seconds_to_target": result.get("seconds_to_target") if real else None,
            "epochs_to_target": result.get("epochs_to_target") if real else None,
            "first_epoch_s": steps[0], "later_epoch_s": statistics.median(steps[1:]) if len(steps) > 1 else steps[0],
            "autocast": autocast_precision(device, True), "attempts": result["attempts"]}


# --- main -------------------------------------------------------------------------------------------


def choose_device(args) -> torch.device | None:
    """CUDA, or the CPU for ``--tiny``; None when CUDA was asked for (or auto) and none is present."""
    if args.device == "cpu":
        if not args.tiny:
            raise SystemExit("gpu-check: --device cpu measures nothing the gpu profile needs; add --tiny to check "
                             "the script at toy sizes (allowed: --device auto|cuda|cuda:N, or cpu with --tiny)")
        return torch.device("cpu")
    if args.device != "auto" and not str(args.device).startswith("cuda"):
        raise SystemExit(f"gpu-check: --device {args.device!r} is not allowed; choose auto, cuda, cuda:N, "
                         "or cpu with --tiny")
    if not torch.cuda.is_available():
        return None
    return torch.device("cuda" if args.device == "auto" else args.device)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--profile", default="gpu", help="profile whose studies are estimated (default gpu)")
    p.add_argument("--tiny", action="store_true",
                   help="toy sizes (tiny CNN, small subsets, 1 epoch): checks the script, measures nothing")
    p.add_argument("--probe-epochs", type=int, default=3, help="epochs of each study's timed baseline run")
    p.add_argument("--budgets", default=None, help="the recipe's planned budgets, e.g. 10,15,20 (real CIFAR-10)")
    p.add_argument("--synthetic-epochs", type=int, default=3, help="epochs of the recipe on synthetic data")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (compile=True)")
    args = p.parse_args(argv)
    args.tiny = args.tiny or args.quick
    if args.tiny:
        args.probe_epochs, args.synthetic_epochs = min(args.probe_epochs, 2), min(args.synthetic_epochs, 2)
    for name in ("probe_epochs", "synthetic_epochs"):
        if getattr(args, name) < 1:
            raise SystemExit(f"gpu-check: --{name.replace('_', '-')}={getattr(args, name)} must be at least 1")
    device = choose_device(args)
    if device is None:
        print(NO_CUDA, flush=True)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir:
        import os

        os.environ["LBW_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    started = time.perf_counter()
    label = (f"TINY CHECK of the script on {device.type} (toy sizes): not timings of the gpu profile"
             if args.tiny else f"{common.environment(device).get('gpu', device)}")
    print(f"gpu-check: {label}", flush=True)
    print("CIFAR-10 recipe ...", flush=True)
    recipe = measure_recipe(device, args)
    studies = []
    for study, steps in study_steps(args.profile).items():
        print(f"study {study} ...", flush=True)
        studies.append(estimate_study(study, steps, str(device), args))
    total = sum(s["estimated_seconds"] for s in studies)
    recipe_row = {"data": recipe["data"], "precision": recipe["autocast"] or "float32",
                  "first epoch s": recipe["first_epoch_s"], "s/epoch": recipe["later_epoch_s"],
                  "reached 94 %": recipe["reached"], "epochs to 94 %": recipe["epochs_to_target"],
                  "train s to 94 %": recipe["seconds_to_target"]}
    study_rows = [{"study": s["study"], "data": s["data"], "runs (all seeds)": s["runs"],
                   "epochs (all runs)": s["epochs"],
                   "s/epoch (timed)": s["probes"]["main"]["later_epoch_s"],
                   "est. s per run": s["estimated_seconds_per_run"],
                   "est. min (extrapolated)": s["estimated_seconds"] / 60} for s in studies]
    study_rows.append({"study": "whole profile", "runs (all seeds)": sum(s["runs"] for s in studies),
                       "epochs (all runs)": sum(s["epochs"] for s in studies),
                       "est. min (extrapolated)": total / 60})
    prefix = "TINY CHECK, not timings: " if args.tiny else ""
    tables = {
        f"{prefix}CIFAR-10 time-to-94 % recipe ({label})": common.markdown_table([recipe_row]),
        f"{prefix}`{args.profile}` profile per study: one baseline run timed for {args.probe_epochs} epoch(s), "
        "extrapolated to every trained run and seed (notebook overhead, post-hoc and yardstick fits left out)":
            common.markdown_table(study_rows),
    }
    name = f"gpu_check_tiny_{device.type}" if args.tiny else "gpu_check"
    common.write_outputs(args.out, name, {
        "environment": common.environment(device), "tiny": args.tiny, "profile": args.profile,
        "recipe": recipe, "studies": studies, "estimated_profile_seconds": total,
        "estimate_method": "per study: one baseline run timed for probe_epochs epochs; each trained run costs the "
                           "first epoch plus its remaining epochs at the later epochs' median; times seeds",
        "check_seconds": time.perf_counter() - started,
    }, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
