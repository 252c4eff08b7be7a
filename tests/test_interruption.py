"""A study killed with SIGKILL (a real subprocess) resumes: finished runs are kept as they are, no partial
record is ever read as finished, and the final tables equal those of a study that was never interrupted.

The driver below runs ``experiments.run_study`` (4 methods x 2 seeds) on a tiny synthetic dataset. It can
pause at two places so that the test kills it there, not at a random moment:

* ``--pause-in-training N``: in the middle of the N-th training (after a few optimiser steps of epoch 1);
* ``--pause-in-write N``: during the N-th record write, after the temporary file is written and synced but
  before it is renamed into place (where a kill leaves a stray ``.tmp`` file behind).

Pausing only waits; it changes no number, so the killed and the uninterrupted studies must agree exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from lbw_utils import stats

from lbw_utils import records

TESTS_DIR = Path(__file__).resolve().parent
METHODS = [
    {"name": "baseline"},
    {"name": "static", "scheme": "cdb", "tau": 1},  # needs the baseline's validation TPRs
    {"name": "ema", "alpha": 0.1, "normalize": True},
    {"name": "posthoc", "objective": "worst"},  # needs the baseline's saved logits
]
SEEDS = [0, 1]
ALL_RUNS = {(label, seed) for seed in SEEDS
            for label in ("baseline", "static-cdb-tau1", "ema-alpha0.1-norm", "baseline+posthoc-worst")}

DRIVER = textwrap.dedent('''
    import argparse, json, os, sys, time
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, {tests_dir!r})
    from conftest import build_image_data  # the tests' tiny synthetic ImageData

    from lbw_utils.runs import experiments
    from lbw_utils.methods import kinds
    from lbw_utils.train import TrainConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("results_dir")
    parser.add_argument("--log", required=True)
    parser.add_argument("--marker")
    parser.add_argument("--pause-in-training", type=int)
    parser.add_argument("--pause-in-write", type=int)
    args = parser.parse_args()
    marker = Path(args.marker) if args.marker else None


    def log(line):
        with open(args.log, "a") as handle:
            handle.write(line + "\\n")


    def pause(where):
        marker.write_text(where)
        time.sleep(300)  # the test kills us here


    # The dataset of a seed, built from seeded random tensors instead of files.
    experiments.load_data = lambda options, seed: build_image_data(image_noise=25.0, seed=seed)


    class PausesMidEpoch:
        """The same data; its training batches stop after a few optimiser steps."""

        def __init__(self, data):
            self._data = data

        def __getattr__(self, name):
            return getattr(self._data, name)

        def batches(self, split, *options, **keywords):
            for index, batch in enumerate(self._data.batches(split, *options, **keywords)):
                if split == "train" and index == 3:
                    pause("training")
                yield batch


    trainings = 0
    real_training, real_posthoc = kinds.TrainedLoss.outcome, kinds.PostHoc.outcome


    def training(self, spec, method, data, seed, *rest):
        global trainings
        trainings += 1
        log(f"computed {{experiments.method_label(method)}} {{seed}}")
        if trainings == args.pause_in_training:
            data = PausesMidEpoch(data)
        return real_training(self, spec, method, data, seed, *rest)


    def posthoc(self, spec, method, data, seed, *rest):
        log(f"computed {{experiments.method_label(method)}} {{seed}}")
        return real_posthoc(self, spec, method, data, seed, *rest)


    kinds.TrainedLoss.outcome, kinds.PostHoc.outcome = training, posthoc

    record_writes = 0
    real_replace = os.replace


    def replace(source, target):
        global record_writes
        if str(target).endswith(".json"):
            record_writes += 1
            if record_writes == args.pause_in_write:
                pause("write")
        return real_replace(source, target)


    os.replace = replace

    experiments.run_study(
        {methods!r}, {seeds!r}, experiments.DataOptions("fashion_mnist"), args.results_dir,
        train=TrainConfig(epochs=3, batch_size=16, lr=0.05, eval_batch_size=64),
        model=experiments.ModelOptions(size="tiny"), progress=False,
    )
    log("done")
''')


@pytest.fixture
def driver(tmp_path):
    path = tmp_path / "driver.py"
    path.write_text(DRIVER.format(tests_dir=str(TESTS_DIR), methods=METHODS, seeds=SEEDS))
    return path


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def start(driver: Path, results: Path, log: Path, *options: str) -> subprocess.Popen:
    output = open(log.with_suffix(".out"), "ab")
    return subprocess.Popen([sys.executable, str(driver), str(results), "--log", str(log), *options],
                            stdout=output, stderr=subprocess.STDOUT, env=environment())


def finish(driver: Path, results: Path, log: Path) -> None:
    process = start(driver, results, log)
    try:
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, log.with_suffix(".out").read_text()


def kill_when_paused(process: subprocess.Popen, marker: Path, log: Path, expected: str) -> None:
    deadline = time.monotonic() + 90
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"the driver ended ({process.returncode}) before pausing:\n"
                        f"{log.with_suffix('.out').read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the driver did not reach its pause within 90 s")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no handler, no cleanup: as a power cut or the OOM killer would
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert marker.read_text() == expected
    marker.unlink()


def computed(log: Path) -> list[tuple[str, int]]:
    lines = [line.split() for line in log.read_text().splitlines() if line.startswith("computed")]
    return [(label, int(seed)) for _, label, seed in lines]


def finished_runs(results: Path) -> dict[tuple[str, int], Path]:
    return {(record["method_label"], record["seed"]): records.record_path(results, record["dataset"],
                                                                          record["method_label"], record["seed"])
            for record in records.load_records(results)}


def assert_every_json_is_a_complete_record(results: Path) -> None:
    for path in (results / "records").rglob("*.json"):
        records.read_record(path)  # raises CorruptRecordError if it is not
        json.loads(path.read_text())


def stray_temporary_files(results: Path) -> list[Path]:
    return sorted((results / "records").rglob("*.tmp"))


def same(first, second) -> bool:
    """Exactly equal, NaN included (a never-predicted class has NaN precision, and NaN != NaN)."""
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def table(results: Path) -> pd.DataFrame:
    # train_seconds is wall time: the only column allowed to differ between two identical studies.
    return stats.method_table(records.load_records(results)).drop(columns="train_seconds")


def test_a_killed_study_resumes_and_matches_an_uninterrupted_one(driver, tmp_path):
    results, log, marker = tmp_path / "interrupted", tmp_path / "interrupted.log", tmp_path / "paused"

    # 1. Kill it in the middle of the third training (ema, seed 0): baseline and static of seed 0 are done.
    process = start(driver, results, log, "--pause-in-training", "3", "--marker", str(marker))
    kill_when_paused(process, marker, log, "training")
    assert set(finished_runs(results)) == {("baseline", 0), ("static-cdb-tau1", 0)}
    assert_every_json_is_a_complete_record(results)
    assert not (records.artifact_path(results, "tiny", "ema-alpha0.1-norm", 0)).exists()

    # 2. Resume, and kill it again while it writes its second record (posthoc, seed 0): after the
    #    temporary file is complete, before the rename. The stray file must never count as a record.
    process = start(driver, results, log, "--pause-in-write", "2", "--marker", str(marker))
    kill_when_paused(process, marker, log, "write")
    done = finished_runs(results)
    assert set(done) == {("baseline", 0), ("static-cdb-tau1", 0), ("ema-alpha0.1-norm", 0)}
    strays = stray_temporary_files(results)
    assert [path.name.split(".json.")[0] for path in strays] == [".baseline+posthoc-worst__seed0"]
    assert json.loads(strays[0].read_text())["method_label"] == "baseline+posthoc-worst"  # complete, yet ignored
    assert not records.is_finished(records.record_path(results, "tiny", "baseline+posthoc-worst", 0))
    assert_every_json_is_a_complete_record(results)

    # 3. Run to the end. What was finished is neither recomputed nor rewritten.
    before = {run: (path.stat().st_mtime_ns, path.read_bytes()) for run, path in done.items()}
    log.write_text("")
    finish(driver, results, log)
    assert log.read_text().splitlines()[-1] == "done"
    assert sorted(computed(log)) == sorted(ALL_RUNS - set(done))
    after = finished_runs(results)
    assert set(after) == ALL_RUNS
    assert {run: (after[run].stat().st_mtime_ns, after[run].read_bytes()) for run in done} == before
    assert len(stray_temporary_files(results)) == 1  # left where the kill left it, and ignored

    # 4. A study that was never interrupted, in another folder, with the same seeds.
    reference, reference_log = tmp_path / "uninterrupted", tmp_path / "uninterrupted.log"
    finish(driver, reference, reference_log)
    assert sorted(computed(reference_log)) == sorted(ALL_RUNS)
    pd.testing.assert_frame_equal(table(results), table(reference), check_exact=True)
    for run, path in finished_runs(reference).items():
        ours, theirs = records.read_record(after[run]), records.read_record(path)
        for key in ("test", "val", "weights", "fingerprint", "method", "seed", "classes"):
            assert same(ours[key], theirs[key]), f"{run}: '{key}' differs"
        if ours["history"] is not None:
            for curve in ("train_loss", "val_accuracy", "val_tpr"):
                assert same(ours["history"][curve], theirs["history"][curve]), f"{run}: history '{curve}' differs"

    # 5. Rerunning a finished study computes nothing and rewrites nothing.
    stamps = {run: path.stat().st_mtime_ns for run, path in after.items()}
    log.write_text("")
    finish(driver, results, log)
    assert computed(log) == []
    assert {run: path.stat().st_mtime_ns for run, path in finished_runs(results).items()} == stamps
