"""benchmarks/gpu_check.py (`make gpu-check`): without CUDA it says so, exits 0 and writes nothing; with
``--device cpu --tiny`` its measuring code runs end to end at toy sizes and is labelled as a check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lbw_utils.config import REPO_ROOT
from lbw_utils.runner.profiles import load_profile

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import gpu_check  # noqa: E402  (a script of benchmarks/, importable once its folder is on the path)

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"


def test_without_cuda_it_says_so_exits_0_and_writes_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the script would measure")
    out = tmp_path / "out"
    shown = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "no CUDA device is present" in shown.stdout and "nothing was written" in shown.stdout
    assert not out.exists()


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:0"])
def test_no_cuda_branch_for_every_cuda_device_name(tmp_path, monkeypatch, capsys, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", device, "--out", str(tmp_path / "out")]) == 0
    assert "no CUDA device is present" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arguments, words", [(["--device", "cpu"], "add --tiny"),
                                              (["--device", "mps", "--tiny"], "'mps' is not allowed"),
                                              (["--device", "cpu", "--tiny", "--probe-epochs", "0"], "at least 1")])
def test_bad_arguments_are_refused_naming_what_is_allowed(tmp_path, arguments, words):
    with pytest.raises(SystemExit, match=words):
        gpu_check.main([*arguments, "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_tiny_cpu_check_runs_the_measuring_code_and_labels_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check_tiny_cpu.json", "gpu_check_tiny_cpu.md"]
    result = json.loads((tmp_path / "gpu_check_tiny_cpu.json").read_text())
    assert result["tiny"] is True
    content, _ = load_profile("gpu")
    assert [s["study"] for s in result["studies"]] == list(content["studies"])
    for study in result["studies"]:
        seeds = content["studies"][study["study"]]["parameters"].get("seeds", content["shared"]["seeds"])
        assert study["runs"] > 0 and study["estimated_seconds"] > 0 and study["seeds"] == len(seeds)
        assert study["probes"]["main"]["probe_epochs"] == 2 and len(study["probes"]["main"]["epoch_seconds"]) == 2
    names = next(s for s in result["studies"] if s["study"] == "names5")
    assert set(names["probes"]) == {"main", "author", "bag"}  # the author's row and the bag family: timed apart
    assert result["estimated_profile_seconds"] == pytest.approx(sum(s["estimated_seconds"] for s in result["studies"]))
    # no CIFAR-10 here: the recipe ran on synthetic data, said so, and claims no time to 94 %
    assert result["recipe"]["data"].startswith("synthetic") and result["recipe"]["seconds_to_target"] is None
    table = (tmp_path / "gpu_check_tiny_cpu.md").read_text()
    assert table.count("TINY CHECK, not timings") == 2 and "synthetic" in table and "whole profile" in table
