"""How many workers a study fans out to, on which devices, and each worker's environment."""

from __future__ import annotations

import math
import os

import torch

from lbw_utils.checks import check_positive_int
from lbw_utils.config import usable_cores


def device_env(device: str, threads: int | None = None) -> dict[str, str]:
    """Environment for a worker pinned to ``device``: a GPU index (``0``, ``cuda:1``) or ``cpu``."""
    env: dict[str, str] = {}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        index = device.split(":", 1)[1] if device.startswith("cuda:") else device
        if not index.isdigit():
            raise ValueError(f"device {device!r} is neither 'cpu' nor a GPU index such as 0 or cuda:1")
        env["CUDA_VISIBLE_DEVICES"] = index  # the shard sees one GPU, as cuda:0
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def local_devices(gpus: str | None = None, cpu_workers: int | None = None) -> tuple[list[str], int | None]:
    """The worker devices and threads per worker: ``gpus`` 'all' or '0,2,3'; else ``cpu_workers`` on the CPU."""
    if gpus:
        if gpus == "all":
            count = _cuda_devices()
            if count == 0:
                raise ValueError("--gpus all: no CUDA device is visible")
            return [str(index) for index in range(count)], None
        return [part.strip() for part in gpus.split(",") if part.strip()], None
    workers = cpu_workers or 1
    return ["cpu"] * workers, max(1, usable_cores() // workers)


# What one CPU worker may hold at once (a run-shard process and its notebook kernel, torch, a dataset in
# memory): the auto choice runs no more CPU workers than the machine's memory holds at this much each.
MEMORY_PER_CPU_WORKER = 2 * 1024 ** 3


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _cuda_devices() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _trains_on_gpus(device: str) -> bool:
    """Whether a study with this ``device`` parameter trains on the GPUs that one worker per GPU can pin.

    'cuda' and 'auto' do when a GPU is visible; a named GPU ('cuda:1') is one device, for one process."""
    return device in ("auto", "cuda") and _cuda_devices() > 0


def hardware_workers(device: str = "auto", shards: int | None = None) -> tuple[list[str], int | None]:
    """The workers ``reproduce --workers auto`` runs (devices, torch threads per worker); one: run sequentially.

    One process per GPU when the studies train on CUDA (``device`` 'cuda' or 'auto') and several GPUs are
    visible, each with an equal share of the CPU cores; one GPU: one process, as before. On the CPU
    one-thread processes, one per usable core (:func:`cpu_degree`: a few more when that spares a last
    round with idle cores), at most one per :data:`MEMORY_PER_CPU_WORKER` of memory. Never more workers
    than ``shards``.
    """
    if _trains_on_gpus(device):
        count = min(_cuda_devices(), shards) if shards else _cuda_devices()
    elif device in ("cpu", "auto"):
        memory = _memory_bytes()
        cap = max(1, memory // MEMORY_PER_CPU_WORKER) if memory else 2 * usable_cores()
        count = cpu_degree(shards or usable_cores(), usable_cores(), cap)
    else:  # a named GPU, mps, or 'cuda' without one: one process, as before
        count = 1
    return ([device], None) if count <= 1 else workers_for(count, device)


def cpu_degree(shards: int, cores: int, cap: int | None = None) -> int:
    """How many one-thread processes train ``shards`` shards soonest on ``cores`` cores, if shards took
    equal time and processes beyond the cores shared them: ``ceil(shards / n)`` rounds of
    ``max(n, cores) / cores`` each; at most ``2 * cores``, ``shards`` and ``cap``; the fewest on a tie.

    Mostly one per core; but 3 shards on 2 cores get 3 processes (one round at 1.5x) rather than 2 (a
    second round of one shard, with a core idle). One core: one process (the sequential path).
    """
    limit = max(1, min(shards, 2 * cores, cap if cap is not None else shards))
    return min(range(1, limit + 1), key=lambda n: (math.ceil(shards / n) * max(n, cores) / cores, n))


def workers_for(count: int, device: str = "auto") -> tuple[list[str], int | None]:
    """``count`` workers for studies on ``device``: GPUs in turn where they train on GPUs (each worker with
    ``cores // count`` torch threads), else CPU processes of **one** torch thread each, whatever ``count`` is:
    the metrics of a CPU run depend on its thread count, so a run trains with one thread at any degree."""
    check_positive_int("workers", count)
    if count > 1 and device not in ("cpu", "auto") and not _trains_on_gpus(device):
        raise ValueError(f"the studies train on {device!r}, which one process uses: run them with one worker")
    if _trains_on_gpus(device):
        gpus = _cuda_devices()
        return [str(index % gpus) for index in range(count)], max(1, usable_cores() // count)
    return ["cpu"] * count, 1
