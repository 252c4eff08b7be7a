"""Run the notebooks of a profile in order with papermill and write ``summary.md``.

    python -m lbw_utils.runner.reproduce --profile cpu      # or any profile --help lists, or path/to/profile.yaml
    python -m lbw_utils.runner.reproduce --profile cpu --studies fashion_mnist --seeds 0 --no-final
    python -m lbw_utils.runner.reproduce --profile cpu --workers 1      # one process, no fan-out (auto: from the hardware)

A study fans out over processes, GPUs or cluster jobs with :mod:`lbw_utils.runner.fanout`. With
``--workers N`` (N > 1; the default ``auto`` chooses N from the hardware, see
:func:`resolve_workers`), the profile's shards (a study for one seed each, or for the profile's
``seeds_per_shard``) first train in N processes on this machine (:func:`lbw_utils.runner.fanout.fan_out`: on the
CPU one torch thread each,
on a multi-GPU machine one process per GPU), their records are merged, and then the sequential
pass below runs every notebook, finds every run finished, and computes the tables and figures.

Executed notebooks, figures, tables, run records and ``summary.md`` go to
``results/<profile>/``, and nothing is written anywhere else: copying results next to
the README is a separate, explicit step (``make publish``, :mod:`lbw_utils.runner.publish`).
An interrupted study resumes: finished run records are skipped by the notebooks
themselves, so rerunning the command only trains what is missing.

The terminal shows what each notebook prints as it runs (papermill streams it, line by
line, through :class:`lbw_utils.runner.execution.LineSink`): a line per run as it starts and ends, the training loop's
line per epoch, and after every run an overall progress line (the step's runs, the whole
profile's runs, runs trained and reused, elapsed time, estimated time left). Plain lines
only, readable in a log: no bars, no carriage returns. During a fan-out each shard's lines are
prefixed by the shard, each finished shard gets a line (shard k/N, its time), then one with the
shards done, the time elapsed and the time left; only the very last lines say the profile finished.

This module decides whether to fan out (:func:`resolve_workers`) and then runs the sequential pass
(:func:`lbw_utils.runner.sequential.run_profile`), which the fan-out's shards and merge also run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lbw_utils.runner import fanout
from lbw_utils.runner.profiles import Step, available_profiles, load_profile, profile_path
from lbw_utils.runner.sequential import FanOut, profile_folder, run_profile, select_steps

# Profiles whose runs take a second or so: `--workers auto` runs them in one process, because the fan-out's
# extra notebook executions (each shard runs its study's notebooks, and the sequential pass runs them all
# again) would cost more than training in parallel saves.
SEQUENTIAL_PROFILES = ("smoke",)
# The notebook that chooses hyper-parameters on seeds no table evaluates (lbw_utils.studies.tuning).
TUNING_NOTEBOOK = "08_tuning_seeds"


def reproduce(profile: str, results_root: str | Path | None = None, log=print, *, studies: list[str] | None = None,
              seeds: list[int] | None = None, final: bool = True, folder: str | Path | None = None,
              workers: int | str = 1) -> Path:
    """Run every step of ``profile``; return the path of the summary.

    ``studies``, ``seeds`` and ``final`` restrict the run (see :func:`lbw_utils.runner.sequential.select_steps`);
    ``folder`` replaces ``<results_root>/<profile>`` as the output folder (a shard's own folder).
    ``workers`` (an int, or 'auto': see :func:`resolve_workers`) above 1 first trains the profile's
    shards in that many processes (:func:`lbw_utils.runner.fanout.fan_out`); 1 runs everything here, in order.
    Only a whole profile run to its end writes the completion marker that ``make publish`` asks for.
    """
    _, steps = load_profile(profile)  # a wrong profile stops here, before anything is written
    steps = select_steps(steps, studies=studies, seeds=seeds, final=final)
    tuning = sorted({step.study for step in steps if step.notebook == TUNING_NOTEBOOK})
    if seeds is not None and tuning:
        # Replaced seeds would tune on the seeds that the tables evaluate.
        raise ValueError(f"seeds={seeds} would replace the tuning seeds of {tuning} too, and tuning seeds must stay "
                         f"apart from the evaluated ones; choose the other studies with --studies, or leave --seeds out")
    name = profile_path(profile).stem
    if folder is not None and workers != 1:
        raise ValueError("workers other than 1 fan out into <results root>/<profile>/shards/; a run into a folder "
                         "of its own (a shard's) runs in one process")
    shard_count = len(fanout.plan_shards(profile, studies=studies, seeds=seeds)) if workers != 1 else 1
    devices, threads = resolve_workers(workers, name, steps, shard_count)
    parallel = None
    if len(devices) > 1:
        parallel = FanOut(devices, threads, kernel_env=fanout.device_env("cpu", 1) if devices[0] == "cpu" else {},
                          run=lambda: fanout.fan_out(profile, results_root, devices=devices, threads=threads,
                                                     studies=studies, seeds=seeds, log=log))
    return run_profile(profile, results_root, log, studies=studies, seeds=seeds, final=final,
                       folder=folder if folder is not None else profile_folder(profile, results_root),
                       fan_out=parallel)


def studies_device(steps: list[Step]) -> str:
    """The ``device`` parameter of the steps that take one ('auto' when none does); several: all of them
    joined by '+', which fans out to no GPU (one process per GPU needs one kind of device)."""
    devices = sorted({str(step.parameters["device"]) for step in steps if step.study and "device" in step.parameters})
    return "+".join(devices) if devices else "auto"


def resolve_workers(workers: int | str, profile_name: str, steps: list[Step],
                    shards: int) -> tuple[list[str], int | None]:
    """(worker devices, torch threads per worker) for ``workers``; one device: the sequential path.

    ``auto``: the hardware's degree (:func:`lbw_utils.runner.fanout.hardware_workers`: on the CPU one one-thread
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True,
                        help=f"one of {', '.join(available_profiles())}, or the path of a profile YAML file")
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
