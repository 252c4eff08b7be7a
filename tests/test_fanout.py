"""lbw_utils.runner.fanout: shard planning, commands, device environments, merging records, executor config.

Nothing here trains or needs a GPU: subprocesses are stand-ins, jobs are never submitted.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest

from lbw_utils.runs import events

from lbw_utils import records

from lbw_utils.runner import fanout, sequential
from lbw_utils.runner.fanout import Shard
from lbw_utils.runner.fanout import local as fanout_local
from lbw_utils.runner.profiles import ProfileError, load_profile
from lbw_utils.runner.sequential import select_steps


def test_smoke_profile_has_one_shard_per_study_and_seed():
    shards = fanout.plan_shards("smoke")
    # seed-major: every study's first seed before any second seed
    # (the baseline search's study keeps its two tuning seeds in one shard: its stages choose over both)
    assert [s.name for s in shards] == ["baseline_recipe-seed100_101", "fashion_mnist_tuning-seed100",
                                        "fashion_mnist-seed0", "names5-seed0", "frontier-seed0", "length-seed0",
                                        "fashion_mnist_tuning-seed101", "fashion_mnist-seed1", "names5-seed1",
                                        "frontier-seed1", "length-seed1"]
    assert shards[2] == Shard("fashion_mnist", (0,))


def test_shards_group_seeds_and_filter_studies():
    shards = fanout.plan_shards("gpu", seeds_per_shard=2, studies=["cifar10"])
    assert [s.seeds for s in shards] == [(0, 1), (2, 3), (4,)]
    assert shards[1].name == "cifar10-seed2_3"
    # the cpu profile's studies say minutes_per_seed: the longest shards first
    assert [s.name for s in fanout.plan_shards("cpu", seeds=[7])] == ["fashion_mnist-seed7", "names42-seed7",
                                                                    "fashion_mnist_tuning-seed7", "names5-seed7"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_seeds_per_shard_must_be_positive(bad):
    with pytest.raises(ValueError, match="seeds_per_shard"):
        fanout.plan_shards("smoke", seeds_per_shard=bad)


def test_unknown_study_or_shard_is_named():
    with pytest.raises(ValueError, match="not in profile"):
        fanout.plan_shards("smoke", studies=["imagenet"])
    with pytest.raises(ValueError, match="no shard 'cifar10-seed0'"):
        fanout.find_shard("smoke", "cifar10-seed0")


def test_select_steps_replaces_seeds_and_drops_final_steps():
    _, steps = load_profile("gpu")
    chosen = select_steps(steps, studies=["names5"], seeds=[3], final=False)
    assert [step.notebook for step in chosen] == ["05_name_nationality_rnn"]
    assert chosen[0].parameters["seeds"] == [3]
    # notebooks without a seeds parameter (02) are kept as they are; the final step only with final=True
    image = select_steps(steps, studies=["cifar10"], seeds=[1], final=True)
    assert [step.notebook for step in image][-1] == "06_paper_figures"
    assert "seeds" not in image[1].parameters
    with pytest.raises(ValueError, match="not in this profile"):
        select_steps(steps, studies=["nope"])


def test_shard_command_and_device_environment():
    command = fanout.shard_command("gpu", Shard("cifar10", (3,)), "/scratch/results", python="python")
    assert command == ["python", "-m", "lbw_utils.runner.fanout", "run-shard", "--profile", "gpu", "--shard",
                       "cifar10-seed3", "--results-dir", "/scratch/results"]
    assert fanout.device_env("1") == {"CUDA_VISIBLE_DEVICES": "1"}
    assert fanout.device_env("cuda:2") == {"CUDA_VISIBLE_DEVICES": "2"}
    assert fanout.device_env("cpu", threads=1) == {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
                                                    "MKL_NUM_THREADS": "1"}
    with pytest.raises(ValueError, match="GPU index"):
        fanout.device_env("tpu")
    devices, threads = fanout.local_devices("0,2")
    assert devices == ["0", "2"] and threads is None
    devices, threads = fanout.local_devices(cpu_workers=2)
    assert devices == ["cpu", "cpu"] and threads >= 1


def test_run_local_runs_every_shard_once_one_per_device(tmp_path):
    """Stand-in workers record their shard, device and the time they ran; no notebook is executed."""
    shards = [Shard("a", (seed,)) for seed in range(5)]
    stamp = tmp_path / "stamps"
    stamp.mkdir()
    script = ("import os, sys, time; start = time.time(); time.sleep(0.2); "
              "open(sys.argv[1], 'w').write(f\"{os.environ['CUDA_VISIBLE_DEVICES']} {start} {time.time()}\")")

    def command_for(profile, shard, results_root, **_):
        return [sys.executable, "-c", script, str(stamp / shard.name)]

    results = fanout.run_local("smoke", ["0", "1"], tmp_path, shards=shards, command_for=command_for,
                               log=lambda message: None)
    assert [r["shard"] for r in results] == [s.name for s in shards]
    assert all(r["exit_code"] == 0 for r in results)
    spans = {}
    for shard in shards:
        device, start, end = (stamp / shard.name).read_text().split()
        assert device in ("0", "1")
        spans.setdefault(device, []).append((float(start), float(end)))
        assert (tmp_path / "smoke" / "shards" / shard.name / "log.txt").exists()
    for intervals in spans.values():  # a device never runs two shards at once
        intervals.sort()
        assert all(later[0] >= earlier[1] - 1e-3 for earlier, later in zip(intervals, intervals[1:]))


def _record(dataset: str, label: str, seed: int, accuracy: float = 0.9) -> dict:
    return {"schema_version": records.SCHEMA_VERSION, "dataset": dataset, "method": {"name": label},
            "method_label": label, "seed": seed, "test": {"accuracy": accuracy, "tpr": [0.9, math.nan]},
            "val": {"accuracy": 0.9, "tpr": [0.9, 0.8]}, "parameters": {}}


def _write_shard(folder: Path, shard: Shard, labels: list[str], finished: bool = True) -> None:
    target = fanout.shard_folder(folder, shard)
    for seed in shard.seeds:
        for label in labels:
            records.write_record(records.record_path(target, shard.study, label, seed), _record(shard.study, label, seed))
            artifact = records.artifact_path(target, shard.study, label, seed)
            artifact.parent.mkdir(parents=True, exist_ok=True)
            artifact.write_bytes(f"{label}{seed}".encode())
    if finished:
        (target / fanout.MARKER).write_text("{}")


def test_merge_records_copies_every_shard_and_keeps_what_is_there(tmp_path):
    shards = [Shard("fashion_mnist", (0,)), Shard("fashion_mnist", (1,)), Shard("names5", (0,))]
    for shard in shards:
        _write_shard(tmp_path, shard, ["baseline", "ema-alpha0.01"])
    # the main folder already holds seed 1's baseline, from another run of the same unit
    existing = records.record_path(tmp_path, "fashion_mnist", "baseline", 1)
    records.write_record(existing, _record("fashion_mnist", "baseline", 1, accuracy=0.5))
    report = fanout.merge_records(tmp_path, shards)
    assert len(report["copied"]) == 5
    assert report["kept"] == report["differing"] == ["records/fashion_mnist/baseline__seed1.json"]
    merged = records.load_records(tmp_path)
    assert sorted((r["dataset"], r["method_label"], r["seed"]) for r in merged) == sorted(
        (s.study, label, s.seeds[0]) for s in shards for label in ["baseline", "ema-alpha0.01"])
    assert records.read_record(existing)["test"]["accuracy"] == 0.5  # kept, not overwritten
    artifact = records.artifact_path(tmp_path, "names5", "ema-alpha0.01", 0)
    assert artifact.read_bytes() == b"ema-alpha0.010"
    # merging twice changes nothing
    again = fanout.merge_records(tmp_path, shards)
    assert again["copied"] == [] and len(again["kept"]) == 6


def test_merge_leaves_out_combinations_a_shard_chose_on_its_own_seeds(tmp_path):
    shard = Shard("fashion_mnist", (1,))
    _write_shard(tmp_path, shard, ["baseline", "ema-alpha0.01"])
    combination = _record("fashion_mnist", "ema-alpha0.01+posthoc-budget-drop0.005", 1)
    combination["method"] = {"name": "posthoc", "objective": "budget", "of": {"name": "ema", "alpha": 0.01}}
    plain_posthoc = _record("fashion_mnist", "baseline+posthoc-worst", 1)
    plain_posthoc["method"] = {"name": "posthoc", "objective": "worst"}
    source = fanout.shard_folder(tmp_path, shard)
    for record in (combination, plain_posthoc):
        records.write_record(records.record_path(source, "fashion_mnist", record["method_label"], 1), record)
    report = fanout.merge_records(tmp_path, [shard])
    assert report["recomputed"] == ["records/fashion_mnist/ema-alpha0.01+posthoc-budget-drop0.005__seed1.json"]
    assert sorted(r["method_label"] for r in records.load_records(tmp_path)) == [
        "baseline", "baseline+posthoc-worst", "ema-alpha0.01"]


def test_merge_refuses_unfinished_shards(tmp_path):
    shards = fanout.plan_shards("smoke")
    for shard in shards[:-1]:
        _write_shard(tmp_path / "smoke", shard, ["baseline"])
    _write_shard(tmp_path / "smoke", shards[-1], ["baseline"], finished=False)
    assert fanout.unfinished_shards(tmp_path / "smoke", shards) == [shards[-1].name]
    with pytest.raises(RuntimeError, match=shards[-1].name):
        fanout.merge("smoke", tmp_path, log=lambda message: None)
    report = fanout.merge("smoke", tmp_path, allow_missing=True, run_notebooks=False, log=lambda message: None)
    assert len(report["copied"]) == sum(len(shard.seeds) for shard in shards)  # one record per seed
    assert report["unfinished_shards"] == [shards[-1].name]


def test_slurm_parameters():
    parameters = fanout.slurm_parameters(timeout_min=90, partition="gpu", account="lab", setup=["module load cuda"])
    assert parameters["timeout_min"] == 90 and parameters["gpus_per_node"] == 1
    assert parameters["slurm_partition"] == "gpu" and parameters["slurm_account"] == "lab"
    assert parameters["slurm_setup"] == ["module load cuda"]
    assert "slurm_qos" not in fanout.slurm_parameters()


def test_submitit_executor_is_configured_not_submitted(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    # submitit's SLURM executor insists on finding srun; pretend, so that its config can be built here
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/srun" if name == "srun" else real_which(name))
    parameters = fanout.slurm_parameters(timeout_min=90, partition="gpu", cpus_per_task=6, mem_gb=40)
    executor = fanout.make_executor(tmp_path / "logs", parameters, cluster="slurm")
    assert isinstance(executor, submitit.AutoExecutor)
    slurm = executor._executor.parameters  # what goes into the sbatch file
    assert slurm["partition"] == "gpu" and slurm["time"] == 90 and slurm["gpus_per_node"] == 1
    assert slurm["cpus_per_task"] == 6 and slurm["array_parallelism"] == 64
    script = executor._executor._make_submission_file_text("echo shard", "uid")
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --gpus-per-node=1" in script
    with pytest.raises(NameError):  # a misspelt parameter is refused before anything is submitted
        fanout.make_executor(tmp_path / "logs", {"slurm_partitionn": "gpu"}, cluster="slurm")


def test_cli_plan_prints_the_shards(capsys):
    assert fanout.main(["plan", "--profile", "smoke", "--seeds-per-shard", "2"]) == 0
    assert capsys.readouterr().out.split() == ["baseline_recipe-seed100_101", "fashion_mnist_tuning-seed100_101",
                                               "fashion_mnist-seed0_1",
                                               "names5-seed0_1", "frontier-seed0_1", "length-seed0_1"]


def test_cli_slurm_dry_run_submits_nothing(capsys, tmp_path):
    assert fanout.main(["slurm", "--profile", "smoke", "--results-dir", str(tmp_path), "--partition", "gpu",
                        "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"slurm_partition": "gpu"' in out and "names5-seed1" in out
    assert not (tmp_path / "smoke").exists()


def test_merge_copies_the_records_of_nested_results_folders(tmp_path):
    # The training-length study keeps one results folder per (arm, budget) inside the shard's folder.
    shard = Shard("length", (0,))
    nested = fanout.shard_folder(tmp_path, shard) / "length" / "main-epochs4"
    records.write_record(records.record_path(nested, "fashion_mnist", "baseline", 0),
                         _record("fashion_mnist", "baseline", 0))
    artifact = records.artifact_path(nested, "fashion_mnist", "baseline", 0)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(b"logits")
    report = fanout.merge_records(tmp_path, [shard])
    assert report["copied"] == ["length/main-epochs4/records/fashion_mnist/baseline__seed0.json"]
    merged = tmp_path / "length" / "main-epochs4"
    assert records.is_finished(records.record_path(merged, "fashion_mnist", "baseline", 0))
    assert records.artifact_path(merged, "fashion_mnist", "baseline", 0).read_bytes() == b"logits"


# --- what a fan-out prints: shards say they are shards; only the profile's end says it finished -----


def two_shard_profile(tmp_path: Path) -> Path:
    profile = tmp_path / "tiny.yaml"
    profile.write_text("description: one study, two seeds\nshared: {seeds: [0, 1], device: cpu}\nstudies:\n"
                       "  fashion_mnist:\n    parameters: {dataset: fashion_mnist}\n    notebooks: [01_baseline]\n")
    return profile


# A stand-in shard: the prose and event lines of one trained run, then the shard's own last line.
SHARD_SCRIPT = """
import sys, time
from lbw_utils.runs import events
seed = sys.argv[1]
time.sleep(0.2 if seed == "0" else 1.5)  # far apart, so the finishing order is fixed on a loaded machine
print(f"    [done] fashion_mnist / baseline / seed {seed}: test acc 0.500, worst-class TPR 0.100 (Shirt), 0.2 s")
print(events.line("done", run=f"fashion_mnist / baseline / seed {seed}", seconds=0.2))
print(f"shard 'fashion_mnist-seed{seed}' finished in 0m00s: 1 runs trained, 0 reused; its summary: summary.md")
"""


def test_fan_out_lines_name_the_shards_and_give_the_time_left(tmp_path, monkeypatch):
    def command_for(profile, shard, results_root, **_):
        return [sys.executable, "-c", SHARD_SCRIPT, str(shard.seeds[0])]

    monkeypatch.setattr(fanout_local, "shard_command", command_for)
    shown = []
    report = fanout.fan_out(str(two_shard_profile(tmp_path)), tmp_path / "results", devices=["cpu", "cpu"], threads=1,
                            log=shown.append)
    # the shards' event lines were counted, not shown; their prose is shown, prefixed by the shard
    assert sorted(report["trained"]) == ["fashion_mnist / baseline / seed 0", "fashion_mnist / baseline / seed 1"]
    assert not any(events.PREFIX in line for line in shown)
    assert "[fashion_mnist-seed1]     [done] fashion_mnist / baseline / seed 1: test acc 0.500, worst-class TPR " \
           "0.100 (Shirt), 0.2 s" in shown
    # the two workers' threads race to announce their start, so only the set of lines is fixed
    started = sorted(line for line in shown if " started on " in line)
    assert started == ["shard 1/2 'fashion_mnist-seed0' started on the CPU",
                       "shard 2/2 'fashion_mnist-seed1' started on the CPU"]
    finished = [line for line in shown if line.startswith("shard ") and " finished in " in line]
    assert [line.split(" finished")[0] for line in finished] == ["shard 1/2 'fashion_mnist-seed0'",
                                                                 "shard 2/2 'fashion_mnist-seed1'"]
    assert all(line.endswith(" on the CPU") for line in finished)
    overall = [line for line in shown if line.startswith("[fan-out]")]
    assert overall[0].startswith("[fan-out] 1 of 2 shards done | 1 runs trained, 0 reused | elapsed 0m")
    assert "left for the other shards, then the merge and the notebooks' tables and figures" in overall[0]
    assert overall[1].startswith("[fan-out] 2 of 2 shards done | 2 runs trained, 0 reused | elapsed 0m")
    assert overall[1].endswith("next: the merge and the notebooks' tables and figures")
    # each overall line follows its shard's line; nothing says a profile finished
    assert shown.index(overall[0]) == shown.index(finished[0]) + 1
    assert not any(line.startswith(("finished the", "read first")) for line in shown)
    assert shown[-1].startswith("<== fan-out finished in ")


def test_the_overall_line_estimates_from_the_shards_done():
    line = fanout.fan_out_line(done=1, total=4, elapsed=120.0, trained=3, reused=1)
    assert line == ("[fan-out] 1 of 4 shards done | 3 runs trained, 1 reused | elapsed 2m00s | about 6m00s left for "
                    "the other shards, then the merge and the notebooks' tables and figures")
    # with the profile's estimates: the first shard was the longest, half of the estimated minutes
    line = fanout.fan_out_line(done=1, total=4, elapsed=120.0, trained=3, reused=1, share_done=0.5)
    assert "about 2m00s left for the other shards" in line


def test_the_estimated_minutes_come_from_the_studies():
    shards = fanout.plan_shards("cpu", seeds=[7])
    assert fanout.estimated_minutes("cpu", shards) == {"fashion_mnist-seed7": 4.5, "names42-seed7": 4.4,
                                                       "fashion_mnist_tuning-seed7": 3.6, "names5-seed7": 0.85}
    assert fanout.estimated_minutes("smoke", fanout.plan_shards("smoke")) is None


def test_a_shard_ends_with_its_own_line_not_the_profiles(tmp_path, monkeypatch):
    def fake_step(step, folder, log, *, number="", lines=None):
        lines(events.line("done", run="fashion_mnist / baseline / seed 1", seconds=1.0))
        return 1.0

    monkeypatch.setattr(sequential, "execute_step", fake_step)
    shown = []
    result = fanout.run_shard(str(two_shard_profile(tmp_path)), "fashion_mnist-seed1", tmp_path / "results",
                              log=shown.append)
    assert result["shard"] == "fashion_mnist-seed1"
    summary = tmp_path / "results" / "tiny" / "shards" / "fashion_mnist-seed1" / "summary.md"
    assert shown[-1] == f"shard 'fashion_mnist-seed1' finished in 0m00s: 1 runs trained, 0 reused; its summary: {summary}"
    assert not any(line.startswith(("finished the", "read first")) for line in shown)


def test_a_profile_sets_the_seeds_a_shard_trains_and_a_bad_value_is_refused(tmp_path):
    profile = two_shard_profile(tmp_path)
    profile.write_text(profile.read_text() + "seeds_per_shard: 2\n")
    assert fanout.plan_shards(str(profile)) == [Shard("fashion_mnist", (0, 1))]
    assert len(fanout.plan_shards(str(profile), seeds_per_shard=1)) == 2  # an explicit value wins
    profile.write_text(profile.read_text().replace("seeds_per_shard: 2", "seeds_per_shard: 0"))
    with pytest.raises(ProfileError, match=r"seeds_per_shard=0 must be a positive integer"):
        fanout.plan_shards(str(profile))


def test_a_study_sets_its_own_seeds_per_shard_and_the_longest_shards_start_first(tmp_path):
    profile = tmp_path / "two.yaml"
    profile.write_text("description: two studies\nshared: {seeds: [0, 1, 2], device: cpu}\nseeds_per_shard: 2\n"
                       "studies:\n"
                       "  short:\n    parameters: {dataset: fashion_mnist}\n    notebooks: [01_baseline]\n"
                       "    minutes_per_seed: 1\n"
                       "  long:\n    parameters: {dataset: fashion_mnist}\n    notebooks: [01_baseline]\n"
                       "    seeds_per_shard: 1\n    minutes_per_seed: 1.5\n")
    # short: shards of 2 seeds (2 and 1 minutes), long: of 1 seed (1.5 minutes each), longest first (ties: seed-major)
    assert [(s.study, s.seeds) for s in fanout.plan_shards(str(profile))] == [
        ("short", (0, 1)), ("long", (0,)), ("long", (1,)), ("long", (2,)), ("short", (2,))]
    assert [s.seeds for s in fanout.plan_shards(str(profile), seeds_per_shard=3)] == [(0, 1, 2)] * 2  # explicit wins
    profile.write_text(profile.read_text().replace("minutes_per_seed: 1.5", "minutes_per_seed: -1"))
    with pytest.raises(ProfileError, match=r"study 'long': minutes_per_seed=-1 must be a positive number"):
        fanout.plan_shards(str(profile))
