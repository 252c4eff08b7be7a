"""Run the notebooks of a profile in order with papermill and write ``summary.md``.

    python -m lbw_utils.reproduce --profile cpu      # or smoke, gpu, path/to/profile.yaml
    python -m lbw_utils.reproduce --profile cpu --studies fashion_mnist --seeds 0 --no-final

A study fans out over processes, GPUs or cluster jobs with :mod:`lbw_utils.fanout`.

Executed notebooks, figures, tables, run records and ``summary.md`` go to
``results/<profile>/``, and nothing is written anywhere else: copying results next to
the README is a separate, explicit step (``make publish``, :mod:`lbw_utils.publish`).
An interrupted study resumes: finished run records are skipped by the notebooks
themselves, so rerunning the command only trains what is missing.

The terminal shows each notebook's output as it runs (papermill streams it to the
``papermill`` logger, which :func:`main` sends to the terminal): a line per run as it
starts and ends, the training loop's line per epoch, and after every run an overall
progress line (step, runs trained and reused, elapsed time, estimated time left).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import papermill
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from lbw_utils.config import results_dir as default_results_root
from lbw_utils.experiments import DONE_TAG, PLAN_TAG, REUSED_TAG
from lbw_utils.files import atomic_write_json, atomic_write_text
from lbw_utils.profiles import NOTEBOOK_DIR, Step, load_profile, profile_path
from lbw_utils.publish import COMPLETE_MARKER
from lbw_utils.records import environment, git_revision, hardware_summary

KERNEL = "python3"
# Parameters that make a notebook do extra work for the study's first seed only
# (05: a 42-class baseline on ``seeds[:1]``). A run restricted to other seeds
# (a fan-out shard) switches them off, so the extra run happens exactly once.
FIRST_SEED_ONLY = ("all_classes_baseline",)


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
            original = list(parameters["seeds"])
            parameters["seeds"] = list(seeds)
            if original and original[0] not in seeds:
                parameters.update({key: False for key in FIRST_SEED_ONLY if key in parameters})
        chosen.append(Step(step.study, step.notebook, parameters))
    return chosen


class IPCKernelManager(AsyncKernelManager):
    """A kernel reached over IPC sockets (files beside its connection file, in Jupyter's runtime
    folder), not TCP: the same machine only, and no "running over TCP without encryption" warning."""

    # Where the kernel process's own log lines go (set by execute_step: a file beside the executed
    # notebook). The notebook's output does not travel this way: it comes over the sockets.
    kernel_log: Path | None = None

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    async def _async_launch_kernel(self, kernel_cmd: list[str], **options):
        if IPCKernelManager.kernel_log is None:
            return await super()._async_launch_kernel(kernel_cmd, **options)
        with open(IPCKernelManager.kernel_log, "ab") as log:
            return await super()._async_launch_kernel(kernel_cmd, **{**options, "stderr": log})


class Progress(logging.Handler):
    """Echoes the notebooks' streamed output and keeps count of the runs it reports.

    ``experiments.run`` prints ``[done] ...`` when it trains a run and ``[reused] ...`` when it
    reads a finished record back; ``run_study`` announces ``[plan] N runs``. After each run this
    handler prints one overall line: step, runs of this step, runs trained and reused, elapsed
    time, and the time left, estimated from the seconds per trained run so far in this step and,
    for the steps still to come, from the last complete run of the profile (if any).
    """

    def __init__(self, steps: list[Step], previous: dict | None, log=print):
        super().__init__(level=logging.INFO)
        self.steps, self.log = steps, log
        self.previous_seconds = {s["name"]: s["seconds"] for s in (previous or {}).get("steps", [])}
        self.started = time.perf_counter()
        self.trained = self.reused = 0
        self.step_index, self.step_started, self.step_planned, self.step_done = 0, self.started, 0, 0
        self.step_trained_seconds, self.step_trained = 0.0, 0

    def start_step(self, index: int) -> None:
        self.step_index, self.step_started = index, time.perf_counter()
        self.step_planned = self.step_done = self.step_trained = 0
        self.step_trained_seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # Papermill logs printed text (which ends with a newline) and the text form of a cell's
        # displayed value (a table, "<Figure ...>", which does not) alike: only the first belongs here.
        if record.levelno < logging.WARNING and not message.endswith("\n"):
            return
        for line in message.splitlines():
            if not line.strip() or line.startswith("Executing notebook with kernel"):
                continue
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
            self.trained += 1
            self.step_trained += 1
            self.step_trained_seconds += float(line.rsplit(",", 1)[1].split()[0])
        else:
            self.reused += 1
        self.log(self.overall_line())

    def overall_line(self) -> str:
        now = time.perf_counter()
        step = self.steps[self.step_index]
        parts = [f"[progress] step {self.step_index + 1}/{len(self.steps)} ({step.name}): "
                 f"run {self.step_done} of {self.step_planned or '?'}",
                 f"{self.trained} trained, {self.reused} reused in all", f"elapsed {_minutes(now - self.started)}"]
        left = self.seconds_left(now)
        parts.append(f"about {_minutes(left)} left" if left is not None else "time left: known after this step")
        return " | ".join(parts)

    def seconds_left(self, now: float) -> float | None:
        step = self.steps[self.step_index]
        if self.step_trained:
            per_run = self.step_trained_seconds / self.step_trained
            this_step = per_run * max(0, self.step_planned - self.step_done)
        elif step.name in self.previous_seconds:
            this_step = max(0.0, self.previous_seconds[step.name] - (now - self.step_started))
        else:
            this_step = 0.0
        later = [s.name for s in self.steps[self.step_index + 1:]]
        if any(name not in self.previous_seconds for name in later):
            return None if later else this_step
        return this_step + sum(self.previous_seconds[name] for name in later)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def execute_step(step: Step, folder: Path, log=print, *, number: str = "") -> float:
    """Execute one notebook into ``folder/notebooks``; return its wall time in seconds."""
    output = folder / "notebooks" / f"{step.name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**step.parameters, "results_dir": str(folder.resolve())}
    log(f"==> {number}{step.name}  {json.dumps(step.parameters, sort_keys=True)}")
    IPCKernelManager.kernel_log = output.with_suffix(".kernel.log")
    started = time.perf_counter()
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"), str(output), parameters=parameters, kernel_name=KERNEL,
        cwd=str(NOTEBOOK_DIR), log_output=True, progress_bar=False,
        kernel_manager_class=f"{__name__}.IPCKernelManager",
    )
    seconds = time.perf_counter() - started
    log(f"<== {step.name} finished in {seconds:.1f} s -> {output}")
    return seconds


def reproduce(profile: str, results_root: str | Path | None = None, log=print, *, studies: list[str] | None = None,
              seeds: list[int] | None = None, final: bool = True, folder: str | Path | None = None) -> Path:
    """Run every step of ``profile``; return the path of the summary.

    ``studies``, ``seeds`` and ``final`` restrict the run (see :func:`select_steps`);
    ``folder`` replaces ``<results_root>/<profile>`` as the output folder (a shard's own folder).
    Only a whole profile run to its end writes the completion marker that ``make publish`` asks for.
    """
    content, steps = load_profile(profile)
    steps = select_steps(steps, studies=studies, seeds=seeds, final=final)
    name = profile_path(profile).stem
    folder = Path(folder) if folder is not None else Path(results_root or default_results_root()) / name
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / COMPLETE_MARKER
    previous = json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None
    marker.unlink(missing_ok=True)  # until this run finishes, the folder is not a complete result
    revision_at_start = git_revision()
    _kernel_uses_this_python()
    progress = Progress(steps, previous, log)
    streamed = logging.getLogger("papermill")
    streamed.addHandler(progress)
    timings = []
    try:
        for index, step in enumerate(steps):
            progress.start_step(index)
            seconds = execute_step(step, folder, log, number=f"[step {index + 1}/{len(steps)}] ")
            timings.append((step, seconds, progress.step_done))
    finally:
        streamed.removeHandler(progress)
    total = time.perf_counter() - progress.started
    summary = write_summary(folder, name, content, [(s, t) for s, t, _ in timings], total)
    if final and studies is None and seeds is None:
        revision = git_revision()
        atomic_write_json(marker, {
            "profile": name, "git_revision": revision,
            "dirty": any(str(r).endswith("-dirty") for r in (revision_at_start, revision)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_seconds": round(total, 1),
            "runs_trained": progress.trained, "runs_reused": progress.reused,
            "steps": [{"name": s.name, "seconds": round(t, 1), "runs": runs} for s, t, runs in timings],
        })
    log(f"finished the '{name}' profile in {_minutes(total)}: {progress.trained} runs trained, "
        f"{progress.reused} reused")
    log(f"read first: {summary}")
    if name in ("cpu", "gpu") and final and studies is None and seeds is None:
        log(f"maintainers: `make publish PROFILE={name}` copies its key tables and figures next to the README")
    return summary


def _kernel_uses_this_python() -> None:
    # The `python3` kernel must run this interpreter (the one with lbw_utils);
    # a kernel launched as plain "python" resolves through PATH.
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def write_summary(folder: Path, profile: str, content: dict, timings: list, total_seconds: float) -> Path:
    env = environment()
    lines = [
        f"# Results of the `{profile}` profile",
        "",
        f"{content.get('description', '')}",
        "",
        f"- hardware: {hardware_summary(env)}; torch threads {env['torch_threads']}",
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
    args = parser.parse_args(argv)
    # papermill streams the notebooks' output to its logger; Progress echoes it. Papermill's own
    # records at INFO (its cell-by-cell chatter) and the kernel's are not wanted on top.
    logging.getLogger("papermill").setLevel(logging.INFO)
    logging.getLogger("papermill").propagate = False
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
    studies = args.studies.split(",") if args.studies else None
    reproduce(args.profile, args.results_dir, studies=studies, seeds=seeds, final=not args.no_final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
