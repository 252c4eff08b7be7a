"""Where data and results live, which device to train on, and how many processes CPU-bound analysis may use.

Every path is a setting, never a constant baked into the code: the data
directory comes from an explicit argument, else the ``LBW_DATA_DIR``
environment variable, else ``data/`` in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "LBW_DATA_DIR"
RESULTS_DIR_ENV = "LBW_RESULTS_DIR"
# How many processes CPU-bound analysis (the re-decision frontiers) may use; make reproduce's parallel workers get
# their share of the cores, so a worker's analysis does not compete with the other workers.
CPU_PROCESSES_ENV = "LBW_CPU_PROCESSES"
DEVICES = ("auto", "cpu", "cuda", "mps")


def _folder(override: str | Path | None, variable: str, default: Path) -> Path:
    chosen = override or os.environ.get(variable)
    return Path(chosen).expanduser() if chosen else default


def data_dir(override: str | Path | None = None) -> Path:
    """The dataset folder: ``override``, else ``$LBW_DATA_DIR``, else ``<repo>/data``."""
    return _folder(override, DATA_DIR_ENV, REPO_ROOT / "data")


def results_dir(override: str | Path | None = None) -> Path:
    """The results folder: ``override``, else ``$LBW_RESULTS_DIR``, else ``<repo>/results``."""
    return _folder(override, RESULTS_DIR_ENV, REPO_ROOT / "results")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_processes() -> int:
    """``$LBW_CPU_PROCESSES`` (a positive integer), else the CPU cores this process may use."""
    value = os.environ.get(CPU_PROCESSES_ENV)
    if value is None:
        return usable_cores()
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"{CPU_PROCESSES_ENV}={value!r} is not allowed: a positive integer (processes), "
                         "or leave it unset for every usable core")
    return int(value)


def select_device(preference: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must be available."""
    if isinstance(preference, torch.device):
        return preference
    if preference not in DEVICES and not str(preference).startswith("cuda:"):
        raise ValueError(f"device={preference!r} is not one of {DEVICES} (or 'cuda:N')")
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if str(preference).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={preference!r} was asked for, but CUDA is not available here")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was asked for, but MPS is not available here")
    return torch.device(preference)
