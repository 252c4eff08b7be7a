"""The runner's progress lines, its completion marker and timings, without executing notebooks.

The smoke profile itself runs once, in tests/test_notebooks.py (a copy of the checkout, its terminal
output and its `git status`); these tests check the runner's logic on made-up notebook output.
"""

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from lbw_utils.runs import events

from lbw_utils.runner import sequential
from lbw_utils.runner import reproduce as runner
from lbw_utils.runner.execution import LineSink
from lbw_utils.runs.experiments import _study_bar
from lbw_utils.runner.profiles import load_profile
from lbw_utils.runner.progress import Progress
from lbw_utils.runner.sequential import select_steps
from lbw_utils.runner.profiles import Step
from lbw_utils.runner.publish import check_publishable

STEPS = [Step("fashion_mnist", "01_baseline", {"seeds": [0, 1]}),
         Step("fashion_mnist", "02_tpr_analysis", {}),
         Step("", "06_paper_figures", {})]


@pytest.fixture(autouse=True)
def no_event_readers(monkeypatch):
    """These tests are the process that reads the events (not a shard whose events are passed on)."""
    monkeypatch.delenv(events.ENABLED_ENV, raising=False)


def streamed(progress: Progress, text: str) -> None:
    """Text a notebook printed, as papermill hands it to the runner."""
    sink = LineSink(progress.line)
    sink.write(text)
    sink.close()


def done_line(seed: int, seconds: float) -> str:
    """What experiments.run prints when it trains a run: the prose line, then its event line."""
    return (f"[done] fashion_mnist / baseline / seed {seed}: test acc 0.900, worst-class TPR 0.700 (Shirt), "
            f"{seconds} s\n" + events.line("done", run=f"fashion_mnist / baseline / seed {seed}", seconds=seconds) + "\n")


def plan_line(runs: int) -> str:
    return (f"[plan] {runs} runs: 1 method(s) x {runs} seed(s)\n"
            + events.line("plan", runs=runs, methods=1, seeds=runs) + "\n")


def reused_line(seed: int) -> str:
    return (f"[reused] fashion_mnist / baseline / seed {seed}: test acc 0.900, worst-class TPR 0.700 (Shirt)\n"
            + events.line("reused", run=f"fashion_mnist / baseline / seed {seed}") + "\n")


def progress_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("[progress]")]


def test_a_first_run_counts_what_it_has_seen_and_says_so():
    shown = []
    progress = Progress(STEPS, {}, shown.append)
    progress.start_step(0)
    streamed(progress, plan_line(2))
    streamed(progress, reused_line(0))
    streamed(progress, done_line(1, 4.0))
    first, second = progress_lines(shown)
    assert first.startswith("[progress] step 1/3 (fashion_mnist__01_baseline): run 1 of 2")
    assert "all steps: run 1 of at least 2" in first and "0 trained, 1 reused" in first
    assert first.endswith("time left: estimated after the first trained run")
    assert "all steps: run 2 of at least 2" in second and "1 trained, 1 reused" in second
    assert second.endswith("this step about 0m00s left, 2 later step(s) not timed yet")
    # the notebook's own lines are echoed, indented, in order
    assert shown[0] == "    [plan] 2 runs: 1 method(s) x 2 seed(s)"
    assert shown[3] == "    " + done_line(1, 4.0).splitlines()[0]
    assert not any(events.PREFIX in line for line in shown)  # event lines are read, not shown


def test_earlier_timings_give_the_total_and_the_time_left():
    timings = {"fashion_mnist__01_baseline": {"parameters": {"seeds": [0, 1]}, "runs": 2, "seconds": 100.0},
               "fashion_mnist__02_tpr_analysis": {"parameters": {}, "runs": 0, "seconds": 30.0},
               "06_paper_figures": {"runs": 0, "seconds": 60.0}}  # written before parameters were recorded
    shown = []
    progress = Progress(STEPS, timings, shown.append)
    progress.start_step(0)
    streamed(progress, plan_line(2))
    streamed(progress, done_line(0, 40.0))
    (line,) = progress_lines(shown)
    assert "run 1 of 2 | all steps: run 1 of 2 |" in line
    # one run left in this step at 40 s per run, then the two later steps' earlier wall times
    assert line.endswith("about 2m10s left")


def test_timings_of_other_parameters_are_not_used():
    timings = {"fashion_mnist__01_baseline": {"parameters": {"seeds": [0, 1, 2]}, "runs": 3, "seconds": 100.0}}
    progress = Progress(STEPS, timings, lambda line: None)
    assert progress.expected_runs(0) is None and progress.known == {}


def test_a_step_that_reused_its_runs_keeps_the_wall_time_of_the_run_that_trained_them():
    timings = {"fashion_mnist__01_baseline": {"parameters": {"seeds": [0, 1]}, "runs": 2, "seconds": 100.0}}
    progress = Progress(STEPS, timings, lambda line: None)
    progress.start_step(0)
    streamed(progress, reused_line(0))
    streamed(progress, done_line(1, 3.0))
    assert progress.finish_step(5.0) == {"parameters": {"seeds": [0, 1]}, "runs": 2, "seconds": 100.0}
    progress.start_step(1)
    assert progress.finish_step(2.0) == {"parameters": {}, "runs": 0, "seconds": 2.0}


def test_lines_printed_in_pieces_are_counted_once_whole():
    shown = []
    progress = Progress(STEPS, {}, shown.append)
    sink = LineSink(progress.line)
    # the kernel sends a print's text and its newline in separate chunks, and may cut a line anywhere
    for chunk in (plan_line(1)[:20], plan_line(1)[20:], done_line(0, 2.0)[:30], done_line(0, 2.0)[30:-40],
                  done_line(0, 2.0)[-40:], "a last line without newline"):
        sink.write(chunk)
    assert progress.trained == 1 and len(progress_lines(shown)) == 1
    sink.close()
    assert shown[-1] == "    a last line without newline"


def test_timings_fall_back_to_an_older_completion_marker(tmp_path):
    assert sequential.read_timings(tmp_path) == {}
    (tmp_path / "complete.json").write_text(json.dumps({"steps": [{"name": "a", "runs": 3, "seconds": 9.0}]}))
    assert sequential.read_timings(tmp_path) == {"a": {"name": "a", "runs": 3, "seconds": 9.0}}
    (tmp_path / "timings.json").write_text(json.dumps({"b": {"runs": 1, "seconds": 2.0}}))
    assert sequential.read_timings(tmp_path) == {"b": {"runs": 1, "seconds": 2.0}}


def git_checkout(folder):
    """A one-commit git repository in ``folder`` that ignores results/."""
    folder.mkdir()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    (folder / ".gitignore").write_text("results/\n")
    (folder / "code.py").write_text("x = 1\n")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(git + command, cwd=folder, check=True, capture_output=True)
    return folder.resolve()


def run_profile_without_notebooks(tmp_path, monkeypatch, shown):
    """reproduce() on a two-notebook profile whose steps print made-up runs instead of executing."""
    profile = tmp_path / "tiny.yaml"
    profile.write_text("description: two steps\nshared: {seeds: [0, 1]}\nstudies:\n  fashion_mnist:\n"
                       "    parameters: {dataset: fashion_mnist}\n    notebooks: [01_baseline, 02_tpr_analysis]\n")

    def fake_step(step, folder, log, *, number="", lines=None):
        log(f"==> {number}{step.name}")
        if step.notebook == "01_baseline":
            sink = LineSink(lines)
            sink.write(plan_line(2) + done_line(0, 1.5) + done_line(1, 2.5))
        return 3.0

    monkeypatch.setattr(sequential, "execute_step", fake_step)
    return runner.reproduce(str(profile), tmp_path / "checkout" / "results", log=shown.append)


def test_a_whole_profile_writes_its_marker_timings_and_ends_with_the_summary_pointer(tmp_path, monkeypatch):
    checkout = git_checkout(tmp_path / "checkout")
    monkeypatch.setattr(sequential, "REPO_ROOT", checkout)
    shown = []
    summary = run_profile_without_notebooks(tmp_path, monkeypatch, shown)
    folder = checkout / "results" / "tiny"
    assert summary == folder / "summary.md" and summary.exists()
    assert "all steps: run 2 of at least 2" in progress_lines(shown)[-1]
    assert shown[-2].startswith("finished the 'tiny' profile in 0m") and shown[-2].endswith("2 runs trained, 0 reused")
    assert shown[-1] == f"read first: {summary}"
    marker = json.loads((folder / "complete.json").read_text())
    assert marker["dirty"] is False and marker["uncommitted"] == [] and len(marker["git_revision"]) == 40
    assert [(s["name"], s["runs"]) for s in marker["steps"]] == [("fashion_mnist__01_baseline", 2),
                                                                 ("fashion_mnist__02_tpr_analysis", 0)]
    assert check_publishable(folder, "tiny")["runs_trained"] == 2
    timings = json.loads((folder / "timings.json").read_text())
    assert timings["fashion_mnist__01_baseline"]["runs"] == 2

    # the second run knows the whole profile's runs up front
    shown.clear()
    run_profile_without_notebooks(tmp_path, monkeypatch, shown)
    assert "all steps: run 2 of 2 |" in progress_lines(shown)[-1]


def test_an_untracked_file_makes_the_results_unpublishable(tmp_path, monkeypatch):
    checkout = git_checkout(tmp_path / "checkout")
    (checkout / "new_module.py").write_text("y = 2\n")
    monkeypatch.setattr(sequential, "REPO_ROOT", checkout)
    run_profile_without_notebooks(tmp_path, monkeypatch, [])
    marker = json.loads((checkout / "results" / "tiny" / "complete.json").read_text())
    assert marker["dirty"] is True and marker["uncommitted"] == ["new_module.py"]
    with pytest.raises(Exception, match=r"uncommitted changes \(new_module.py\)"):
        check_publishable(checkout / "results" / "tiny", "tiny")


def test_a_partial_run_writes_no_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(sequential, "REPO_ROOT", git_checkout(tmp_path / "checkout"))
    folder = tmp_path / "checkout" / "results" / "tiny"
    folder.mkdir(parents=True)
    (folder / "complete.json").write_text("{}")  # an earlier whole run's marker
    profile = tmp_path / "tiny.yaml"
    profile.write_text("description: one step\nshared: {seeds: [0, 1]}\nstudies:\n  fashion_mnist:\n"
                       "    parameters: {dataset: fashion_mnist}\n    notebooks: [01_baseline]\n")
    monkeypatch.setattr(sequential, "execute_step", lambda step, folder, log, number="", lines=None: 1.0)
    runner.reproduce(str(profile), tmp_path / "checkout" / "results", log=lambda line: None, seeds=[0])
    assert not (folder / "complete.json").exists()


def test_kernels_get_no_progress_bars(monkeypatch):
    launched = {}

    async def launch(self, kernel_cmd, **options):
        launched.update(options)

    monkeypatch.setattr(AsyncKernelManager, "_async_launch_kernel", launch)
    monkeypatch.setattr(sequential.IPCKernelManager, "kernel_log", None)
    asyncio.run(sequential.IPCKernelManager()._async_launch_kernel(["python"], env={"PATH": "/bin"}))
    assert launched["env"] == {"PATH": "/bin", "TQDM_DISABLE": "1"}


def test_no_study_bar_outside_a_jupyter_kernel_or_when_disabled(monkeypatch):
    assert _study_bar(3, "fashion_mnist") is None  # pytest is not a Jupyter kernel
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert _study_bar(3, "fashion_mnist") is None


def test_replacing_the_seeds_of_a_profile_with_a_tuning_study_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"seeds=\[0\] would replace the tuning seeds of \['fashion_mnist_tuning'\]"):
        runner.reproduce("cpu", tmp_path / "results", seeds=[0])
    assert not (tmp_path / "results").exists()
    # the evaluated studies alone take other seeds (checked here up to the plan: no notebook runs)
    steps = select_steps(load_profile("cpu")[1], studies=["fashion_mnist"], seeds=[0])
    assert {tuple(step.parameters["seeds"]) for step in steps if "seeds" in step.parameters} == {(0,)}


def test_a_relative_results_folder_still_names_the_same_files_once_papermill_changes_directory(tmp_path, monkeypatch):
    """papermill runs a notebook with the notebooks' folder as working directory: every path it is given
    (the output notebook, the kernel's log, results_dir) must be absolute, or a relative --results-dir breaks."""
    from lbw_utils.runner import execution

    seen = {}

    def fake_execute(source, output, *, parameters, cwd, **_):
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            seen.update(output=output, results_dir=parameters["results_dir"],
                        kernel_log=execution.IPCKernelManager.kernel_log)
            Path(output).write_text("{}")  # where the caller looks for it
        finally:
            os.chdir(previous)

    monkeypatch.setattr(execution.papermill, "execute_notebook", fake_execute)
    monkeypatch.chdir(tmp_path)
    execution.execute_step(Step("study", "01_baseline", {}), Path("relative/results"), log=lambda line: None)
    for key in ("output", "results_dir", "kernel_log"):
        assert Path(seen[key]).is_absolute() and str(tmp_path) in str(seen[key]), key
    assert (tmp_path / "relative" / "results" / "notebooks" / "study__01_baseline.ipynb").exists()


def test_runs_found_at_start_count_each_run_once_and_publish_names_them(tmp_path):
    from lbw_utils import records
    from lbw_utils.runner.publish import recorded_time

    folder = tmp_path / "cpu"
    record = {key: None for key in records.RECORD_KEYS} | {"schema_version": records.SCHEMA_VERSION}
    for where in (folder, folder / "shards" / "fashion_mnist-seed0_1"):  # merged from a shard: one run
        records.write_record(where / "records" / "fashion_mnist" / "baseline_seed0.json", record)
    records.write_record(folder / "shards" / "names5-seed0" / "records" / "names5" / "baseline_seed0.json", record)
    (folder / "records" / "fashion_mnist" / "baseline_seed1.json").write_text("{")  # interrupted mid-write
    assert sequential.runs_found(folder) == 2
    assert sequential.runs_found(tmp_path / "fresh") == 0

    assert recorded_time({"total_seconds": 90.0}) == "1.5 min recorded by `make reproduce`"
    assert recorded_time({"total_seconds": 90.0, "runs_found_at_start": 2}) == (
        "1.5 min recorded by `make reproduce`, its last invocation; 2 runs were already trained when it started, "
        "their time not counted")
