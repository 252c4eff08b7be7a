"""Wall time of the study profiles, per notebook step, and where it goes (per method, per seed).

    python benchmarks/profile_times.py --run smoke              # run a profile into a scratch folder, timed
    python benchmarks/profile_times.py --collect results/cpu    # read a finished `make reproduce` run

``--run`` executes the profile with ``lbw_utils.runner.reproduce`` into a fresh
results folder (``<--scratch>/<profile name>``, default
``results/benchmarks/profiles/<name>``, emptied first), so nothing is reused and the time is the full cost.
``--collect`` reads ``summary.md`` (per-step wall time, total) and every run
record (``train_seconds``, ``wall_seconds``) of a finished study; the gap
between the steps' sum and the runs' sum is notebook overhead (kernel start,
data loading, figures). The gpu profile needs a CUDA machine: run it there and
collect it the same way.
"""

from __future__ import annotations

import re
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path

import common

STEP_LINE = re.compile(r"^\| \[(?P<step>[^\]]+)\]\([^)]*\) \| (?P<params>.*) \| (?P<seconds>[0-9.]+) s \|$")
TOTAL_LINE = re.compile(r"total wall time (?P<minutes>[0-9.]+) min")


def parse_summary(path: Path) -> dict:
    steps, total = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = STEP_LINE.match(line.strip())
        if match:
            steps.append({"step": match["step"], "seconds": float(match["seconds"])})
        total_match = TOTAL_LINE.search(line)
        if total_match:
            total = float(total_match["minutes"]) * 60
    return {"steps": steps, "total_seconds": total}


def collect(folder: Path) -> dict:
    from lbw_utils import records
    from lbw_utils.studies import training_length

    summary_path = folder / "summary.md"
    summary = parse_summary(summary_path) if summary_path.exists() else {"steps": [], "total_seconds": None}
    # The training-length study keeps one results folder per (arm, budget): its runs are named with both.
    ladder = [{**r, "method_label": f"{r['method_label']} ({r['arm']}, {r['budget']} epochs)"}
              for r in training_length.load_ladder(folder)]
    runs = records.load_records(folder) + ladder
    by_method, by_seed, by_dataset = defaultdict(list), defaultdict(float), defaultdict(float)
    for record in runs:
        key = (record["dataset"], record["method_label"])
        by_method[key].append(record)
        by_seed[(record["dataset"], record["seed"])] += record["wall_seconds"]
        by_dataset[record["dataset"]] += record["wall_seconds"]
    method_rows = [{"dataset": d, "method": m, "runs": len(rs),
                    "train s (mean)": statistics.mean(r["train_seconds"] for r in rs),
                    "train s (median)": statistics.median(r["train_seconds"] for r in rs),
                    "run wall s (mean)": statistics.mean(r["wall_seconds"] for r in rs),
                    "test acc (mean)": statistics.mean(r["test"]["accuracy"] for r in rs)}
                   for (d, m), rs in sorted(by_method.items())]
    seed_rows = [{"dataset": d, "seed": s, "runs' wall s": t} for (d, s), t in sorted(by_seed.items())]
    seed_totals = defaultdict(float)
    for (_, seed), seconds in by_seed.items():
        seed_totals[seed] += seconds
    run_total = sum(r["wall_seconds"] for r in runs)
    return {"folder": str(folder), "summary": summary, "runs": len(runs), "runs_wall_seconds": run_total,
            "notebook_overhead_seconds": (summary["total_seconds"] - run_total) if summary["total_seconds"] else None,
            "by_method": method_rows, "by_seed": seed_rows, "by_dataset": dict(by_dataset),
            "seed_totals": dict(sorted(seed_totals.items()))}


def run_profile(profile: str, scratch: Path, name: str) -> dict:
    from lbw_utils.runner.reproduce import reproduce

    if (scratch / name).exists():
        shutil.rmtree(scratch / name)
    started = time.perf_counter()
    summary = reproduce(profile, scratch, log=lambda message: print(message, flush=True))
    seconds = time.perf_counter() - started
    result = collect(summary.parent)
    result["measured_total_seconds"] = seconds
    return result


def tables_for(name: str, result: dict) -> dict:
    total = result["summary"]["total_seconds"]
    head = (f"Profile `{name}`: total {total / 60:.1f} min" if total else f"Profile `{name}`") + \
           f", {result['runs']} run records, runs' own wall time {result['runs_wall_seconds'] / 60:.1f} min"
    return {
        head + " (per notebook step)": common.markdown_table(result["summary"]["steps"]),
        f"Profile `{name}`: per method (mean over seeds)": common.markdown_table(result["by_method"]),
        f"Profile `{name}`: per seed": common.markdown_table(result["by_seed"]),
    }


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--run", action="append", default=[], help="profile name or YAML to execute (repeatable)")
    p.add_argument("--collect", action="append", default=[], help="finished results folder to read (repeatable)")
    p.add_argument("--scratch", default=None, help="results root for --run (default <out>/profiles)")
    args = p.parse_args()
    device = common.setup(args)
    if not args.run and not args.collect and not args.quick:  # --quick alone: nothing to run or read
        args.run = ["smoke"]
    results, tables = {}, {}
    for profile in args.run:
        scratch = Path(args.scratch or Path(args.out) / "profiles")  # the run goes to <scratch>/<profile name>
        name = Path(profile).stem
        result = run_profile(profile, scratch, name)
        results[f"run:{name}"] = result
        tables.update(tables_for(f"{name} (run now, fresh folder)", result))
    for folder in args.collect:
        folder = Path(folder)
        result = collect(folder)
        results[f"collect:{folder.name}"] = result
        tables.update(tables_for(f"{folder.name} (collected from {folder})", result))
    common.write_outputs(args.out, "profile_times", {"environment": common.environment(device), "profiles": results},
                         tables)


if __name__ == "__main__":
    main()
