"""Run the notebooks of a profile in order with papermill and write ``summary.md``.

    python -m lbw_utils.reproduce --profile cpu      # or smoke, gpu, path/to/profile.yaml
    python -m lbw_utils.reproduce --profile cpu --studies fashion_mnist --seeds 0 --no-final
    python -m lbw_utils.reproduce --profile cpu --workers 1      # one process, no fan-out (auto: from the hardware)

A study fans out over processes, GPUs or cluster jobs with :mod:`lbw_utils.fanout`. With
``--workers N`` (N > 1; the default ``auto`` chooses N from the hardware, see
:func:`resolve_workers`), the profile's shards (a study for one seed each) first train in N
processes on this machine (:func:`lbw_utils.fanout.fan_out`: on the CPU one torch thread each,
on a multi-GPU machine one process per GPU), their records are merged, and then the sequential
pass below runs every notebook, finds every run finished, and computes the tables and figures.

Executed notebooks, figures, tables, run records and ``summary.md`` go to
``results/<profile>/``, and nothing is written anywhere else: copying results next to
the README is a separate, explicit step (``make publish``, :mod:`lbw_utils.publish`).
An interrupted study resumes: finished run records are skipped by the notebooks
themselves, so rerunning the command only trains what is missing.

The terminal shows what each notebook prints as it runs (papermill streams it, line by
line, through :class:`lbw_utils.execution.LineSink`): a line per run as it starts and ends, the training loop's
line per epoch, and after every run an overall progress line (the step's runs, the whole
profile's runs, runs trained and reused, elapsed time, estimated time left). Plain lines
only, readable in a log: no bars, no carriage returns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lbw_utils import fanout
from lbw_utils.config import REPO_ROOT
from lbw_utils.execution import IPCKernelManager, execute_step
from lbw_utils.files import atomic_write_json, atomic_write_text
from lbw_utils.profiles import Step, load_profile, profile_path
from lbw_utils.progress import Progress, format_minutes
from lbw_utils.publish import COMPLETE_MARKER
from lbw_utils.records import environment, hardware_summary

# Each step's run count and wall time, rewritten after every step: the next run's estimate of the time left.
TIMINGS = "timings.json"
# Profiles whose runs take a second or so: `--workers auto` runs them in one process, because the fan-out's
# extra notebook executions (each shard runs its study's notebooks, and the sequential pass runs them all
# again) would cost more than training in parallel saves.
SEQUENTIAL_PROFILES = ("smoke",)


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


def reproduce(profile: str, results_root: str | Path | None = None, log=print, *, studies: list[str] | None = None,
              seeds: list[int] | None = None, final: bool = True, folder: str | Path | None = None,
              workers: int | str = 1) -> Path:
    """Run every step of ``profile``; return the path of the summary.

    ``studies``, ``seeds`` and ``final`` restrict the run (see :func:`select_steps`);
    ``folder`` replaces ``<results_root>/<profile>`` as the output folder (a shard's own folder).
    ``workers`` (an int, or 'auto': see :func:`resolve_workers`) above 1 first trains the profile's
    shards in that many processes (:func:`lbw_utils.fanout.fan_out`); 1 runs everything here, in order.
    Only a whole profile run to its end writes the completion marker that ``make publish`` asks for.
    """
    content, steps = load_profile(profile)
    steps = select_steps(steps, studies=studies, seeds=seeds, final=final)
    name = profile_path(profile).stem
    if folder is not None and workers != 1:
        raise ValueError("workers other than 1 fan out into <results root>/<profile>/shards/; a run into a folder "
                         "of its own (a shard's) runs in one process")
    folder = Path(folder) if folder is not None else fanout.profile_folder(profile, results_root)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / COMPLETE_MARKER
    timings = read_timings(folder)
    previous = _read_marker(marker)
    marker.unlink(missing_ok=True)  # until this run finishes, the folder is not a complete result
    state_at_start = checkout_state()
    _kernel_uses_this_python()
    started = time.perf_counter()
    shard_count = len(fanout.plan_shards(profile, studies=studies, seeds=seeds)) if workers != 1 else 1
    devices, threads = resolve_workers(workers, name, steps, shard_count)
    parallel, fanned = len(devices) > 1, None
    if parallel and _finished_before(previous, steps):
        log(f"==> no fan-out: the last whole run into {folder} finished these steps with these parameters "
            f"({COMPLETE_MARKER}); the runs are read back below")
    elif parallel:
        fanned = fanout.fan_out(profile, results_root, devices=devices, threads=threads, studies=studies,
                                seeds=seeds, log=log)
    progress = Progress(steps, timings, log, trained_by_workers=fanned["trained"] if fanned else None)
    progress.started = started
    # After a CPU fan-out the kernels here get one torch thread too: a run this pass trains (one a shard
    # did not finish) then gives the same bits as a worker's.
    IPCKernelManager.kernel_env = fanout.device_env("cpu", 1) if parallel and devices[0] == "cpu" else {}
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
    each = f"{threads} torch thread{'s' if threads != 1 else ''} each"
    parallel_note = (f"{len(fanned['shards'])} shards trained by {len(devices)} parallel worker processes, {each}, "
                     f"in {fanned['seconds'] / 60:.1f} min (their folders: {fanout.SHARDS_FOLDER}/)"
                     if fanned else None)
    summary = write_summary(folder, name, content, [(s, t) for s, t, _ in finished_steps], total,
                            parallel=parallel_note)
    if final and studies is None and seeds is None:
        state_at_end = checkout_state()
        uncommitted = sorted(set(state_at_start["uncommitted"]) | set(state_at_end["uncommitted"]))
        atomic_write_json(marker, {
            "profile": name, "git_revision": state_at_end["git_revision"],
            "dirty": bool(uncommitted) or state_at_start["git_revision"] != state_at_end["git_revision"],
            "uncommitted": uncommitted[:20],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_seconds": round(total, 1),
            "runs_trained": runs_trained, "runs_reused": progress.reused,
            "workers": len(devices) if fanned else 1, "threads_per_worker": threads if fanned else None,
            "runs_trained_by_workers": progress.trained_by_workers,
            "fan_out_seconds": round(fanned["seconds"], 1) if fanned else None,
            "steps": [{"name": s.name, "parameters": s.parameters, "seconds": round(t, 1), "runs": runs}
                      for s, t, runs in finished_steps],
        })
    by_workers = (f" ({progress.trained_by_workers} of them by {len(devices)} parallel workers, {each})"
                  if fanned else "")
    log(f"finished the '{name}' profile in {format_minutes(total)}: {runs_trained} runs trained, "
        f"{progress.reused} reused{by_workers}")
    log(f"read first: {summary}")
    if name in ("cpu", "gpu") and final and studies is None and seeds is None:
        log(f"maintainers: `make publish PROFILE={name}` copies its key tables and figures next to the README")
    return summary


def studies_device(steps: list[Step]) -> str:
    """The ``device`` parameter of the steps that take one ('auto' when none does); several: all of them
    joined by '+', which fans out to no GPU (one process per GPU needs one kind of device)."""
    devices = sorted({str(step.parameters["device"]) for step in steps if step.study and "device" in step.parameters})
    return "+".join(devices) if devices else "auto"


def resolve_workers(workers: int | str, profile_name: str, steps: list[Step],
                    shards: int) -> tuple[list[str], int | None]:
    """(worker devices, torch threads per worker) for ``workers``; one device: the sequential path.

    ``auto``: the hardware's degree (:func:`lbw_utils.fanout.hardware_workers`: on the CPU one one-thread
    process per core, capped by memory; one process per GPU on a multi-GPU machine; one process on a
    machine with one GPU), never more than the profile's shards; one process for the profiles in
    :data:`SEQUENTIAL_PROFILES`. An int: that many workers (1: the sequential path).
    """
    device = studies_device(steps)
    if workers == "auto":
        if profile_name in SEQUENTIAL_PROFILES:
            return [device], None
        return fanout.hardware_workers(device, shards)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be 'auto' or a positive integer")
    if workers == 1:
        return [device], None
    return fanout.workers_for(workers, device)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="smoke, cpu, gpu, or the path of a profile YAML file")
    parser.add_argument("--results-dir", default=None, help="results root (default: $LBW_RESULTS_DIR or results/)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds replacing the profile's, e.g. 0,1")
    parser.add_argument("--studies", default=None, help="comma-separated studies of the profile to run (default all)")
    parser.add_argument("--no-final", action="store_true", help="skip the final notebooks (06_paper_figures)")
    parser.add_argument("--workers", default="auto", type=_workers_argument,
                        help="processes training the study's runs in parallel: auto (from the hardware; 1 for "
                             "the smoke profile) or N (1: everything in this process, in order)")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
    studies = args.studies.split(",") if args.studies else None
    reproduce(args.profile, args.results_dir, studies=studies, seeds=seeds, final=not args.no_final,
              workers=args.workers)
    return 0


def _workers_argument(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a positive integer")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
