"""Shards: a study of a profile for some seeds, where each one's folder is, and running one."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lbw_utils.checks import check_positive_int
from lbw_utils.files import atomic_write_json
from lbw_utils.runner.profiles import load_profile
from lbw_utils.runner.sequential import SHARDS_FOLDER, profile_folder, run_profile

MARKER = "shard.json"


@dataclass(frozen=True)
class Shard:
    """One study of a profile for some seeds (``None``: the study's notebooks take no seeds)."""

    study: str
    seeds: tuple[int, ...] | None

    @property
    def name(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.study)
        if self.seeds is None:
            return safe
        return f"{safe}-seed{'_'.join(str(seed) for seed in self.seeds)}"


def shard_folder(folder: str | Path, shard: Shard) -> Path:
    return Path(folder) / SHARDS_FOLDER / shard.name


def plan_shards(profile: str, *, seeds_per_shard: int | None = None, studies: list[str] | None = None,
                seeds: list[int] | None = None) -> list[Shard]:
    """The shards of a profile: for every study, its seeds cut into groups of ``seeds_per_shard``.

    ``seeds`` replaces the profile's seeds. ``seeds_per_shard`` None: the study's own ``seeds_per_shard``,
    else the profile's, else 1 (fewer, longer shards start fewer notebook kernels); a number given here
    applies to every study.

    Order: when the profile's studies say ``minutes_per_seed``, the longest shards first (each shard's seeds
    times its study's minutes; a study without an estimate counts 1 minute a seed), so that on a few workers
    the long shards start early and short ones fill the end (longest-processing-time-first scheduling);
    equal estimates keep the seed-major order below. Without estimates: seed-major (every study's first
    seeds, then every study's second, ...), so that partial results cover every study early.
    """
    content, steps = load_profile(profile)
    if seeds_per_shard is not None:
        check_positive_int("seeds_per_shard", seeds_per_shard)
    study_specs = content.get("studies") or {}
    study_seeds: dict[str, list[int] | None] = {}
    for step in steps:
        if not step.study or (studies is not None and step.study not in studies):
            continue
        found = step.parameters.get("seeds")
        current = study_seeds.setdefault(step.study, None)
        if found is not None:
            if current is not None and list(found) != current:
                raise ValueError(f"study {step.study!r} gives its notebooks different seeds ({current} and "
                                 f"{list(found)}); a shard needs one seed list per study")
            study_seeds[step.study] = list(found)
    missing = sorted(set(studies or ()) - set(study_seeds))
    if missing:
        raise ValueError(f"studies {missing} are not in profile {profile!r}; it has {sorted(study_seeds)}")
    per_study: dict[str, list[Shard]] = {}
    for study, own in study_seeds.items():
        chosen = list(seeds) if seeds is not None and own is not None else own
        if chosen is None:
            per_study[study] = [Shard(study, None)]
            continue
        size = seeds_per_shard or study_specs[study].get("seeds_per_shard") or content.get("seeds_per_shard", 1)
        groups = [chosen[i:i + size] for i in range(0, len(chosen), size)]
        per_study[study] = [Shard(study, tuple(group)) for group in groups]
    ordered: list[Shard] = []
    for rank in range(max((len(group) for group in per_study.values()), default=0)):
        ordered += [group[rank] for group in per_study.values() if rank < len(group)]
    estimates = _estimated_minutes(study_specs, ordered)
    if estimates is not None:
        ordered.sort(key=lambda shard: estimates[shard.name], reverse=True)  # stable: ties keep seed-major order
    return ordered


def estimated_minutes(profile: str, shards: list[Shard]) -> dict[str, float] | None:
    """Each shard's estimated minutes (its seeds times its study's ``minutes_per_seed``; 1 minute a seed for a
    study without one), or None when no study of the profile gives an estimate."""
    content, _ = load_profile(profile)
    return _estimated_minutes(content.get("studies") or {}, shards)


def _estimated_minutes(study_specs: dict, shards: list[Shard]) -> dict[str, float] | None:
    if not any("minutes_per_seed" in study_specs.get(shard.study, {}) for shard in shards):
        return None
    return {shard.name: len(shard.seeds or (None,)) * study_specs[shard.study].get("minutes_per_seed", 1.0)
            for shard in shards}


def find_shard(profile: str, name: str, **plan_options) -> Shard:
    shards = plan_shards(profile, **plan_options)
    for shard in shards:
        if shard.name == name:
            return shard
    raise ValueError(f"no shard {name!r} in profile {profile!r}; the shards are {[s.name for s in shards]}")


def run_shard(profile: str, shard_name: str, results_root: str | Path | None = None, *,
              seeds_per_shard: int | None = None,
              seeds: list[int] | None = None, log=print) -> dict:
    """Run one shard into its own folder and write its ``shard.json`` marker; resumable like any study.

    ``seeds`` replaces the profile's seeds when the shards were planned with other seeds.
    This is the function a cluster job calls (submitit pickles it by reference).
    """
    shard = find_shard(profile, shard_name, seeds_per_shard=seeds_per_shard, seeds=seeds)
    folder = shard_folder(profile_folder(profile, results_root), shard)
    started = time.perf_counter()
    run_profile(profile, log=log, studies=[shard.study], seeds=None if shard.seeds is None else list(shard.seeds),
                final=False, folder=folder, shard=shard_title(shard))
    result = {"shard": shard.name, "study": shard.study, "seeds": shard.seeds, "profile": profile,
              "seconds": time.perf_counter() - started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "host": os.uname().nodename, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "folder": str(folder)}
    atomic_write_json(folder / MARKER, result)
    return result


def shard_title(shard: Shard, shards: list[Shard] | None = None) -> str:
    """``shard 'fashion_mnist-seed1'``, or with the shards of the fan-out ``shard 2/3 'fashion_mnist-seed1'``:
    how output lines name a shard (never as "the profile")."""
    rank = f" {shards.index(shard) + 1}/{len(shards)}" if shards is not None else ""
    return f"shard{rank} {shard.name!r}"


def shard_command(profile: str, shard: Shard, results_root: str | Path | None = None, *,
                  seeds_per_shard: int | None = None, seeds: list[int] | None = None,
                  python: str | None = None) -> list[str]:
    command = [python or sys.executable, "-m", "lbw_utils.runner.fanout", "run-shard", "--profile", str(profile),
               "--shard", shard.name]
    if results_root is not None:
        command += ["--results-dir", str(results_root)]
    if seeds_per_shard is not None:
        command += ["--seeds-per-shard", str(seeds_per_shard)]
    if seeds is not None:
        command += ["--seeds", ",".join(str(seed) for seed in seeds)]
    return command
