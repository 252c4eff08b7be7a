"""Merge: the shards' records into the profile folder, then the whole profile run there."""

from __future__ import annotations

import time
from pathlib import Path

from lbw_utils import records
from lbw_utils.runner.fanout.shards import MARKER, SHARDS_FOLDER, Shard, plan_shards, profile_folder, shard_folder
from lbw_utils.files import atomic_write_bytes
from lbw_utils.methods import METHODS
from lbw_utils.runner.sequential import run_profile


def unfinished_shards(folder: str | Path, shards: list[Shard]) -> list[str]:
    return [shard.name for shard in shards if not (shard_folder(folder, shard) / MARKER).exists()]


def _chosen_within_shard(record: dict) -> bool:
    """A post-hoc run on top of another method (``of``): notebooks 03 and 04 choose that method on the
    validation split of the seeds they see, so a one-seed shard may choose another one than the whole
    profile does. Such records are not merged; the final pass chooses over every seed and fits them
    again (post-hoc offsets take seconds)."""
    method = record.get("method") or {}
    spec = METHODS.get(method.get("name"))
    return spec is not None and spec.kind.adjusts_a_run and "of" in method


def merge_records(folder: str | Path, shards: list[Shard]) -> dict:
    """Copy the shards' run records (and the artifacts beside them) into ``folder``, except the post-hoc
    combinations each shard chose on its own seeds (``recomputed``, see :func:`_chosen_within_shard`).

    A record already finished in ``folder`` is kept (``kept``); when the shard's copy differs
    from it (another run of the same unit) it is reported under ``differing``. An artifact is
    copied before its record, so a record in ``folder`` always has its artifact.
    """
    folder = Path(folder)
    report = {"copied": [], "kept": [], "differing": [], "recomputed": []}
    for shard in shards:
        source = shard_folder(folder, shard)
        # records/ of the shard, and of studies that keep one results folder per setting
        # (the training-length study: length/<arm>-epochs<E>/records/).
        for record in sorted(source.rglob("records/*/*.json")):
            relative = record.relative_to(source)
            root = record.parents[2]  # the results folder this record belongs to
            target = folder / relative
            if records.is_finished(target):
                report["kept"].append(str(relative))
                if target.read_bytes() != record.read_bytes():
                    report["differing"].append(str(relative))
                continue
            if not records.is_finished(record):
                continue  # a corrupt file in a shard: the final run will redo that unit
            data = records.read_record(record)
            if _chosen_within_shard(data):
                report["recomputed"].append(str(relative))
                continue
            artifact = records.artifact_path(root, data["dataset"], data["method_label"], data["seed"])
            if artifact.exists():
                destination = records.artifact_path(folder / root.relative_to(source), data["dataset"],
                                                    data["method_label"], data["seed"])
                atomic_write_bytes(destination, artifact.read_bytes())
            atomic_write_bytes(target, record.read_bytes())
            report["copied"].append(str(relative))
    return report


def merge(profile: str, results_root: str | Path | None = None, *, seeds_per_shard: int | None = None,
          allow_missing: bool = False, run_notebooks: bool = True, log=print) -> dict:
    """Merge the shards' records into the profile folder, then run the profile there (records reused)."""
    folder = profile_folder(profile, results_root)
    shards = plan_shards(profile, seeds_per_shard=seeds_per_shard)
    missing = unfinished_shards(folder, shards)
    if missing and not allow_missing:
        raise RuntimeError(f"shards {missing} have not finished (no {MARKER} in their folders under "
                           f"{folder / SHARDS_FOLDER}); run them, or merge with --allow-missing to train "
                           "what is missing sequentially during the merge")
    report = merge_records(folder, shards)
    log(f"merged {len(report['copied'])} records ({len(report['kept'])} already there, "
        f"{len(report['differing'])} of those differ from a shard's copy)")
    report["unfinished_shards"] = missing
    if run_notebooks:
        started = time.perf_counter()
        report["summary"] = str(run_profile(profile, results_root, log=log))
        report["notebook_seconds"] = time.perf_counter() - started
    return report
