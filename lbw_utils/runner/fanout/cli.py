"""Three ways to run the shards, none of them a scheduler of ours:

    python -m lbw_utils.runner.fanout plan  --profile gpu                       # list the shards
    python -m lbw_utils.runner.fanout local --profile gpu --gpus all            # one process per GPU, then merge
    python -m lbw_utils.runner.fanout local --profile cpu --cpu-workers 2       # processes sharing the CPU cores
    python -m lbw_utils.runner.fanout slurm --profile gpu --partition gpu --timeout-min 180 --wait
    python -m lbw_utils.runner.fanout merge --profile gpu

``slurm`` submits a job array through submitit (``pip install -e ".[cluster]"``),
one task per shard, each on one GPU; ``--dry-run`` prints the job parameters
without submitting. Every shard is also runnable by hand (any scheduler's job
script can call it)::

    python -m lbw_utils.runner.fanout run-shard --profile gpu --shard cifar10-seed3

See :mod:`lbw_utils.runner.fanout` for what a shard is and how the merge works.
"""

from __future__ import annotations

import argparse
import json

from lbw_utils.runner.fanout.hardware import local_devices
from lbw_utils.runner.fanout.local import run_local
from lbw_utils.runner.fanout.merge import merge
from lbw_utils.runner.fanout.shards import plan_shards, run_shard
from lbw_utils.runner.fanout.slurm import slurm_parameters, submit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbw_utils.runner.fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("--profile", required=True, help="smoke, cpu, gpu, or a profile YAML file")
        sub.add_argument("--results-dir", default=None, help="results root (default: $LBW_RESULTS_DIR or results/)")
        sub.add_argument("--seeds-per-shard", type=int, default=None,
                         help="seeds a shard trains (default: the study's or the profile's seeds_per_shard, else 1)")
        return sub

    common(commands.add_parser("plan", help="list the shards"))
    shard = common(commands.add_parser("run-shard", help="run one shard (what each worker or job does)"))
    shard.add_argument("--shard", required=True)
    shard.add_argument("--seeds", default=None, help="comma-separated seeds the shards were planned with "
                                                     "(default: the profile's)")
    local = common(commands.add_parser("local", help="one process per device on this machine, then merge"))
    local.add_argument("--gpus", default=None, help="'all' or GPU indices, e.g. 0,1,2,3")
    local.add_argument("--cpu-workers", type=int, default=None, help="CPU processes (cores are split among them)")
    local.add_argument("--no-merge", action="store_true")
    slurm = common(commands.add_parser("slurm", help="a SLURM job array through submitit"))
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--qos", default=None)
    slurm.add_argument("--timeout-min", type=int, default=120)
    slurm.add_argument("--gpus-per-task", type=int, default=1)
    slurm.add_argument("--cpus-per-task", type=int, default=8)
    slurm.add_argument("--mem-gb", type=int, default=32)
    slurm.add_argument("--array-parallelism", type=int, default=64)
    slurm.add_argument("--setup", action="append", default=None, help="shell line run before the job (repeatable)")
    slurm.add_argument("--cluster", default=None, help="submitit cluster: auto-detected; 'local' to try it here")
    slurm.add_argument("--dry-run", action="store_true", help="print the shards and parameters, submit nothing")
    slurm.add_argument("--wait", action="store_true", help="wait for the jobs, then merge")
    merge_parser = common(commands.add_parser("merge", help="copy the shards' records, then run the profile"))
    merge_parser.add_argument("--allow-missing", action="store_true")
    merge_parser.add_argument("--records-only", action="store_true", help="copy records, run no notebook")
    args = parser.parse_args(argv)
    per_shard = args.seeds_per_shard

    if args.command == "plan":
        for item in plan_shards(args.profile, seeds_per_shard=per_shard):
            print(item.name)
        return 0
    if args.command == "run-shard":
        seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
        print(json.dumps(run_shard(args.profile, args.shard, args.results_dir, seeds_per_shard=per_shard,
                                   seeds=seeds)))
        return 0
    if args.command == "local":
        devices, threads = local_devices(args.gpus, args.cpu_workers)
        results = run_local(args.profile, devices, args.results_dir, threads=threads, seeds_per_shard=per_shard)
        failed = [result["shard"] for result in results if result["exit_code"]]
        if failed:
            print(f"failed shards: {failed}; see their log.txt; rerun the same command to resume")
            return 1
        if not args.no_merge:
            merge(args.profile, args.results_dir, seeds_per_shard=per_shard)
        return 0
    if args.command == "slurm":
        parameters = slurm_parameters(timeout_min=args.timeout_min, partition=args.partition,
                                      gpus_per_node=args.gpus_per_task, cpus_per_task=args.cpus_per_task,
                                      mem_gb=args.mem_gb, array_parallelism=args.array_parallelism,
                                      account=args.account, qos=args.qos, setup=args.setup)
        shards = plan_shards(args.profile, seeds_per_shard=per_shard)
        if args.dry_run:
            print(json.dumps({"shards": [s.name for s in shards], "parameters": parameters}, indent=1))
            return 0
        jobs = submit(args.profile, args.results_dir, parameters, cluster=args.cluster, shards=shards,
                      seeds_per_shard=per_shard)
        for item, job in zip(shards, jobs):
            print(f"{item.name}: job {job.job_id}")
        if not args.wait:
            print(f"when they finish: python -m lbw_utils.runner.fanout merge --profile {args.profile}")
            return 0
        for job in jobs:
            job.result()  # raises if a shard failed
        merge(args.profile, args.results_dir, seeds_per_shard=per_shard)
        return 0
    report = merge(args.profile, args.results_dir, seeds_per_shard=per_shard, allow_missing=args.allow_missing,
                   run_notebooks=not args.records_only)
    print(json.dumps({k: v for k, v in report.items() if k not in ("copied", "kept")}, indent=1))
    return 0
