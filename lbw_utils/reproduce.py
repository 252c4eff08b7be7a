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
line, through :class:`LineSink`): a line per run as it starts and ends, the training loop's
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
import uuid
from collections import Counter
from pathlib import Path

import papermill
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from lbw_utils import fanout
from lbw_utils.config import REPO_ROOT
from lbw_utils.config import results_dir as default_results_root
from lbw_utils.experiments import DONE_TAG, PLAN_TAG, REUSED_TAG
from lbw_utils.files import atomic_write_json, atomic_write_text
from lbw_utils.profiles import NOTEBOOK_DIR, Step, load_profile, profile_path
from lbw_utils.publish import COMPLETE_MARKER
from lbw_utils.records import environment, hardware_summary

KERNEL = "python3"
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


class IPCKernelManager(AsyncKernelManager):
    """A kernel reached over IPC sockets (files in Jupyter's runtime folder), not TCP: the same machine
    only, and no "running over TCP without encryption" warning."""

    # Where the kernel process's own log lines go (set by execute_step: a file beside the executed
    # notebook). The notebook's output does not travel this way: it comes over the sockets.
    kernel_log: Path | None = None
    # Environment variables for the kernels on top of this process's (set by reproduce: one torch
    # thread after a CPU fan-out, so that a run trained in the sequential pass trains as the workers did).
    kernel_env: dict[str, str] = {}

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        # jupyter_client's default for IPC is the relative path "kernel-ipc" (sockets kernel-ipc-1 to -5 in
        # the working folder, the notebooks folder while papermill runs): two kernels started at once by
        # parallel workers then bind the same sockets and read each other's messages ("Invalid Signature").
        # An absolute path of the kernel's own, short enough for a socket's name.
        folder = Path(jupyter_runtime_dir())
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **options):
        # The kernel's output becomes a log (papermill streams it to the terminal): no progress bars
        # there, whose carriage returns would clutter it; the [run ]/[done] lines say the same.
        options["env"] = {**(options.get("env") or os.environ), "TQDM_DISABLE": "1", **IPCKernelManager.kernel_env}
        if IPCKernelManager.kernel_log is None:
            return await super()._async_launch_kernel(kernel_cmd, **options)
        with open(IPCKernelManager.kernel_log, "ab") as log:
            return await super()._async_launch_kernel(kernel_cmd, **{**options, "stderr": log})


class LineSink:
    """A file-like target for papermill's ``stdout_file``/``stderr_file`` that hands on whole lines.

    The kernel sends printed text in chunks that may end in the middle of a line (a ``print`` writes
    its text and its newline separately); the partial line waits here for the rest of it.
    """

    def __init__(self, line_handler):
        self.line_handler, self.pending = line_handler, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.line_handler(line)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: lines are handed on as soon as they are complete."""

    def close(self) -> None:
        if self.pending:
            self.line_handler(self.pending)
        self.pending = ""


class Progress:
    """Echoes the notebooks' streamed output and keeps count of the runs it reports.

    ``experiments.run`` prints ``[done] ...`` when it trains a run and ``[reused] ...`` when it
    reads a finished record back; ``run_study`` announces ``[plan] N runs``. After each run this
    handler prints one overall line: run k of N in the whole profile, the step and its runs, runs
    trained and reused, elapsed time, and the time left.

    N and the time left come from what is known: a step's runs as its notebook announces them and,
    for the steps still to come, the run counts and wall times of this profile's earlier runs
    (``timings``: step name -> ``{"parameters", "runs", "seconds"}``, used only where the step's
    parameters are unchanged). The first run of a profile knows only the steps seen so far, and says
    so ("of at least N").
    """

    def __init__(self, steps: list[Step], timings: dict | None = None, log=print, *,
                 trained_by_workers: list[str] | None = None):
        self.steps, self.log = steps, log
        self.known = {step.name: dict(timings[step.name]) for step in steps
                      if step.name in (timings or {}) and _same_parameters(timings[step.name], step)}
        self.started = time.perf_counter()
        self.trained = self.reused = 0
        # Runs that parallel workers trained just before this pass ("dataset / method / seed k", see
        # run_identity): this pass reads them back, and counts them as trained (by the workers), not reused.
        self.workers_trained = Counter(trained_by_workers or ())
        self.trained_by_workers = 0
        self.trained_seconds = 0.0
        self.finished_runs: dict[int, int] = {}
        self.step_index, self.step_started, self.step_planned, self.step_done = 0, self.started, 0, 0
        self.step_trained_seconds, self.step_trained, self.step_reused = 0.0, 0, 0

    def start_step(self, index: int) -> None:
        self.step_index, self.step_started = index, time.perf_counter()
        self.step_planned = self.step_done = self.step_trained = self.step_reused = 0
        self.step_trained_seconds = 0.0

    def finish_step(self, seconds: float) -> dict:
        """Close the current step; return its timing entry (what a later run of the profile estimates from)."""
        step = self.steps[self.step_index]
        self.finished_runs[self.step_index] = self.step_done
        entry = {"parameters": step.parameters, "runs": self.step_done, "seconds": round(seconds, 1)}
        if self.step_reused and step.name in self.known:
            # reused records take no time: keep the wall time of the last run that trained them
            entry["seconds"] = self.known[step.name]["seconds"]
        return entry

    def line(self, line: str) -> None:
        """One line a notebook printed (to stdout or stderr): echoed, indented, and counted."""
        if not line.strip():
            return
        self.log(f"    {line}")
        self._count(line)

    def _count(self, line: str) -> None:
        if line.startswith(PLAN_TAG):
            self.step_planned += int(line.split()[1])
            return
        if not line.startswith((DONE_TAG, REUSED_TAG)):
            return
        self.step_done += 1
        if line.startswith(DONE_TAG):
            seconds = float(line.rsplit(",", 1)[1].split()[0])
            self.trained += 1
            self.trained_seconds += seconds
            self.step_trained += 1
            self.step_trained_seconds += seconds
        else:
            identity = run_identity(line)
            if self.workers_trained[identity] > 0:
                self.workers_trained[identity] -= 1
                self.trained_by_workers += 1
            else:
                self.reused += 1
            self.step_reused += 1
        self.log(self.overall_line())

    def counts_text(self) -> str:
        """``N trained, M reused``, with the runs the parallel workers trained among the N, if any."""
        by_workers = f" ({self.trained_by_workers} by the parallel workers)" if self.trained_by_workers else ""
        return f"{self.trained + self.trained_by_workers} trained{by_workers}, {self.reused} reused"

    def expected_runs(self, index: int) -> int | None:
        """The runs of step ``index``: counted if finished, else announced or known from an earlier run."""
        if index in self.finished_runs:
            return self.finished_runs[index]
        known = self.known.get(self.steps[index].name, {}).get("runs")
        if index == self.step_index:
            return max(self.step_planned, self.step_done, known or 0) if known is not None else None
        return known

    def overall_line(self) -> str:
        now = time.perf_counter()
        step = self.steps[self.step_index]
        counts = [self.expected_runs(i) for i in range(len(self.steps))]
        done = self.trained + self.reused + self.trained_by_workers
        if None in counts:
            # the current step's announced runs count even while its total is not known yet
            at_least = sum(c for c in counts if c is not None) + (
                max(self.step_planned, self.step_done) if counts[self.step_index] is None else 0)
            total = f"at least {max(at_least, done)}"
        else:
            total = str(sum(counts))
        step_total = counts[self.step_index] if counts[self.step_index] is not None else (self.step_planned or "?")
        parts = [f"[progress] step {self.step_index + 1}/{len(self.steps)} ({step.name}): run {self.step_done} of "
                 f"{step_total}", f"all steps: run {done} of {total}",
                 self.counts_text(), f"elapsed {_minutes(now - self.started)}"]
        this_step, later, untimed = self.seconds_left(now, counts)
        if this_step is None and self.trained_by_workers:
            parts.append("time left: the workers' runs are read back, then the tables and figures computed")
        elif this_step is None:
            parts.append("time left: estimated after the first trained run")
        elif untimed:
            # a first run: what the later steps take is known only once they have run
            parts.append(f"this step about {_minutes(this_step)} left, {untimed} later step(s) not timed yet")
        else:
            parts.append(f"about {_minutes(this_step + later)} left")
        return " | ".join(parts)

    def seconds_left(self, now: float, counts: list[int | None]) -> tuple[float | None, float, int]:
        """(seconds left in this step, or None when nothing is known to estimate from; seconds of the later
        steps that are known; how many later steps are not)."""
        per_run = (self.step_trained_seconds / self.step_trained if self.step_trained
                   else self.trained_seconds / self.trained if self.trained else None)
        step = self.steps[self.step_index]
        expected = counts[self.step_index]
        if self.step_trained and expected is not None:
            this_step = per_run * max(0, expected - self.step_done)
        elif "seconds" in self.known.get(step.name, {}):
            this_step = max(0.0, self.known[step.name]["seconds"] - (now - self.step_started))
        elif per_run is not None:
            this_step = per_run * max(0, (expected or self.step_planned) - self.step_done)
        else:
            return None, 0.0, 0
        later, untimed = 0.0, 0
        for index in range(self.step_index + 1, len(self.steps)):
            known = self.known.get(self.steps[index].name, {})
            if "seconds" in known:
                later += known["seconds"]
            elif known.get("runs") is not None and per_run is not None:
                later += per_run * known["runs"]
            else:
                untimed += 1
        return this_step, later, untimed


def run_identity(line: str) -> str:
    """``dataset / method / seed k`` of a ``[done]`` or ``[reused]`` line (what precedes its first colon)."""
    return line.strip().split(" ", 1)[1].split(":", 1)[0].strip()


def _same_parameters(entry: dict, step: Step) -> bool:
    # an entry written before parameters were recorded is trusted by its step name alone
    return "parameters" not in entry or entry["parameters"] == step.parameters


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def execute_step(step: Step, folder: Path, log=print, *, number: str = "", lines=None) -> float:
    """Execute one notebook into ``folder/notebooks``; return its wall time in seconds.

    What the notebook prints reaches ``lines`` (default: ``log``, indented) line by line, as it is printed.
    A cell's displayed value (a table, a figure) stays in the executed notebook."""
    output = folder / "notebooks" / f"{step.name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**step.parameters, "results_dir": str(folder.resolve())}
    log(f"==> {number}{step.name}  {json.dumps(step.parameters, sort_keys=True)}")
    IPCKernelManager.kernel_log = output.with_suffix(".kernel.log")
    started = time.perf_counter()
    printed = [LineSink(lines or (lambda line: log(f"    {line}"))) for _ in ("stdout", "stderr")]
    try:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"), str(output), parameters=parameters, kernel_name=KERNEL,
            cwd=str(NOTEBOOK_DIR), progress_bar=False, stdout_file=printed[0], stderr_file=printed[1],
            kernel_manager_class=f"{__name__}.IPCKernelManager",
        )
    finally:
        for sink in printed:
            sink.close()
    seconds = time.perf_counter() - started
    log(f"<== {step.name} finished in {seconds:.1f} s -> {output}")
    return seconds


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
    folder = Path(folder) if folder is not None else Path(results_root or default_results_root()) / name
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
    log(f"finished the '{name}' profile in {_minutes(total)}: {runs_trained} runs trained, "
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
