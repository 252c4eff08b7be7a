"""The sequential pass of a profile: every step's notebook in order, into one folder; then its summary.

What ``make reproduce`` runs after an optional fan-out (:mod:`lbw_utils.runner.reproduce` decides whether to fan
out and hands the fan-out in as :class:`FanOut`), and what a shard (:func:`lbw_utils.runner.fanout.run_shard`) and
a merge (:func:`lbw_utils.runner.fanout.merge`) run. It sits below both ``reproduce`` and ``fanout``: neither
imports the other through it, so there is no import cycle between them.

The terminal shows what each notebook prints as it runs (papermill streams it, line by line, through
:class:`lbw_utils.runner.execution.LineSink`): a line per run as it starts and ends, the training loop's line per
epoch, and after every run an overall progress line (:class:`lbw_utils.runner.progress.Progress`). The counts
come from the notebooks' event lines (:mod:`lbw_utils.runs.events`), not from their prose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lbw_utils.runs import events
from lbw_utils.config import REPO_ROOT
from lbw_utils.config import results_dir as default_results_root
from lbw_utils.runner.execution import IPCKernelManager, execute_step
from lbw_utils.files import atomic_write_json, atomic_write_text
from lbw_utils.runner.profiles import Step, available_profiles, load_profile, profile_path
from lbw_utils.runner.progress import Progress, format_minutes
from lbw_utils.runner.publish import COMPLETE_MARKER
from lbw_utils import records
from lbw_utils.records import environment, hardware_summary

# Each step's run count and wall time, rewritten after every step: the next run's estimate of the time left.
TIMINGS = "timings.json"
# Where a fanned-out profile's shards keep their folders, under the profile folder.
SHARDS_FOLDER = "shards"


@dataclass
class FanOut:
    """A fan-out to run before the steps: ``run()`` trains the shards in ``devices`` parallel processes of
    ``threads`` torch threads each (None: the default) and returns :func:`lbw_utils.runner.fanout.fan_out`'s report.
    ``kernel_env``: the environment of this pass's kernels on top of this process's (after a CPU fan-out, one
    torch thread: a run this pass trains, one a shard did not finish, then gives the same bits as a worker's)."""

    devices: list[str]
    threads: int | None
    run: Callable[[], dict]
    kernel_env: dict[str, str]


def profile_folder(profile: str, results_root: str | Path | None = None) -> Path:
    """Where ``make reproduce`` puts a profile's results: ``<results root>/<profile name>``."""
    return Path(results_root or default_results_root()) / profile_path(profile).stem


def select_steps(steps: list[Step], *, studies: list[str] | None = None, seeds: list[int] | None = None,
                 final: bool = True) -> list[Step]:
    """The steps of some studies (all when None), with ``seeds`` replacing the profile's, with or without
    the final steps (those outside any study). Used to run one shard of a fanned-out study."""
    known = {step.study for step in steps if step.study}
    unknown = sorted(set(studies or ()) - known)
    if unknown:
        raise ValueError(f"studies {unknown} are not in this profile; it has {sorted(known)}")
    chosen = []
    for step in steps:
        if step.study and studies is not None and step.study not in studies:
            continue
        if not step.study and not final:
            continue
        parameters = dict(step.parameters)
        if seeds is not None and "seeds" in parameters:
            parameters["seeds"] = list(seeds)
        chosen.append(Step(step.study, step.notebook, parameters))
    return chosen


def run_profile(profile: str, results_root: str | Path | None = None, log=print, *,
                studies: list[str] | None = None, seeds: list[int] | None = None, final: bool = True,
                folder: str | Path | None = None, fan_out: FanOut | None = None, shard: str | None = None) -> Path:
    """Run the (selected) steps of ``profile`` in order into its folder; return the path of the summary.

    ``studies``, ``seeds`` and ``final`` restrict the run (see :func:`select_steps`); ``folder`` replaces
    ``<results_root>/<profile>`` as the output folder (a shard's own folder). ``fan_out`` trains the shards
    first (skipped when the folder's completion marker says these very steps finished). ``shard`` (e.g.
    ``shard 2/3 'names5-seed0'``) says the run is one shard of a profile: its last lines say so, not that
    the profile finished. Only a whole profile run to its end writes the completion marker that
    ``make publish`` asks for.
    """
    content, steps = load_profile(profile)
    steps = select_steps(steps, studies=studies, seeds=seeds, final=final)
    name = profile_path(profile).stem
    folder = Path(folder) if folder is not None else profile_folder(profile, results_root)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / COMPLETE_MARKER
    timings = read_timings(folder)
    previous = _read_marker(marker)
    marker.unlink(missing_ok=True)  # until this run finishes, the folder is not a complete result
    found_at_start = runs_found(folder)  # trained by earlier, interrupted invocations: their time is not counted below
    state_at_start = checkout_state()
    _kernel_uses_this_python()
    started = time.perf_counter()
    fanned = None
    if fan_out is not None and _finished_before(previous, steps):
        log(f"==> no fan-out: the last whole run into {folder} finished these steps with these parameters "
            f"({COMPLETE_MARKER}); the runs are read back below")
    elif fan_out is not None:
        fanned = fan_out.run()
    progress = Progress(steps, timings, log, trained_by_workers=fanned["trained"] if fanned else None)
    progress.started = started
    # The kernels print event lines for progress to count (lbw_utils.runs.events), and after a fan-out run as its workers.
    IPCKernelManager.kernel_env = {**(fan_out.kernel_env if fan_out is not None else {}), events.ENABLED_ENV: "1"}
    finished_steps = []
    try:
        for index, step in enumerate(steps):
            progress.start_step(index)
            seconds = execute_step(step, folder, log, number=f"[step {index + 1}/{len(steps)}] ",
                                   lines=progress.line)
            timings[step.name] = progress.finish_step(seconds)
            atomic_write_json(folder / TIMINGS, timings)  # kept across interruptions, for the next estimate
            finished_steps.append((step, seconds, timings[step.name]["runs"]))
    finally:
        IPCKernelManager.kernel_env = {}
    total = time.perf_counter() - progress.started
    runs_trained = progress.trained + progress.trained_by_workers
    threads = fan_out.threads if fan_out is not None else None
    workers = len(fan_out.devices) if fan_out is not None else 1
    each = f"{threads} torch thread{'s' if threads != 1 else ''} each"
    parallel_note = (f"{len(fanned['shards'])} shards trained by {workers} parallel worker processes, {each}, "
                     f"in {fanned['seconds'] / 60:.1f} min (their folders: {SHARDS_FOLDER}/)"
                     if fanned else None)
    summary = write_summary(folder, name, content, [(s, t) for s, t, _ in finished_steps], total,
                            parallel=parallel_note)
    if final and studies is None and seeds is None:
        state_at_end = checkout_state()
        uncommitted = sorted(set(state_at_start["uncommitted"]) | set(state_at_end["uncommitted"]))
        atomic_write_json(marker, {
            "profile": name, "git_revision": state_at_end["git_revision"],
            "revision_at_start": state_at_start["git_revision"],
            "dirty": bool(uncommitted) or state_at_start["git_revision"] != state_at_end["git_revision"],
            "uncommitted": uncommitted[:20],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_seconds": round(total, 1),
            "runs_trained": runs_trained, "runs_reused": progress.reused, "runs_found_at_start": found_at_start,
            "workers": workers if fanned else 1, "threads_per_worker": threads if fanned else None,
            "runs_trained_by_workers": progress.trained_by_workers,
            "fan_out_seconds": round(fanned["seconds"], 1) if fanned else None,
            "steps": [{"name": s.name, "parameters": s.parameters, "seconds": round(t, 1), "runs": runs}
                      for s, t, runs in finished_steps],
        })
    by_workers = (f" ({progress.trained_by_workers} of them by {workers} parallel workers, {each})"
                  if fanned else "")
    counts = f"{runs_trained} runs trained, {progress.reused} reused{by_workers}"
    if shard is not None:
        log(f"{shard} finished in {format_minutes(total)}: {counts}; its summary: {summary}")
        return summary
    log(f"finished the '{name}' profile in {format_minutes(total)}: {counts}")
    log(f"read first: {summary}")
    if name != "smoke" and name in available_profiles() and final and studies is None and seeds is None:
        log(f"maintainers: `make publish PROFILE={name}` copies its key tables and figures next to the README")
    return summary


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _finished_before(previous: dict | None, steps: list[Step]) -> bool:
    """Whether a completion marker says these very steps (names and parameters) all finished."""
    if not previous or not previous.get("steps"):
        return False
    return ([(s.get("name"), s.get("parameters")) for s in previous["steps"]]
            == [(step.name, json.loads(json.dumps(step.parameters))) for step in steps])


def read_timings(folder: Path) -> dict:
    """Step name -> ``{"parameters", "runs", "seconds"}`` from earlier runs of the profile into ``folder``
    (``timings.json``, else the steps of an older ``complete.json``); empty for a first run."""
    for name in (TIMINGS, COMPLETE_MARKER):
        path = folder / name
        if path.exists():
            content = json.loads(path.read_text(encoding="utf-8"))
            return content if name == TIMINGS else {s["name"]: s for s in content.get("steps", [])}
    return {}


def checkout_state() -> dict:
    """The checkout's commit and the paths that differ from it (modified, staged, or untracked and
    not ignored), so that results can be traced to a commit; ``git_revision`` is None outside git."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", "--no-optional-locks", *arguments], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=30, check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=all").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return {"git_revision": None, "uncommitted": []}
    return {"git_revision": commit, "uncommitted": changed}


def _kernel_uses_this_python() -> None:
    # The `python3` kernel must run this interpreter (the one with lbw_utils);
    # a kernel launched as plain "python" resolves through PATH.
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def runs_found(folder: Path) -> int:
    """How many distinct finished runs ``folder`` holds, its shards' included (a run merged from a shard counts once)."""
    found = set()
    for record in folder.rglob("records/*/*.json"):
        relative = record.relative_to(folder).parts
        if relative[0] == SHARDS_FOLDER:
            relative = relative[2:]
        if relative not in found and records.is_finished(record):
            found.add(relative)
    return len(found)


def write_summary(folder: Path, profile: str, content: dict, timings: list, total_seconds: float, *,
                  parallel: str | None = None) -> Path:
    env = environment()
    lines = [
        f"# Results of the `{profile}` profile",
        "",
        f"{content.get('description', '')}",
        "",
        f"- hardware: {hardware_summary(env)}; torch threads {env['torch_threads']}"
        + (" (this process's; each record says its own)" if parallel else ""),
        *([f"- runs: {parallel}"] if parallel else []),
        f"- versions: Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
        f"numpy {env['numpy']}",
        f"- code revision: {env['git_revision']}",
        f"- finished: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; total wall time {total_seconds / 60:.1f} min "
        "(steps whose runs were already finished are fast: their records are reused)",
        "",
        "## Steps",
        "",
        "| step | parameters | wall time |",
        "|---|---|---|",
    ]
    for step, seconds in timings:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(step.parameters.items()))
        lines.append(f"| [{step.name}](notebooks/{step.name}.ipynb) | {shown} | {seconds:.1f} s |")
    lines += ["", "## Tables", ""]
    for table in sorted((folder / "tables").glob("*/*.md"), key=lambda p: (p.parent.name, p.stem != "methods", p)):
        relative = table.relative_to(folder).with_suffix("")
        links = [f"[{suffix}]({relative}.{suffix})" for suffix in ("csv", "tex")
                 if table.with_suffix(f".{suffix}").exists()]
        lines += [f"### {table.parent.name}: {table.stem}", "", table.read_text(encoding="utf-8"),
                  *([f"Also as {', '.join(links)}.", ""] if links else [])]
    lines += ["## Figures", ""]
    for figure in sorted((folder / "figures").glob("*/*.png")):
        relative = figure.relative_to(folder)
        lines.append(f"- [{relative}]({relative})")
    path = folder / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
