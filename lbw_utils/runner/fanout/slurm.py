"""A cluster: one SLURM array task per shard, through submitit (``pip install -e ".[cluster]"``)."""

from __future__ import annotations

import functools
from pathlib import Path

from lbw_utils.config import results_dir as default_results_root
from lbw_utils.runner.fanout.shards import Shard, plan_shards, profile_folder, run_shard


def slurm_parameters(*, timeout_min: int = 120, partition: str | None = None, gpus_per_node: int = 1,
                     cpus_per_task: int = 8, mem_gb: int = 32, array_parallelism: int = 64,
                     account: str | None = None, qos: str | None = None, setup: list[str] | None = None,
                     name: str = "lbw-study") -> dict:
    """Parameters of a submitit ``AutoExecutor`` for one shard per array task."""
    parameters = {"name": name, "timeout_min": timeout_min, "gpus_per_node": gpus_per_node,
                  "cpus_per_task": cpus_per_task, "mem_gb": mem_gb, "nodes": 1, "tasks_per_node": 1,
                  "slurm_array_parallelism": array_parallelism}
    optional = {"slurm_partition": partition, "slurm_account": account, "slurm_qos": qos,
                "slurm_setup": list(setup) if setup else None}
    return {**parameters, **{key: value for key, value in optional.items() if value}}


def make_executor(log_folder: str | Path, parameters: dict, cluster: str | None = None):
    """A submitit executor with ``parameters`` (``cluster``: None auto-detects SLURM; 'local' or 'debug' test)."""
    try:
        import submitit
    except ImportError as error:
        raise ImportError('the slurm fan-out needs submitit: pip install -e ".[cluster]"') from error
    executor = submitit.AutoExecutor(folder=str(log_folder), cluster=cluster)
    executor.update_parameters(**parameters)
    return executor


def submit(profile: str, results_root: str | Path | None, parameters: dict, *, cluster: str | None = None,
           shards: list[Shard] | None = None, seeds_per_shard: int | None = None) -> list:
    """Submit one array task per shard; returns the submitit jobs."""
    shards = shards if shards is not None else plan_shards(profile, seeds_per_shard=seeds_per_shard)
    root = str(Path(results_root or default_results_root()).resolve())
    executor = make_executor(profile_folder(profile, root) / "slurm" / "%j", parameters, cluster)
    names = [shard.name for shard in shards]
    job = functools.partial(run_shard, seeds_per_shard=seeds_per_shard)  # pickled by reference to run_shard
    return executor.map_array(job, [profile] * len(names), names, [root] * len(names))

