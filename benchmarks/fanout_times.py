"""A profile run sequentially vs fanned out over local workers, then merged.

    python benchmarks/fanout_times.py --profile smoke --cpu-workers 2
    python benchmarks/fanout_times.py --profile gpu --gpus all          # on a multi-GPU machine

Three timings, each in a fresh folder under ``--scratch``:
1. sequential: ``lbw_utils.runner.reproduce`` (what ``make reproduce`` does);
2. shards: ``python -m lbw_utils.runner.fanout local ... --no-merge`` (one process per device);
3. merge: ``python -m lbw_utils.runner.fanout merge`` (copies the records, then every notebook
   with every run read back).
It also checks that both ways give the same run records (same units, same test accuracy).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import common

from lbw_utils import records


def timed(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as output:
        code = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, cwd=common.REPO_ROOT)
    if code:
        raise SystemExit(f"{' '.join(command)} failed (exit {code}); see {log}")
    return time.perf_counter() - started


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--profile", default="smoke")
    p.add_argument("--cpu-workers", type=int, default=2)
    p.add_argument("--gpus", default=None)
    p.add_argument("--scratch", default=None, help="default <out>/fanout")
    p.add_argument("--skip-sequential", action="store_true")
    args = p.parse_args()
    device = common.setup(args)
    scratch = Path(args.scratch or Path(args.out) / "fanout")
    sequential_root, fan_root = scratch / "sequential", scratch / "fanned"
    for folder in (sequential_root, fan_root):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    python = sys.executable
    rows, name = [], Path(args.profile).stem
    workers = ["--gpus", args.gpus] if args.gpus else ["--cpu-workers", str(args.cpu_workers)]
    if not args.skip_sequential:
        seconds = timed([python, "-m", "lbw_utils.runner.reproduce", "--profile", args.profile, "--results-dir",
                         str(sequential_root)], scratch / "sequential.log")
        rows.append({"way": "sequential (reproduce)", "wall s": seconds})
    shards = timed([python, "-m", "lbw_utils.runner.fanout", "local", "--profile", args.profile, "--results-dir",
                    str(fan_root), "--no-merge", *workers], scratch / "shards.log")
    merge = timed([python, "-m", "lbw_utils.runner.fanout", "merge", "--profile", args.profile, "--results-dir",
                   str(fan_root)], scratch / "merge.log")
    label = f"fan-out, {args.gpus + ' GPUs' if args.gpus else f'{args.cpu_workers} CPU workers'}"
    rows += [{"way": f"{label}: shards", "wall s": shards}, {"way": f"{label}: merge (notebooks, runs reused)",
                                                             "wall s": merge},
             {"way": f"{label}: total", "wall s": shards + merge}]
    fanned = {(r["dataset"], r["method_label"], r["seed"]): r["test"]["accuracy"]
              for r in records.load_records(fan_root / name)}
    check = {"records_fanned": len(fanned)}
    if not args.skip_sequential:
        sequential = {(r["dataset"], r["method_label"], r["seed"]): r["test"]["accuracy"]
                      for r in records.load_records(sequential_root / name)}
        check.update({"records_sequential": len(sequential), "same_units": set(sequential) == set(fanned),
                      "same_test_accuracy": sum(sequential.get(k) == v for k, v in fanned.items())})
    common.write_outputs(args.out, f"fanout_{name}", {"environment": common.environment(device), "rows": rows,
                                                      "check": check},
                         {f"Profile `{name}`: sequential vs fanned out (then merged)": common.markdown_table(rows)
                          + "\n" + ", ".join(f"{k}: {v}" for k, v in check.items()) + "\n"})


if __name__ == "__main__":
    main()
