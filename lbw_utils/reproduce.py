"""Run the notebooks of a profile in order with papermill and write ``summary.md``.

    python -m lbw_utils.reproduce --profile cpu      # or smoke, gpu, path/to/profile.yaml
    python -m lbw_utils.reproduce --profile cpu --studies fashion_mnist --seeds 0 --no-final

A study fans out over processes, GPUs or cluster jobs with :mod:`lbw_utils.fanout`.

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
from pathlib import Path

import papermill
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

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
        # The kernel's output becomes a log (papermill streams it to the terminal): no progress bars
        # there, whose carriage returns would clutter it; the [run ]/[done] lines say the same.
        options["env"] = {**(options.get("env") or os.environ), "TQDM_DISABLE": "1"}
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

    def __init__(self, steps: list[Step], timings: dict | None = None, log=print):
        self.steps, self.log = steps, log
        self.known = {step.name: dict(timings[step.name]) for step in steps
                      if step.name in (timings or {}) and _same_parameters(timings[step.name], step)}
        self.started = time.perf_counter()
        self.trained = self.reused = 0
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
            self.reused += 1
            self.step_reused += 1
        self.log(self.overall_line())

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
        done = self.trained + self.reused
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
                 f"{self.trained} trained, {self.reused} reused", f"elapsed {_minutes(now - self.started)}"]
        this_step, later, untimed = self.seconds_left(now, counts)
        if this_step is None:
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
    timings = read_timings(folder)
    marker.unlink(missing_ok=True)  # until this run finishes, the folder is not a complete result
    state_at_start = checkout_state()
    _kernel_uses_this_python()
    progress = Progress(steps, timings, log)
    finished_steps = []
    for index, step in enumerate(steps):
        progress.start_step(index)
        seconds = execute_step(step, folder, log, number=f"[step {index + 1}/{len(steps)}] ", lines=progress.line)
        timings[step.name] = progress.finish_step(seconds)
        atomic_write_json(folder / TIMINGS, timings)  # kept across interruptions, for the next estimate
        finished_steps.append((step, seconds, timings[step.name]["runs"]))
    total = time.perf_counter() - progress.started
    summary = write_summary(folder, name, content, [(s, t) for s, t, _ in finished_steps], total)
    if final and studies is None and seeds is None:
        state_at_end = checkout_state()
        uncommitted = sorted(set(state_at_start["uncommitted"]) | set(state_at_end["uncommitted"]))
        atomic_write_json(marker, {
            "profile": name, "git_revision": state_at_end["git_revision"],
            "dirty": bool(uncommitted) or state_at_start["git_revision"] != state_at_end["git_revision"],
            "uncommitted": uncommitted[:20],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_seconds": round(total, 1),
            "runs_trained": progress.trained, "runs_reused": progress.reused,
            "steps": [{"name": s.name, "parameters": s.parameters, "seconds": round(t, 1), "runs": runs}
                      for s, t, runs in finished_steps],
        })
    log(f"finished the '{name}' profile in {_minutes(total)}: {progress.trained} runs trained, "
        f"{progress.reused} reused")
    log(f"read first: {summary}")
    if name in ("cpu", "gpu") and final and studies is None and seeds is None:
        log(f"maintainers: `make publish PROFILE={name}` copies its key tables and figures next to the README")
    return summary


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
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
    studies = args.studies.split(",") if args.studies else None
    reproduce(args.profile, args.results_dir, studies=studies, seeds=seeds, final=not args.no_final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
