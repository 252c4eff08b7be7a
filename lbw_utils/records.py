"""Run records: one JSON file per (dataset, method, seed), written atomically.

A record is complete or it does not exist: it is written to a temporary file
and renamed into place, so a study killed mid-run never leaves a file that a
rerun could mistake for a finished run. Figures and tables read only records.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from lbw_utils.config import REPO_ROOT
from lbw_utils.files import atomic_write_json

SCHEMA_VERSION = 1
RECORD_KEYS = ("schema_version", "dataset", "method", "method_label", "seed", "test", "val", "parameters")


class CorruptRecordError(ValueError):
    """A run record that cannot be read or lacks required fields."""


def records_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "records"


def record_path(results_dir: str | Path, dataset: str, method_label: str, seed: int) -> Path:
    return records_dir(results_dir) / dataset / f"{method_label}__seed{seed}.json"


def artifact_path(results_dir: str | Path, dataset: str, method_label: str, seed: int) -> Path:
    """Logits and weights of a trained model, beside (not inside) the records."""
    return Path(results_dir) / "artifacts" / dataset / f"{method_label}__seed{seed}.pt"


def write_record(path: str | Path, record: dict) -> Path:
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"refusing to write an incomplete run record to {path}: missing {missing}")
    return atomic_write_json(path, record)


def read_record(path: str | Path) -> dict:
    """Parse one record; a corrupt or incomplete file raises an error naming it."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise  # missing is not corrupt: is_finished and callers tell the two apart
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptRecordError(f"run record {path} is corrupt ({error}); delete it and rerun the study to "
                                 "recreate it") from error
    if not isinstance(record, dict):
        raise CorruptRecordError(f"run record {path} holds {type(record).__name__}, not a JSON object")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise CorruptRecordError(f"run record {path} lacks {missing}; delete it and rerun the study")
    if record["schema_version"] != SCHEMA_VERSION:
        raise CorruptRecordError(f"run record {path} has schema version {record['schema_version']}, this code reads "
                                 f"{SCHEMA_VERSION}")
    return record


def is_finished(path: str | Path) -> bool:
    """True when a readable, complete record exists; a corrupt one counts as unfinished."""
    try:
        read_record(path)
    except (FileNotFoundError, CorruptRecordError):
        return False
    return True


def load_records(results_dir: str | Path, dataset: str | None = None, *, parts: bool = False) -> list[dict]:
    """Every record under ``results_dir`` (optionally one dataset), sorted; corrupt ones raise. A record that is
    part of another row rather than a row itself (``"row": false``: an ensemble's replicate member) is left out
    unless ``parts``: tables, fronts and frontiers read rows."""
    pattern = f"{dataset}/*.json" if dataset else "*/*.json"
    found = [read_record(path) for path in sorted(records_dir(results_dir).glob(pattern))]
    return found if parts else [record for record in found if is_row(record)]


def is_row(record: dict) -> bool:
    """Whether a record is a row of the tables (False for a part of another row, an ensemble's member)."""
    return record.get("row", True) is not False


def environment() -> dict:
    """Versions, hardware and code revision: what a reader needs to rerun a record."""
    from importlib.metadata import version

    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),  # importing it would cost ~3 s
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_revision": git_revision(),
    }


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_summary(info: dict | None = None) -> str:
    """One line naming the hardware a study ran on, for summaries and the README."""
    info = info or environment()
    cpu = f"{info['cpu_count']} CPU cores ({info['processor']})"
    return f"{info['gpu']} + {cpu}" if info.get("gpu") else f"{cpu}, no GPU"


def git_revision() -> str | None:
    """The checkout's commit (with ``-dirty`` for local changes), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        # --no-optional-locks: a status must not take .git/index.lock from a concurrent git command.
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
