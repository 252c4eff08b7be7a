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

Three ways to run the shards, none of them a scheduler of ours:

    python -m lbw_utils.fanout plan  --profile gpu                       # list the shards
    python -m lbw_utils.fanout local --profile gpu --gpus all            # one process per GPU, then merge
    python -m lbw_utils.fanout local --profile cpu --cpu-workers 2       # processes sharing the CPU cores
    python -m lbw_utils.fanout slurm --profile gpu --partition gpu --timeout-min 180 --wait
    python -m lbw_utils.fanout merge --profile gpu

``slurm`` submits a job array through submitit (``pip install -e ".[cluster]"``),
one task per shard, each on one GPU; ``--dry-run`` prints the job parameters
without submitting. Every shard is also runnable by hand (any scheduler's job
script can call it)::

    python -m lbw_utils.fanout run-shard --profile gpu --shard cifar10-seed3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lbw_utils import records
from lbw_utils.checks import check_positive_int
from lbw_utils.config import results_dir as default_results_root
from lbw_utils.files import atomic_write_bytes, atomic_write_json
from lbw_utils.profiles import load_profile, profile_path

SHARDS_FOLDER = "shards"
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


def profile_folder(profile: str, results_root: str | Path | None = None) -> Path:
    """Where ``make reproduce`` puts a profile's results: ``<results root>/<profile name>``."""
    return Path(results_root or default_results_root()) / profile_path(profile).stem


def shard_folder(folder: str | Path, shard: Shard) -> Path:
    return Path(folder) / SHARDS_FOLDER / shard.name


def plan_shards(profile: str, *, seeds_per_shard: int = 1, studies: list[str] | None = None,
                seeds: list[int] | None = None) -> list[Shard]:
    """The shards of a profile: for every study, its seeds cut into groups of ``seeds_per_shard``.

    Ordered seed-major (every study's first seed, then every study's second, ...), so that
    partial results cover every study early. ``seeds`` replaces the profile's seeds.
    """
    check_positive_int("seeds_per_shard", seeds_per_shard)
    _, steps = load_profile(profile)
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
        groups = [chosen[i:i + seeds_per_shard] for i in range(0, len(chosen), seeds_per_shard)]
        per_study[study] = [Shard(study, tuple(group)) for group in groups]
    ordered: list[Shard] = []
    for rank in range(max((len(group) for group in per_study.values()), default=0)):
        ordered += [group[rank] for group in per_study.values() if rank < len(group)]
    return ordered


def find_shard(profile: str, name: str, **plan_options) -> Shard:
    shards = plan_shards(profile, **plan_options)
    for shard in shards:
        if shard.name == name:
            return shard
    raise ValueError(f"no shard {name!r} in profile {profile!r}; the shards are {[s.name for s in shards]}")


def run_shard(profile: str, shard_name: str, results_root: str | Path | None = None, *, seeds_per_shard: int = 1,
              seeds: list[int] | None = None, log=print) -> dict:
    """Run one shard into its own folder and write its ``shard.json`` marker; resumable like any study.

    ``seeds`` replaces the profile's seeds when the shards were planned with other seeds.
    This is the function a cluster job calls (submitit pickles it by reference).
    """
    from lbw_utils.reproduce import reproduce

    shard = find_shard(profile, shard_name, seeds_per_shard=seeds_per_shard, seeds=seeds)
    folder = shard_folder(profile_folder(profile, results_root), shard)
    started = time.perf_counter()
    reproduce(profile, log=log, studies=[shard.study], seeds=None if shard.seeds is None else list(shard.seeds),
              final=False, folder=folder)
    result = {"shard": shard.name, "study": shard.study, "seeds": shard.seeds, "profile": profile,
              "seconds": time.perf_counter() - started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "host": os.uname().nodename, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "folder": str(folder)}
    atomic_write_json(folder / MARKER, result)
    return result


# --- one machine: one process per device ------------------------------------------------------


def shard_command(profile: str, shard: Shard, results_root: str | Path | None = None, *,
                  seeds_per_shard: int = 1, seeds: list[int] | None = None, python: str | None = None) -> list[str]:
    command = [python or sys.executable, "-m", "lbw_utils.fanout", "run-shard", "--profile", str(profile),
               "--shard", shard.name]
    if results_root is not None:
        command += ["--results-dir", str(results_root)]
    if seeds_per_shard != 1:
        command += ["--seeds-per-shard", str(seeds_per_shard)]
    if seeds is not None:
        command += ["--seeds", ",".join(str(seed) for seed in seeds)]
    return command


def device_env(device: str, threads: int | None = None) -> dict[str, str]:
    """Environment for a worker pinned to ``device``: a GPU index (``0``, ``cuda:1``) or ``cpu``."""
    env: dict[str, str] = {}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        index = device.split(":", 1)[1] if device.startswith("cuda:") else device
        if not index.isdigit():
            raise ValueError(f"device {device!r} is neither 'cpu' nor a GPU index such as 0 or cuda:1")
        env["CUDA_VISIBLE_DEVICES"] = index  # the shard sees one GPU, as cuda:0
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def local_devices(gpus: str | None = None, cpu_workers: int | None = None) -> tuple[list[str], int | None]:
    """The worker devices and threads per worker: ``gpus`` 'all' or '0,2,3'; else ``cpu_workers`` on the CPU."""
    if gpus:
        if gpus == "all":
            import torch

            count = torch.cuda.device_count()
            if count == 0:
                raise ValueError("--gpus all: no CUDA device is visible")
            return [str(index) for index in range(count)], None
        return [part.strip() for part in gpus.split(",") if part.strip()], None
    workers = cpu_workers or 1
    return ["cpu"] * workers, max(1, usable_cores() // workers)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# What one CPU worker may hold at once (a run-shard process and its notebook kernel, torch, a dataset in
# memory): the auto choice runs no more CPU workers than the machine's memory holds at this much each.
MEMORY_PER_CPU_WORKER = 2 * 1024 ** 3


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _trains_on_gpus(device: str) -> bool:
    """Whether a study with this ``device`` parameter trains on the GPUs that one worker per GPU can pin.

    'cuda' and 'auto' do when a GPU is visible; a named GPU ('cuda:1') is one device, for one process."""
    return device in ("auto", "cuda") and _cuda_devices() > 0


def hardware_workers(device: str = "auto", shards: int | None = None) -> tuple[list[str], int | None]:
    """The workers ``reproduce --workers auto`` runs (devices, torch threads per worker); one: run sequentially.

    One process per GPU when the studies train on CUDA (``device`` 'cuda' or 'auto') and several GPUs are
    visible, each with an equal share of the CPU cores; one GPU: one process, as before. On the CPU
    one-thread processes, one per usable core (:func:`cpu_degree`: a few more when that spares a last
    round with idle cores), at most one per :data:`MEMORY_PER_CPU_WORKER` of memory. Never more workers
    than ``shards``.
    """
    if _trains_on_gpus(device):
        count = min(_cuda_devices(), shards) if shards else _cuda_devices()
    elif device in ("cpu", "auto"):
        memory = _memory_bytes()
        cap = max(1, memory // MEMORY_PER_CPU_WORKER) if memory else 2 * usable_cores()
        count = cpu_degree(shards or usable_cores(), usable_cores(), cap)
    else:  # a named GPU, mps, or 'cuda' without one: one process, as before
        count = 1
    return ([device], None) if count <= 1 else workers_for(count, device)


def cpu_degree(shards: int, cores: int, cap: int | None = None) -> int:
    """How many one-thread processes train ``shards`` shards soonest on ``cores`` cores, if shards took
    equal time and processes beyond the cores shared them: ``ceil(shards / n)`` rounds of
    ``max(n, cores) / cores`` each; at most ``2 * cores``, ``shards`` and ``cap``; the fewest on a tie.

    Mostly one per core; but 3 shards on 2 cores get 3 processes (one round at 1.5x) rather than 2 (a
    second round of one shard, with a core idle). One core: one process (the sequential path).
    """
    limit = max(1, min(shards, 2 * cores, cap if cap is not None else shards))
    return min(range(1, limit + 1), key=lambda n: (math.ceil(shards / n) * max(n, cores) / cores, n))


def workers_for(count: int, device: str = "auto") -> tuple[list[str], int | None]:
    """``count`` workers for studies on ``device``: GPUs in turn where they train on GPUs (each worker with
    ``cores // count`` torch threads), else CPU processes of **one** torch thread each, whatever ``count`` is:
    the metrics of a CPU run depend on its thread count, so a run trains with one thread at any degree."""
    check_positive_int("workers", count)
    if count > 1 and device not in ("cpu", "auto") and not _trains_on_gpus(device):
        raise ValueError(f"the studies train on {device!r}, which one process uses: run them with one worker")
    if _trains_on_gpus(device):
        gpus = _cuda_devices()
        return [str(index % gpus) for index in range(count)], max(1, usable_cores() // count)
    return ["cpu"] * count, 1


def run_local(profile: str, devices: list[str], results_root: str | Path | None = None, *,
              shards: list[Shard] | None = None, threads: int | None = None, seeds_per_shard: int = 1,
              command_for=shard_command, log=print, lines=None, after=None) -> list[dict]:
    """Run the shards as subprocesses, at most one per device at a time; a free device takes the next shard.

    Each shard's output goes to ``<its folder>/log.txt``; with ``lines`` (a callable ``(shard, line)``) it is
    also handed on as it comes, one whole line at a time. ``after`` is called with each shard's result as it
    finishes. ``log``, ``lines`` and ``after`` are never called from two workers at once. Returns one dict
    per shard with its exit code, in the shards' order.
    """
    if not devices:
        raise ValueError("run_local needs at least one device")
    shards = shards if shards is not None else plan_shards(profile, seeds_per_shard=seeds_per_shard)
    folder = profile_folder(profile, results_root)
    free_devices: queue.SimpleQueue[str] = queue.SimpleQueue()
    for device in devices:
        free_devices.put(device)
    lock = threading.RLock()  # one message at a time from the workers' threads: whole lines, never mixed
    finished = []

    def say(message: str) -> None:
        with lock:
            log(message)

    def run_one(shard: Shard) -> dict:
        # As many threads as devices, so a device is always free when a thread asks for one.
        device = free_devices.get()
        try:
            target = shard_folder(folder, shard)
            target.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **device_env(device, threads)}
            command = command_for(profile, shard, results_root, seeds_per_shard=seeds_per_shard)
            say(f"[{device}] start {shard.name}")
            started = time.perf_counter()
            with open(target / "log.txt", "w", encoding="utf-8") as output:
                if lines is None:
                    code = subprocess.call(command, env=env, stdout=output, stderr=subprocess.STDOUT)
                else:
                    code = _stream(command, {**env, "PYTHONUNBUFFERED": "1"}, output,
                                   lambda line: _locked(lock, lines, shard, line))
            seconds = time.perf_counter() - started
            result = {"shard": shard.name, "device": device, "exit_code": code, "seconds": seconds,
                      "log": str(target / "log.txt")}
            with lock:
                finished.append(shard.name)
                log(f"[{device}] {'done' if code == 0 else f'FAILED (exit {code})'} {shard.name} in {seconds:.1f} s "
                    f"({len(finished)} of {len(shards)} shards finished)")
                if after is not None:
                    after(result)
            return result
        finally:
            free_devices.put(device)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        return list(pool.map(run_one, shards))  # in the shards' order


def _locked(lock, handler, *arguments) -> None:
    with lock:
        handler(*arguments)


def _stream(command: list[str], env: dict, output, handle_line) -> int:
    """Run ``command``; each line it prints goes to ``output`` and to ``handle_line``; its exit code."""
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          encoding="utf-8", errors="replace") as process:
        for line in process.stdout:
            output.write(line)
            output.flush()
            handle_line(line.rstrip("\n"))
        return process.wait()


def fan_out(profile: str, results_root: str | Path | None = None, *, devices: list[str], threads: int | None,
            studies: list[str] | None = None, seeds: list[int] | None = None, log=print) -> dict:
    """Train a profile's shards in parallel on this machine and merge their records into the profile folder.

    What ``reproduce --workers N`` does before its sequential pass (which then finds every run finished).
    The profile folder's finished records are first shared with the shards (:func:`share_finished_records`),
    so nothing finished is trained again. Every line a shard prints is echoed as it comes, prefixed by
    ``[<shard>]``; after each shard an overall line. Raises when a shard fails (its ``log.txt`` says why;
    running the same command again resumes). Returns the shards, the runs they trained
    (``"dataset / method / seed k"`` each), the runs they read back, the seconds, and the merge report.
    """
    from lbw_utils.experiments import DONE_TAG, REUSED_TAG
    from lbw_utils.reproduce import _minutes, run_identity

    folder = profile_folder(profile, results_root)
    shards = plan_shards(profile, studies=studies, seeds=seeds)
    shared = share_finished_records(folder, shards)
    where = f"{len(set(devices))} GPU(s)" if devices[0] != "cpu" else "the CPU"
    log(f"==> fan-out: {len(shards)} shards (a study for one seed each) over {len(devices)} worker processes on "
        f"{where}, {threads or 'default'} torch thread{'s' if threads != 1 else ''} each; their folders: "
        f"{folder / SHARDS_FOLDER}"
        + (f"; {len(shared)} finished records shared with them" if shared else ""))
    started = time.perf_counter()
    trained: list[str] = []
    reused = [0]

    def line(shard: Shard, text: str) -> None:
        log(f"[{shard.name}] {text}")
        stripped = text.strip()
        if stripped.startswith(DONE_TAG):
            trained.append(run_identity(stripped))
        elif stripped.startswith(REUSED_TAG):
            reused[0] += 1

    def after(result: dict) -> None:
        log(f"[fan-out] {len(trained)} runs trained, {reused[0]} reused so far | elapsed "
            f"{_minutes(time.perf_counter() - started)}")

    command_for = shard_command if seeds is None else (
        lambda *arguments, **options: shard_command(*arguments, **options, seeds=seeds))
    results = run_local(profile, devices, results_root, shards=shards, threads=threads, command_for=command_for,
                        log=log, lines=line, after=after)
    failed = [result["shard"] for result in results if result["exit_code"]]
    if failed:
        raise RuntimeError(f"shards {failed} failed; see their log.txt under {folder / SHARDS_FOLDER}; run the same "
                           "command again to resume (finished runs are kept)")
    report = merge_records(folder, shards)
    seconds = time.perf_counter() - started
    differing = f", {len(report['differing'])} of them differ from a shard's copy" if report["differing"] else ""
    log(f"<== fan-out finished in {_minutes(seconds)}: {len(trained)} runs trained, {reused[0]} reused; merged "
        f"{len(report['copied'])} records into {folder} ({len(report['kept'])} already there{differing})")
    return {"shards": [shard.name for shard in shards], "devices": list(devices), "threads": threads,
            "trained": trained, "reused": reused[0], "seconds": seconds, "merged": report}


def _finished_records_outside_shards(folder: Path) -> list[Path]:
    """The finished records of a profile folder, its nested results folders' included, not its shards'."""
    candidates = sorted((folder / "records").glob("*/*.json"))
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name not in (SHARDS_FOLDER, "records"):
                candidates += sorted(child.rglob("records/*/*.json"))
    return [path for path in candidates if records.is_finished(path)]


def share_finished_records(folder: str | Path, shards: list[Shard]) -> list[str]:
    """Give each shard the finished records of its seeds that the profile folder already holds.

    A profile run sequentially (or partly) before its fan-out then reads its runs back in the shards
    instead of training them again. A record goes, with its artifact, to every shard that runs its
    seed and lacks it, at the same relative path; as a hard link where the file system allows it
    (records and artifacts are only ever replaced, never rewritten in place), else as a copy.
    Returns the shard paths written.
    """
    folder = Path(folder)
    shared = []
    for record in _finished_records_outside_shards(folder):
        data = records.read_record(record)
        relative, root = record.relative_to(folder), record.parents[2]
        artifact = records.artifact_path(root, data["dataset"], data["method_label"], data["seed"])
        for shard in shards:
            if shard.seeds is not None and data["seed"] not in shard.seeds:
                continue
            target = shard_folder(folder, shard)
            if records.is_finished(target / relative):
                continue
            if artifact.exists():  # the artifact first: a record never lacks its artifact
                _link_or_copy(artifact, target / artifact.relative_to(folder))
            _link_or_copy(record, target / relative)
            shared.append(str((target / relative).relative_to(folder)))
    return shared


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")  # not *.json: never read as a record
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


# --- merge -------------------------------------------------------------------------------------


def unfinished_shards(folder: str | Path, shards: list[Shard]) -> list[str]:
    return [shard.name for shard in shards if not (shard_folder(folder, shard) / MARKER).exists()]


def _chosen_within_shard(record: dict) -> bool:
    """A post-hoc run on top of another method (``of``): notebooks 03 and 04 choose that method on the
    validation split of the seeds they see, so a one-seed shard may choose another one than the whole
    profile does. Such records are not merged; the final pass chooses over every seed and fits them
    again (post-hoc offsets take seconds)."""
    method = record.get("method") or {}
    return method.get("name") == "posthoc" and "of" in method


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


def merge(profile: str, results_root: str | Path | None = None, *, seeds_per_shard: int = 1,
          allow_missing: bool = False, run_notebooks: bool = True, log=print) -> dict:
    """Merge the shards' records into the profile folder, then run the profile there (records reused)."""
    from lbw_utils.reproduce import reproduce

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
        report["summary"] = str(reproduce(profile, results_root, log=log))
        report["notebook_seconds"] = time.perf_counter() - started
    return report


# --- cluster: SLURM job arrays through submitit ------------------------------------------------


def slurm_parameters(*, timeout_min: int = 120, partition: str | None = None, gpus_per_node: int = 1,
                     cpus_per_task: int = 8, mem_gb: int = 32, array_parallelism: int = 64,
                     account: str | None = None, qos: str | None = None, setup: list[str] | None = None,
                     name: str = "lbw-study") -> dict:
    """Parameters of a submitit ``AutoExecutor`` for one shard per array task."""
    parameters = {"name": name, "timeout_min": timeout_min, "gpus_per_node": gpus_per_node,
                  "cpus_per_task": cpus_per_task, "mem_gb": mem_gb, "nodes": 1, "tasks_per_node": 1,
                  "slurm_array_parallelism": array_parallelism}
    if partition:
        parameters["slurm_partition"] = partition
    if account:
        parameters["slurm_account"] = account
    if qos:
        parameters["slurm_qos"] = qos
    if setup:
        parameters["slurm_setup"] = list(setup)
    return parameters


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
           shards: list[Shard] | None = None, seeds_per_shard: int = 1) -> list:
    """Submit one array task per shard; returns the submitit jobs."""
    shards = shards if shards is not None else plan_shards(profile, seeds_per_shard=seeds_per_shard)
    root = str(Path(results_root or default_results_root()).resolve())
    executor = make_executor(profile_folder(profile, root) / "slurm" / "%j", parameters, cluster)
    names = [shard.name for shard in shards]
    return executor.map_array(_run_shard_job, [profile] * len(names), names, [root] * len(names),
                              [seeds_per_shard] * len(names))


def _run_shard_job(profile: str, shard_name: str, results_root: str, seeds_per_shard: int) -> dict:
    return run_shard(profile, shard_name, results_root, seeds_per_shard=seeds_per_shard)


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("--profile", required=True, help="smoke, cpu, gpu, or a profile YAML file")
        sub.add_argument("--results-dir", default=None, help="results root (default: $LBW_RESULTS_DIR or results/)")
        sub.add_argument("--seeds-per-shard", type=int, default=1)
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
            print(f"when they finish: python -m lbw_utils.fanout merge --profile {args.profile}")
            return 0
        for job in jobs:
            job.result()  # raises if a shard failed
        merge(args.profile, args.results_dir, seeds_per_shard=per_shard)
        return 0
    report = merge(args.profile, args.results_dir, seeds_per_shard=per_shard, allow_missing=args.allow_missing,
                   run_notebooks=not args.records_only)
    print(json.dumps({k: v for k, v in report.items() if k not in ("copied", "kept")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
