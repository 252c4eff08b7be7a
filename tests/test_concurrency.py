"""A study's runs trained by parallel workers (`reproduce --workers N`) give the sequential path's records.

``test_two_workers_give_the_records_of_one_process`` executes real notebooks: two studies of the smoke
profile (Fashion-MNIST's baseline notebook only, and the names notebook; tiny subsets, 2 seeds: 4 shards),
once in one process and once with two workers, into two folders, every run with one torch thread (the
metrics of a CPU run depend on its thread count; docs/reproducibility.md). The other tests check the
choice of workers, the sharing of finished records with the shards, the streamed lines and the
counts, with stand-ins for the notebooks and the workers.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lbw_utils.runs import events

from lbw_utils import records

from lbw_utils.runner import fanout, sequential
from lbw_utils.runner import reproduce as runner
from lbw_utils.runner.execution import LineSink
from lbw_utils.runner.fanout import Shard, hardware
from lbw_utils.runner.profiles import Step, profile_path

# --- the real thing: two workers against one process ---------------------------------------------

def two_study_profile(path: Path) -> Path:
    """The smoke profile's Fashion-MNIST study (its baseline notebook only) and names study, 2 seeds, on the
    CPU; taken from smoke.yaml so that it follows the notebooks' parameters."""
    smoke = yaml.safe_load(profile_path("smoke").read_text())
    image = {key: value for key, value in smoke["studies"]["fashion_mnist"].items() if key != "overrides"}
    path.write_text(yaml.safe_dump({
        "description": "two studies on tiny subsets, 2 seeds (tests/test_concurrency.py)",
        "shared": {**smoke.get("shared", {}), "seeds": [0, 1], "device": "cpu"},
        "studies": {"fashion_mnist": {**image, "notebooks": ["01_baseline"]}, "names5": smoke["studies"]["names5"]},
    }))
    return path

# What differs between two identical runs: when they ran and how long they took, and where.
VOLATILE = ("created", "wall_seconds", "train_seconds", "environment")
VOLATILE_HISTORY = ("epoch_seconds", "train_seconds")
VOLATILE_COMPUTE = ("seconds_with_teachers",)  # the compute's seconds are timings too; its network counts are not


def comparable(record: dict) -> str:
    """The record without its timings and environment, as text (NaN compares equal to NaN there)."""
    kept = {key: value for key, value in record.items() if key not in VOLATILE}
    if isinstance(kept.get("history"), dict):
        kept["history"] = {key: value for key, value in kept["history"].items() if key not in VOLATILE_HISTORY}
    if isinstance(kept.get("compute"), dict):
        kept["compute"] = {key: value for key, value in kept["compute"].items() if key not in VOLATILE_COMPUTE}
    return json.dumps(kept, sort_keys=True)


def records_of(folder: Path) -> dict[str, dict]:
    """Every record of a profile folder: its own and those of a second model family's folder beside them
    (notebook 05 trains the n-gram bag's runs in ``<results>/ngram-bag``); not the shards' copies."""
    found = sorted(folder.glob("records/*/*.json")) + sorted(folder.glob("*/records/*/*.json"))
    return {str(path.relative_to(folder)): records.read_record(path) for path in found}


@pytest.mark.profile_run  # two studies trained twice: `make test-profiles` and CI, not `make test`
def test_two_workers_give_the_records_of_one_process(tmp_path, monkeypatch):
    profile = two_study_profile(tmp_path / "concurrency.yaml")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the one-process path's kernel: one thread, as each worker's
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    sequential_lines, parallel_lines = [], []
    runner.reproduce(str(profile), tmp_path / "one", log=sequential_lines.append, workers=1)
    runner.reproduce(str(profile), tmp_path / "two", log=parallel_lines.append, workers=2)
    one, two = tmp_path / "one" / "concurrency", tmp_path / "two" / "concurrency"

    sequential, parallel = records_of(one), records_of(two)
    assert len(sequential) >= 4 and sorted(parallel) == sorted(sequential)
    assert {path.split("/")[-2] for path in sequential} == {"fashion_mnist", "names5"}
    for path, record in sequential.items():
        assert record["environment"]["torch_threads"] == parallel[path]["environment"]["torch_threads"] == 1
        assert comparable(parallel[path]) == comparable(record), f"{path} differs between 1 and 2 workers"
    for artifact in sorted(one.glob("artifacts/*/*.pt")) + sorted(one.glob("*/artifacts/*/*.pt")):  # bit for bit
        mine = torch.load(artifact, weights_only=True)
        theirs = torch.load(two / artifact.relative_to(one), weights_only=True)
        assert mine.keys() == theirs.keys()
        for key in mine:
            values = mine[key] if isinstance(mine[key], dict) else {"": mine[key]}
            others = theirs[key] if isinstance(theirs[key], dict) else {"": theirs[key]}
            assert values.keys() == others.keys()
            assert all(torch.equal(values[name], others[name]) for name in values), f"{artifact.name}: {key}"

    # the workers trained every run; the pass after them read each back, and says who trained it
    trained = len(sequential)
    assert sequential_lines[-2].endswith(f": {trained} runs trained, 0 reused")
    assert parallel_lines[-2].endswith(f": {trained} runs trained, 0 reused "
                                       f"({trained} of them by 2 parallel workers, 1 torch thread each)")
    shards = ["fashion_mnist-seed0", "names5-seed0", "fashion_mnist-seed1", "names5-seed1"]
    for shard in shards:
        # the shards' output arrives as whole lines, each prefixed by its shard
        assert any(line.startswith(f"[{shard}]     [done] ") for line in parallel_lines), shard
        assert (two / "shards" / shard / "shard.json").exists()
    assert not any("\r" in line for line in parallel_lines)
    markers = [json.loads((folder / "complete.json").read_text()) for folder in (one, two)]
    assert markers[0]["runs_trained"] == markers[1]["runs_trained"] == trained
    assert markers[0]["workers"] == 1 and markers[1]["workers"] == 2 and markers[1]["threads_per_worker"] == 1
    assert markers[1]["runs_trained_by_workers"] == trained and markers[1]["runs_reused"] == 0
    assert sorted(path.name for path in (tmp_path / "two").iterdir()) == ["concurrency"]  # nothing elsewhere


# --- how many workers ----------------------------------------------------------------------------


@pytest.fixture
def machine(monkeypatch):
    """Pretend hardware: ``machine(cores=, gpus=, memory_gib=)``."""
    def pretend(cores: int = 2, gpus: int = 0, memory_gib: float | None = 64):
        # where hardware_workers and workers_for look them up
        monkeypatch.setattr(hardware, "usable_cores", lambda: cores)
        monkeypatch.setattr(hardware, "_cuda_devices", lambda: gpus)
        monkeypatch.setattr(hardware, "_memory_bytes", lambda: None if memory_gib is None else int(memory_gib * 2 ** 30))
    return pretend


def test_auto_workers_follow_the_hardware(machine):
    machine(cores=2)
    assert fanout.hardware_workers("auto", shards=6) == (["cpu", "cpu"], 1)  # one one-thread process per core
    machine(cores=16, memory_gib=9)
    assert fanout.hardware_workers("cpu", shards=20) == (["cpu"] * 4, 1)  # 2 GiB per worker
    machine(cores=16)
    assert fanout.hardware_workers("cpu", shards=6) == (["cpu"] * 6, 1)  # never more workers than shards
    machine(cores=1)
    assert fanout.hardware_workers("auto", shards=6) == (["auto"], None)  # one: the sequential path
    machine(cores=32, gpus=4)
    assert fanout.hardware_workers("cuda", shards=10) == (["0", "1", "2", "3"], 8)  # one per GPU, cores shared
    assert fanout.hardware_workers("auto", shards=3) == (["0", "1", "2"], 10)
    assert fanout.hardware_workers("cpu", shards=10) == (["cpu"] * 10, 1)  # a CPU study ignores the GPUs
    assert len(fanout.hardware_workers("cuda:1", shards=10)[0]) == 1  # a named GPU: one process
    machine(cores=32, gpus=1)
    assert len(fanout.hardware_workers("cuda", shards=10)[0]) == 1  # one GPU: one process, as before


def test_cpu_degree_spares_a_last_round_with_idle_cores():
    assert [fanout.cpu_degree(shards, 2) for shards in (1, 2, 3, 4, 6, 8)] == [1, 2, 3, 2, 2, 2]
    assert fanout.cpu_degree(3, 2, cap=2) == 2  # memory first
    assert [fanout.cpu_degree(shards, 1) for shards in (1, 3, 6)] == [1, 1, 1]
    assert fanout.cpu_degree(6, 16) == 6 and fanout.cpu_degree(40, 16) == 20


def test_explicit_workers_train_with_one_thread_on_the_cpu_whatever_their_number(machine):
    machine(cores=16)
    assert fanout.workers_for(3, "cpu") == (["cpu"] * 3, 1)
    machine(cores=16, gpus=2)
    assert fanout.workers_for(4, "cuda") == (["0", "1", "0", "1"], 4)
    with pytest.raises(ValueError, match="one worker"):
        fanout.workers_for(2, "cuda:1")
    with pytest.raises(ValueError, match="workers"):
        fanout.workers_for(0, "cpu")


def test_resolve_workers(machine):
    machine(cores=8)
    steps = [Step("fashion_mnist", "01_baseline", {"seeds": [0, 1], "device": "cpu"}),
             Step("fashion_mnist", "02_tpr_analysis", {}), Step("", "06_paper_figures", {})]
    assert runner.studies_device(steps) == "cpu"
    assert runner.resolve_workers("auto", "smoke", steps, 6) == (["cpu"], None)  # runs of a second: one process
    assert runner.resolve_workers("auto", "cpu", steps, 6) == (["cpu"] * 6, 1)
    assert runner.resolve_workers(1, "cpu", steps, 6) == (["cpu"], None)
    assert runner.resolve_workers(2, "smoke", steps, 6) == (["cpu", "cpu"], 1)  # asked for: honoured
    for bad in (0, -1, True, "two"):
        with pytest.raises(ValueError, match="workers"):
            runner.resolve_workers(bad, "cpu", steps, 6)
    assert runner._workers_argument("auto") == "auto" and runner._workers_argument("3") == 3
    with pytest.raises(Exception, match="positive integer"):
        runner._workers_argument("0")


def test_a_run_into_a_folder_of_its_own_runs_in_one_process(tmp_path):
    with pytest.raises(ValueError, match="one process"):
        runner.reproduce(str(tiny_profile(tmp_path)), workers=2, folder=tmp_path / "shard")


def test_a_shard_of_other_seeds_is_found_by_its_command(tmp_path):
    profile = str(tiny_profile(tmp_path))
    command = fanout.shard_command(profile, Shard("fashion_mnist", (7,)), "/r", seeds=[7, 8], python="python")
    assert command[-2:] == ["--seeds", "7,8"]
    assert fanout.find_shard(profile, "fashion_mnist-seed7", seeds=[7, 8]) == Shard("fashion_mnist", (7,))


# --- the shards start from what the profile folder has finished -----------------------------------


def _record(dataset: str, label: str, seed: int) -> dict:
    return {"schema_version": records.SCHEMA_VERSION, "dataset": dataset, "method": {"name": label},
            "method_label": label, "seed": seed, "test": {"accuracy": 0.9, "tpr": [0.9, math.nan]},
            "val": {"accuracy": 0.9, "tpr": [0.9, 0.8]}, "parameters": {}}


def _finished(root: Path, dataset: str, label: str, seed: int) -> Path:
    path = records.record_path(root, dataset, label, seed)
    records.write_record(path, _record(dataset, label, seed))
    artifact = records.artifact_path(root, dataset, label, seed)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(f"{dataset}{label}{seed}".encode())
    return path


def test_finished_records_are_shared_with_the_shards_of_their_seed(tmp_path):
    for seed in (0, 1):
        _finished(tmp_path, "fashion_mnist", "baseline", seed)
    _finished(tmp_path / "length" / "main-epochs4", "fashion_mnist", "baseline", 1)  # a nested results folder
    (tmp_path / "records" / "fashion_mnist" / "broken__seed0.json").write_text("{")  # unfinished: not shared
    shards = [Shard("fashion_mnist", (0,)), Shard("length", (1,))]
    own = _finished(fanout.shard_folder(tmp_path, shards[1]), "fashion_mnist", "baseline", 1)
    own.write_text(own.read_text().replace("0.9", "0.5", 1))  # the shard's own finished copy is kept

    shared = fanout.share_finished_records(tmp_path, shards)
    assert sorted(shared) == ["shards/fashion_mnist-seed0/records/fashion_mnist/baseline__seed0.json",
                              "shards/length-seed1/length/main-epochs4/records/fashion_mnist/baseline__seed1.json"]
    first = fanout.shard_folder(tmp_path, shards[0])
    copy = records.record_path(first, "fashion_mnist", "baseline", 0)
    assert copy.read_bytes() == records.record_path(tmp_path, "fashion_mnist", "baseline", 0).read_bytes()
    assert records.artifact_path(first, "fashion_mnist", "baseline", 0).read_bytes() == b"fashion_mnistbaseline0"
    assert not records.record_path(first, "fashion_mnist", "baseline", 1).exists()  # another seed's shard
    assert '"accuracy": 0.5' in own.read_text()
    assert fanout.share_finished_records(tmp_path, shards) == []  # nothing twice
    # and the merge afterwards finds the shards' copies already there, identical
    report = fanout.merge_records(tmp_path, shards)
    assert report["copied"] == [] and report["differing"] == ["records/fashion_mnist/baseline__seed1.json"]


# --- the workers' output: whole lines, prefixed, counted -------------------------------------------


def test_run_local_hands_on_whole_lines_as_they_come(tmp_path):
    # a worker that prints a line in pieces, flushing in between, then another line
    script = ("import sys, time; sys.stdout.write('[done] a / b '); sys.stdout.flush(); time.sleep(0.1); "
              "print('/ seed 0: test acc 0.5, 1.0 s'); print('last', file=sys.stderr)")
    shards = [Shard("a", (0,)), Shard("a", (1,))]
    got, finished = [], []
    results = fanout.run_local("smoke", ["cpu", "cpu"], tmp_path, shards=shards,
                               command_for=lambda *args, **kwargs: [sys.executable, "-c", script],
                               log=lambda message: None, lines=lambda shard, line: got.append((shard.name, line)),
                               after=finished.append)
    assert [r["exit_code"] for r in results] == [0, 0] and len(finished) == 2
    for shard in shards:
        assert [line for name, line in got if name == shard.name] == ["[done] a / b / seed 0: test acc 0.5, 1.0 s",
                                                                      "last"]
        log = (fanout.shard_folder(tmp_path / "smoke", shard) / "log.txt").read_text()
        assert log == "[done] a / b / seed 0: test acc 0.5, 1.0 s\nlast\n"


def tiny_profile(tmp_path: Path) -> Path:
    profile = tmp_path / "tiny.yaml"
    profile.write_text("description: one step\nshared: {seeds: [0, 1], device: cpu}\nstudies:\n  fashion_mnist:\n"
                       "    parameters: {dataset: fashion_mnist}\n    notebooks: [01_baseline]\n")
    return profile


def reused_line(seed: int) -> str:
    """What experiments.run prints when it reads a run back: the prose line, then its event line."""
    return (f"[reused] fashion_mnist / baseline / seed {seed}: test acc 0.900, worst-class TPR 0.700 (Shirt) "
            f"(finished record baseline__seed{seed}.json)\n"
            + events.line("reused", run=f"fashion_mnist / baseline / seed {seed}") + "\n")


def test_the_pass_after_the_workers_counts_their_runs_as_trained(tmp_path, monkeypatch):
    calls, kernel_env = [], []

    def fake_fan_out(profile, results_root, *, devices, threads, studies, seeds, log):
        calls.append((devices, threads))
        return {"shards": ["fashion_mnist-seed0", "fashion_mnist-seed1"], "devices": devices, "threads": threads,
                "trained": ["fashion_mnist / baseline / seed 0", "fashion_mnist / baseline / seed 1"], "reused": 0,
                "seconds": 12.0, "merged": {}}

    def fake_step(step, folder, log, *, number="", lines=None):
        kernel_env.append(dict(sequential.IPCKernelManager.kernel_env))
        sink = LineSink(lines)
        sink.write("[plan] 3 runs: 1 method(s) x 3 seed(s)\n" + events.line("plan", runs=3, methods=1, seeds=3) + "\n"
                   + reused_line(0) + reused_line(1) + reused_line(2))
        return 1.0

    monkeypatch.setattr(fanout, "fan_out", fake_fan_out)
    monkeypatch.setattr(sequential, "execute_step", fake_step)
    shown = []
    runner.reproduce(str(tiny_profile(tmp_path)), tmp_path / "results", log=shown.append, workers=2)
    assert calls == [(["cpu", "cpu"], 1)]
    # the pass's kernels train (if anything) with one thread, as the workers did; reset afterwards
    assert kernel_env == [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                           events.ENABLED_ENV: "1"}]
    assert sequential.IPCKernelManager.kernel_env == {}
    progress = [line for line in shown if line.startswith("[progress]")]
    assert "2 trained (2 by the parallel workers), 0 reused" in progress[1]
    assert "3 trained (2 by the parallel workers), 1 reused" not in progress[2]  # seed 2 was reused, not trained
    assert "2 trained (2 by the parallel workers), 1 reused" in progress[2]
    assert shown[-2].endswith("2 runs trained, 1 reused (2 of them by 2 parallel workers, 1 torch thread each)")
    folder = tmp_path / "results" / "tiny"
    marker = json.loads((folder / "complete.json").read_text())
    assert (marker["runs_trained"], marker["runs_reused"], marker["runs_trained_by_workers"]) == (2, 1, 2)
    assert "- runs: 2 shards trained by 2 parallel worker processes, 1 torch thread each" in (
        folder / "summary.md").read_text()

    # run again: the last whole run finished these steps, so nothing is fanned out; all is read back
    shown.clear()
    runner.reproduce(str(tiny_profile(tmp_path)), tmp_path / "results", log=shown.append, workers=2)
    assert len(calls) == 1 and any(line.startswith("==> no fan-out") for line in shown)
    assert shown[-2].endswith(": 0 runs trained, 3 reused")
    # one worker: today's sequential path, no fan-out and the kernels' own thread count
    kernel_env.clear()
    runner.reproduce(str(tiny_profile(tmp_path)), tmp_path / "results", log=shown.append, workers=1)
    assert len(calls) == 1 and kernel_env == [{events.ENABLED_ENV: "1"}]
