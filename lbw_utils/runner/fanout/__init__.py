"""Fan a study out over processes, the GPUs of one machine, or a cluster; merge from the run records.

A study is a set of independent, idempotent runs, (dataset, method, seed) -> one
run record. Within one seed the methods depend on each other (static weights
read the baseline's validation TPRs, post-hoc offsets its logits), across seeds
and studies nothing does. So a **shard** is one study of a profile for some
seeds (default: one seed), and it runs that study's notebooks in order with
``seeds`` replaced, into its own folder::

    results/<profile>/shards/<study>-seed<k>/   records/, artifacts/, notebooks/, summary.md, shard.json

No two shards write the same file. ``merge`` copies every shard's records and
artifacts into ``results/<profile>/`` and then runs the whole profile there,
sequentially: every run is found finished and read back (its fingerprint
checked), so only the notebooks' analysis, figures, tables and ``summary.md``
are computed, over all seeds; a run a shard did not finish is trained then.

``make reproduce`` uses the same shards on one machine (``reproduce --workers N``, default chosen
from the hardware by :func:`hardware_workers`): :func:`fan_out` runs them through :func:`run_local`
(one one-thread process per worker on the CPU, one process per GPU), echoing their output line by
line, each line prefixed by its shard, merges their records, and the sequential pass that follows
finds every run finished.

The modules, by family: :mod:`.shards` (planning and running one shard), :mod:`.hardware` (how many
workers, on which devices), :mod:`.local` (the local pool and the fan-out), :mod:`.merge`,
:mod:`.slurm` (job arrays through submitit) and :mod:`.cli` (``python -m lbw_utils.runner.fanout``).
"""

from lbw_utils.runner.fanout.shards import (MARKER, SHARDS_FOLDER, Shard, estimated_minutes, find_shard, plan_shards,
                                     profile_folder, run_shard, shard_command, shard_folder, shard_title)
from lbw_utils.runner.fanout.hardware import (MEMORY_PER_CPU_WORKER, cpu_degree, device_env, hardware_workers,
                                       local_devices, usable_cores, workers_for)
from lbw_utils.runner.fanout.local import fan_out, fan_out_line, run_local, share_finished_records
from lbw_utils.runner.fanout.merge import merge, merge_records, unfinished_shards
from lbw_utils.runner.fanout.slurm import make_executor, slurm_parameters, submit
from lbw_utils.runner.fanout.cli import main
