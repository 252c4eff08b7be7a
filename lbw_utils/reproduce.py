"""Run the notebooks of a profile in order with papermill and write ``summary.md``.

    python -m lbw_utils.reproduce --profile cpu      # or smoke, gpu, path/to/profile.yaml
    python -m lbw_utils.reproduce --profile cpu --studies fashion_mnist --seeds 0 --no-final

A study fans out over processes, GPUs or cluster jobs with :mod:`lbw_utils.fanout`.

Executed notebooks, figures, tables, run records and ``summary.md`` go to
``results/<profile>/``. An interrupted study resumes: finished run records are
skipped by the notebooks themselves, so rerunning the command only trains what
is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from lbw_utils.config import results_dir as default_results_root
from lbw_utils.files import atomic_write_text
from lbw_utils.profiles import NOTEBOOK_DIR, Step, load_profile, profile_path
from lbw_utils.publish import publish
from lbw_utils.records import environment, hardware_summary

KERNEL = "python3"
# Profiles whose key figures and tables are copied to docs/results/ and shown in the README.
PUBLISHED_PROFILES = ("cpu", "gpu")
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


def execute_step(step: Step, folder: Path, log=print) -> float:
    """Execute one notebook into ``folder/notebooks``; return its wall time in seconds."""
    import papermill

    output = folder / "notebooks" / f"{step.name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**step.parameters, "results_dir": str(folder.resolve())}
    log(f"==> {step.name}  {json.dumps(step.parameters, sort_keys=True)}")
    started = time.perf_counter()
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"), str(output), parameters=parameters, kernel_name=KERNEL,
        cwd=str(NOTEBOOK_DIR), log_output=True, progress_bar=False,
    )
    seconds = time.perf_counter() - started
    log(f"<== {step.name} finished in {seconds:.1f} s -> {output}")
    return seconds


def reproduce(profile: str, results_root: str | Path | None = None, log=print, *, studies: list[str] | None = None,
              seeds: list[int] | None = None, final: bool = True, folder: str | Path | None = None) -> Path:
    """Run every step of ``profile``; return the path of the summary.

    ``studies``, ``seeds`` and ``final`` restrict the run (see :func:`select_steps`);
    ``folder`` replaces ``<results_root>/<profile>`` as the output folder (a shard's own folder).
    """
    content, steps = load_profile(profile)
    steps = select_steps(steps, studies=studies, seeds=seeds, final=final)
    name = profile_path(profile).stem
    folder = Path(folder) if folder is not None else Path(results_root or default_results_root()) / name
    folder.mkdir(parents=True, exist_ok=True)
    _kernel_uses_this_python()
    timings = []
    started = time.perf_counter()
    for step in steps:
        timings.append((step, execute_step(step, folder, log)))
    summary = write_summary(folder, name, content, timings, time.perf_counter() - started)
    whole_study = final and studies is None and seeds is None
    if name in PUBLISHED_PROFILES and whole_study and folder == default_results_root() / name:
        log(f"key figures and tables: {publish(folder, name, hardware_summary())}")
    log(f"summary: {summary}")
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
    for table in sorted((folder / "tables").glob("*/methods.md")):
        lines += [f"### {table.parent.name}", "", table.read_text(encoding="utf-8"),
                  f"CSV: [{table.parent.name}/methods.csv](tables/{table.parent.name}/methods.csv), "
                  f"LaTeX: [{table.parent.name}/methods.tex](tables/{table.parent.name}/methods.tex)", ""]
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
