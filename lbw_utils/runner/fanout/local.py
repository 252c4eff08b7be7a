"""One machine: the shards as subprocesses, at most one per device at a time, then merged."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lbw_utils.runs import events

from lbw_utils import records
from lbw_utils.config import CPU_PROCESSES_ENV
from lbw_utils.runner.fanout.hardware import device_env, usable_cores
from lbw_utils.runner.fanout.merge import merge_records
from lbw_utils.runner.fanout.shards import (SHARDS_FOLDER, Shard, estimated_minutes, plan_shards, profile_folder,
                                     shard_command, shard_folder, shard_title)
from lbw_utils.runner.progress import format_minutes


def run_local(profile: str, devices: list[str], results_root: str | Path | None = None, *,
              shards: list[Shard] | None = None, threads: int | None = None, seeds_per_shard: int | None = None,
              command_for=shard_command, log=print, lines=None, after=None) -> list[dict]:
    """Run the shards as subprocesses, at most one per device at a time; a free device takes the next shard.

    Each shard's output goes to ``<its folder>/log.txt``; with ``lines`` (a callable ``(shard, line)``) it is
    also handed on as it comes, one whole line at a time, event lines included (:mod:`lbw_utils.runs.events`: the
    shards print them). ``after`` is called with each shard's result as it finishes. ``log``, ``lines`` and
    ``after`` are never called from two workers at once. Returns one dict per shard with its exit code, in
    the shards' order.
    """
    if not devices:
        raise ValueError("run_local needs at least one device")
    shards = shards if shards is not None else plan_shards(profile, seeds_per_shard=seeds_per_shard)
    folder = profile_folder(profile, results_root)
    free_devices: queue.SimpleQueue[str] = queue.SimpleQueue()
    for device in devices:
        free_devices.put(device)
    analysis_processes = max(1, usable_cores() // len(devices))  # a worker's share of the cores
    lock = threading.RLock()  # one message at a time from the workers' threads: whole lines, never mixed
    finished = []

    def locked(handler, *arguments) -> None:
        with lock:
            handler(*arguments)

    def run_one(shard: Shard) -> dict:
        # As many threads as devices, so a device is always free when a thread asks for one.
        device = free_devices.get()
        try:
            target = shard_folder(folder, shard)
            target.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **device_env(device, threads), CPU_PROCESSES_ENV: str(analysis_processes),
                   **({events.ENABLED_ENV: "1"} if lines else {})}
            command = command_for(profile, shard, results_root, seeds_per_shard=seeds_per_shard)
            title = shard_title(shard, shards)
            locked(log, f"{title} started on {_device_name(device)}")
            started = time.perf_counter()
            with open(target / "log.txt", "w", encoding="utf-8") as output:
                if lines is None:
                    code = subprocess.call(command, env=env, stdout=output, stderr=subprocess.STDOUT)
                else:
                    code = _stream(command, {**env, "PYTHONUNBUFFERED": "1"}, output,
                                   lambda line: locked(lines, shard, line))
            seconds = time.perf_counter() - started
            result = {"shard": shard.name, "device": device, "exit_code": code, "seconds": seconds,
                      "log": str(target / "log.txt"), "done": 0, "of": len(shards)}
            with lock:
                finished.append(shard.name)
                result["done"] = len(finished)
                outcome = "finished" if code == 0 else f"FAILED (exit {code}; see {target / 'log.txt'})"
                log(f"{title} {outcome} in {format_minutes(seconds)} on {_device_name(device)}")
                if after is not None:
                    after(result)
            return result
        finally:
            free_devices.put(device)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        return list(pool.map(run_one, shards))  # in the shards' order


def _device_name(device: str) -> str:
    return "the CPU" if device == "cpu" else f"GPU {device}"


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
    ``[<shard>]`` (the shards' event lines are counted, not shown); after each shard a line with the shards
    done, the time elapsed and the time left (:func:`fan_out_line`). Raises when a shard fails (its ``log.txt`` says why;
    running the same command again resumes). Returns the shards, the runs they trained
    (``"dataset / method / seed k"`` each), the runs they read back, the seconds, and the merge report.
    """
    folder = profile_folder(profile, results_root)
    shards = plan_shards(profile, studies=studies, seeds=seeds)
    shared = share_finished_records(folder, shards)
    where = f"{len(set(devices))} GPU(s)" if devices[0] != "cpu" else "the CPU"
    most = max((len(shard.seeds) for shard in shards if shard.seeds), default=1)
    size = "one seed each" if most == 1 else f"up to {most} seeds each"
    log(f"==> fan-out: {len(shards)} shards (a study for {size}) over {len(devices)} worker processes on "
        f"{where}, {threads or 'default'} torch thread{'s' if threads != 1 else ''} each; their folders: "
        f"{folder / SHARDS_FOLDER}"
        + (f"; {len(shared)} finished records shared with them" if shared else ""))
    started = time.perf_counter()
    trained: list[str] = []
    reused = [0]
    estimates = estimated_minutes(profile, shards)  # the profile's own estimates, when its studies give them
    minutes_done = [0.0]

    def line(shard: Shard, text: str) -> None:
        event = events.parse(text)
        if event is None:
            log(f"[{shard.name}] {text}")
        elif event["event"] == "done":
            trained.append(event["run"])
        elif event["event"] == "reused":
            reused[0] += 1

    def after(result: dict) -> None:
        share = None
        if estimates is not None:
            minutes_done[0] += estimates[result["shard"]]
            share = minutes_done[0] / sum(estimates.values())
        log(fan_out_line(result["done"], len(shards), time.perf_counter() - started, len(trained), reused[0],
                         share_done=share))

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
    log(f"<== fan-out finished in {format_minutes(seconds)}: {len(trained)} runs trained, {reused[0]} reused; merged "
        f"{len(report['copied'])} records into {folder} ({len(report['kept'])} already there{differing})")
    return {"shards": [shard.name for shard in shards], "devices": list(devices), "threads": threads,
            "trained": trained, "reused": reused[0], "seconds": seconds, "merged": report}


def fan_out_line(done: int, total: int, elapsed: float, trained: int, reused: int,
                 share_done: float | None = None) -> str:
    """The line after each finished shard: shards done, runs, elapsed, and the time left for the profile.

    The time left is the shards' (the elapsed time, the workers' parallelism included, scaled by the work left
    over the work done), then the sequential pass, which reads the records back and computes the tables and
    figures. The work is counted in shards, or, with ``share_done`` (the share of the profile's estimated
    shard minutes finished, from its studies' ``minutes_per_seed``), in estimated minutes: the longest shards
    start first, so counting shards would overstate what is left."""
    parts = [f"[fan-out] {done} of {total} shards done", f"{trained} runs trained, {reused} reused",
             f"elapsed {format_minutes(elapsed)}"]
    if done < total:
        left = elapsed / done * (total - done) if not share_done else elapsed * (1 - share_done) / share_done
        parts.append(f"about {format_minutes(left)} left for the other shards, then "
                     "the merge and the notebooks' tables and figures")
    else:
        parts.append("next: the merge and the notebooks' tables and figures")
    return " | ".join(parts)


def share_finished_records(folder: str | Path, shards: list[Shard]) -> list[str]:
    """Give each shard the finished records of its seeds that the profile folder already holds.

    A profile run sequentially (or partly) before its fan-out then reads its runs back in the shards
    instead of training them again. A record goes, with its artifact, to every shard that runs its
    seed and lacks it, at the same relative path; as a hard link where the file system allows it
    (records and artifacts are only ever replaced, never rewritten in place), else as a copy.
    Returns the shard paths written.
    """
    folder = Path(folder)
    # the profile folder's own records and its nested results folders' (not the shards')
    candidates = sorted((folder / "records").glob("*/*.json"))
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name not in (SHARDS_FOLDER, "records"):
                candidates += sorted(child.rglob("records/*/*.json"))
    shared = []
    for record in filter(records.is_finished, candidates):
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
