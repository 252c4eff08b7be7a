"""Every benchmark, one after the other (never two at once: they would time each other).

    python benchmarks/run_all.py                 # what `make benchmark` runs
    python benchmarks/run_all.py --quick         # check that every script works (seconds, numbers meaningless)
    python benchmarks/run_all.py --only throughput,loss_overhead

Each script prints its tables and writes ``<out>/<name>.json`` and ``.md``;
this one also writes ``<out>/summary.md`` with every table. On a CUDA machine
the GPU recipe of the time-to-accuracy benchmark (CIFAR-10 to 94 %) runs too.
Finished studies under ``results/<profile>/`` (from ``make reproduce``) are
collected for the profile wall times and the seeds x methods table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def plan(args, cuda: bool) -> list[tuple[str, list[str]]]:
    studies = [str(p.parent.relative_to(ROOT)) for p in sorted((ROOT / "results").glob("*/summary.md"))
               if p.parent.name != "benchmarks"]
    jobs = [("time_to_accuracy", ["time_to_accuracy.py"])]
    if cuda:
        jobs.append(("time_to_accuracy_gpu", ["time_to_accuracy.py", "--gpu-recipe"]))
    jobs += [("throughput", ["throughput.py"] + (["--compile"] if args.compile else [])),
             ("loss_overhead", ["loss_overhead.py"]),
             ("names_ablation_paper", ["names_ablation.py"])]  # the tuned names model, row by row (~11 min)
    if cuda:
        jobs.append(("throughput_cifar10", ["throughput.py", "--dataset", "cifar10", "--model-size", "large",
                                            "--batch-size", "512", "--lr", "0.2", "--augment", "--skip-names"]))
    scaling = ["scaling.py"]
    if studies:
        scaling += ["--records", studies[0]]
    jobs.append(("scaling", scaling))
    # --quick: only collect finished studies (running the smoke profile takes minutes)
    profiles = ["profile_times.py"] + ([] if args.quick else ["--run", "smoke"])
    for study in studies:
        profiles += ["--collect", study]
    jobs.append(("profile_times", profiles))
    if not args.quick:  # the smoke profile three times over: minutes
        jobs.append(("fanout_smoke", ["fanout_times.py", "--profile", "smoke"]
                     + (["--gpus", "all"] if cuda else ["--cpu-workers", "2"])))
    return jobs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads for every benchmark")
    p.add_argument("--compile", action="store_true", help="throughput: also measure torch.compile")
    p.add_argument("--only", default=None, help="comma-separated subset of the benchmark names")
    args = p.parse_args()
    import torch

    cuda = torch.cuda.is_available() and args.device != "cpu"
    common_args = ["--out", args.out, "--device", args.device]
    if args.data_dir:
        common_args += ["--data-dir", args.data_dir]
    if args.threads:
        common_args += ["--threads", str(args.threads)]
    if args.quick:
        common_args.append("--quick")
    chosen = set(args.only.split(",")) if args.only else None
    failures, timings = [], []
    for name, command in plan(args, cuda):
        if chosen and name not in chosen:
            continue
        print(f"\n=== {name}: {' '.join(command)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / command[0]), *command[1:], *common_args], cwd=ROOT)
        timings.append((name, time.perf_counter() - started, code))
        if code:
            failures.append(name)
    out = Path(args.out)
    suffix = "_quick" if args.quick else ""
    parts = ["# Benchmarks", "", "| benchmark | wall s | exit |", "|---|---|---|"]
    parts += [f"| {name} | {seconds:.0f} | {code} |" for name, seconds, code in timings]
    for name, _, _ in timings:
        stem = name if name in ("profile_times", "fanout_smoke") else name + suffix
        table = out / f"{stem}.md"
        if table.exists():
            parts += ["", f"## {name}", "", table.read_text(encoding="utf-8")]
    (out / f"summary{suffix}.md").write_text("\n".join(parts) + "\n", encoding="utf-8")
    print(f"\nwrote {out / f'summary{suffix}.md'}" + (f"; failed: {failures}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
