"""Shared pieces of the benchmarks: arguments, hardware description, arithmetic peak,
FLOP counts, peak memory, timing helpers, tables and JSON output.

The benchmarks are scripts, not tests. Each prints a markdown table and writes
``<out>/<name>.json`` and ``<out>/<name>.md`` (default ``results/benchmarks/``).

How the arithmetic peak is estimated
------------------------------------
CPU, theoretical: ``cores x clock x FLOP per cycle per core``. The clock is the
nominal one the kernel reports (``cpuinfo_max_freq`` when cpufreq is exposed,
else ``cpu MHz`` of ``/proc/cpuinfo``; in a VM that is the TSC rate, usually the
base clock, so turbo makes the true peak higher and our fractions optimistic).
FLOP per cycle comes from the vector units, a table below: AMD Zen 4 (family
25 with AVX-512) has two 256-bit FMA pipes, so fp32 = 2 pipes x 8 lanes x 2 =
32 FLOP/cycle, and ``VDPBF16PS`` doubles that for bf16 (64). Intel server cores
with two 512-bit FMA units: 64 fp32; AMX adds 1024 bf16 FLOP/cycle. Override
with ``--peak-gflops`` when you know better.

CPU and GPU, measured: the best throughput of a large square matrix product
(``torch.mm``, n = 2048 on CPU, 8192 on GPU) in the same dtype. It is what the
BLAS/oneDNN/cuBLAS kernels actually reach here and is the fairer ceiling for a
network made of convolutions and GEMMs.

GPU, theoretical: dense (no sparsity) tensor-core peaks from vendor datasheets,
a table below, matched on the device name.

A training step costs ~3x the forward FLOPs (forward, then gradients with
respect to activations and to weights); counted FLOPs are 2 x multiply-adds of
convolutions, linear layers and recurrent cells; element-wise work (BN, GELU,
pooling, optimiser) is not counted, so the fractions slightly understate the
work done.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_OUT = REPO_ROOT / "results" / "benchmarks"

# --- arguments ---------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="dataset folder in torchvision's layout (default: $LBW_DATA_DIR, else data/)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the JSON and markdown tables")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (1 epoch, per-class subsets) that only check that the script works")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="override the theoretical peak (GFLOP/s, in the dtype the fast path uses)")
    return p


def setup(args) -> torch.device:
    from lbw_utils.config import select_device

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir:
        os.environ["LBW_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    return select_device(args.device)


# --- hardware ------------------------------------------------------------------------------------


def _cpuinfo() -> dict:
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                info.setdefault(key, value)
    except OSError:
        pass
    return info


def cpu_description() -> dict:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    clock_ghz = None
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.exists():
        clock_ghz = int(max_freq.read_text()) / 1e6
        clock_source = "cpuinfo_max_freq"
    elif "cpu MHz" in info:
        clock_ghz = float(info["cpu MHz"]) / 1e3
        clock_source = "/proc/cpuinfo cpu MHz (nominal / TSC rate)"
    else:
        clock_source = "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": info.get("model name", platform.processor()),
        "vendor": info.get("vendor_id"),
        "family": info.get("cpu family"),
        "cores": cores,
        "clock_ghz": clock_ghz,
        "clock_source": clock_source,
        "avx512f": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
    }


def cpu_flops_per_cycle(cpu: dict) -> dict:
    """FLOP per cycle per core for fp32 and bf16, from the vector units (see the module docstring)."""
    amd_zen4 = cpu.get("vendor") == "AuthenticAMD" and cpu.get("family") == "25" and cpu.get("avx512f")
    if amd_zen4:
        fp32, rule = 32, "AMD Zen 4: 2 x 256-bit FMA pipes (AVX-512 double-pumped) = 32 fp32 FLOP/cycle"
    elif cpu.get("vendor") == "AuthenticAMD":
        fp32, rule = 32, "AMD Zen 2/3: 2 x 256-bit FMA = 32 fp32 FLOP/cycle"
    elif cpu.get("avx512f"):
        fp32, rule = 64, "Intel AVX-512 with 2 FMA units = 64 fp32 FLOP/cycle"
    else:
        fp32, rule = 32, "AVX2 with 2 FMA units = 32 fp32 FLOP/cycle"
    bf16 = fp32
    if cpu.get("amx_bf16"):
        bf16, rule = 1024, rule + "; AMX: 1024 bf16 FLOP/cycle"
    elif cpu.get("avx512_bf16"):
        bf16, rule = 2 * fp32, rule + "; AVX512_BF16 (VDPBF16PS): 2x fp32 for bf16"
    return {"fp32": fp32, "bf16": bf16, "rule": rule}


# Dense tensor-core peaks (TFLOP/s) from vendor datasheets: bf16 and tf32 (fp32 inputs).
GPU_PEAKS_TFLOPS = {
    "H200": {"bf16": 989.0, "fp32": 494.0},
    "H100 PCIe": {"bf16": 756.0, "fp32": 378.0},
    "H100": {"bf16": 989.0, "fp32": 494.0},  # SXM
    "A100": {"bf16": 312.0, "fp32": 156.0},
    "L40S": {"bf16": 362.0, "fp32": 183.0},
    "L4": {"bf16": 121.0, "fp32": 60.0},
    "A10": {"bf16": 125.0, "fp32": 62.5},
    "RTX 4090": {"bf16": 165.0, "fp32": 82.6},
    "V100": {"bf16": 0.0, "fp32": 15.7},
    "T4": {"bf16": 0.0, "fp32": 8.1},
}


def theoretical_peak(device: torch.device, override_gflops: float | None = None) -> dict:
    """GFLOP/s for fp32 and bf16 and how they were estimated."""
    if override_gflops:
        return {"fp32": override_gflops, "bf16": override_gflops, "how": "given with --peak-gflops"}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in GPU_PEAKS_TFLOPS.items():
            if key in name:
                return {"fp32": peaks["fp32"] * 1e3, "bf16": peaks["bf16"] * 1e3,
                        "how": f"datasheet dense tensor-core peak of {key} (fp32 = TF32)"}
        return {"fp32": None, "bf16": None, "how": f"no datasheet entry for {name}; see the measured matmul peak"}
    cpu = cpu_description()
    per_cycle = cpu_flops_per_cycle(cpu)
    if not cpu["clock_ghz"]:
        return {"fp32": None, "bf16": None, "how": "clock unknown"}
    cores = min(cpu["cores"], torch.get_num_threads())  # the cores torch computes on
    scale = cores * cpu["clock_ghz"]
    return {"fp32": scale * per_cycle["fp32"], "bf16": scale * per_cycle["bf16"],
            "how": f"{cores} cores x {cpu['clock_ghz']:.2f} GHz ({cpu['clock_source']}) x FLOP/cycle; "
                   f"{per_cycle['rule']}"}


def measured_matmul_gflops(device: torch.device, dtype: torch.dtype, n: int | None = None,
                           seconds: float = 1.0) -> float:
    """Best GFLOP/s of an n x n x n matrix product in ``dtype`` (the BLAS ceiling in practice)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    synchronize(device)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2 * n**3 / best / 1e9


def peak_table(device: torch.device, override: float | None = None, quick: bool = False) -> dict:
    theory = theoretical_peak(device, override)
    seconds = 0.2 if quick else 1.5
    measured = {"fp32": measured_matmul_gflops(device, torch.float32, seconds=seconds),
                "bf16": measured_matmul_gflops(device, torch.bfloat16, seconds=seconds)}
    table = {"theoretical_gflops": theory, "matmul_gflops": measured}
    if device.type == "cpu" and theory.get("bf16") and measured["bf16"] > theory["bf16"]:
        # The matmul beats the nominal-clock peak: the cores run faster than the nominal clock.
        cpu = cpu_description()
        cores = min(cpu["cores"], torch.get_num_threads())
        per_cycle = cpu_flops_per_cycle(cpu)
        table["implied_clock_ghz_at_least"] = max(measured[d] / (cores * per_cycle[d]) for d in ("fp32", "bf16"))
    return table


def environment(device: torch.device) -> dict:
    from lbw_utils.speed import autocast_precision, bf16_pays

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "bf16_autocast": bf16_pays(device),
        "autocast": autocast_precision(device, True),  # what fit uses with amp on: bfloat16, float16 or None
        "cpu": cpu_description(),
        "hostname_load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


# --- FLOP counts ---------------------------------------------------------------------------------


def forward_macs(model: nn.Module, *inputs) -> int:
    """Multiply-adds of one forward pass of conv / linear layers, counted with hooks."""
    total = 0

    def conv_hook(module: nn.Conv2d | nn.Conv1d, args, output):
        nonlocal total
        kernel = 1
        for k in module.kernel_size:
            kernel *= k
        total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module: nn.Linear, args, output):
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def cnn_macs_per_image(model: nn.Module, input_shape) -> int:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    macs = forward_macs(model, torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return macs


def name_rnn_macs(model: nn.Module, widths_and_lengths) -> int:
    """Forward multiply-adds of :class:`NameClassifier` over batches.

    ``widths_and_lengths``: iterable of (padded width T, lengths tensor [B]).
    The convolution runs over the padded width, the recurrent layers over the
    valid characters only (packed sequences), the classifier once per name.
    """
    conv = model.conv
    rnn = model.rnn
    gates = 4 if isinstance(rnn, nn.LSTM) else 3
    directions = 2 if rnn.bidirectional else 1
    per_token_rnn = 0
    in_size = rnn.input_size
    for _ in range(rnn.num_layers):
        per_token_rnn += directions * gates * rnn.hidden_size * (in_size + rnn.hidden_size)
        in_size = rnn.hidden_size * directions
    per_position_conv = conv.out_channels * conv.in_channels * conv.kernel_size[0]
    head = model.classifier.in_features * model.classifier.out_features
    total = 0
    for width, lengths in widths_and_lengths:
        count = len(lengths)
        total += count * width * per_position_conv + int(lengths.sum()) * per_token_rnn + count * head
    return total


# --- memory --------------------------------------------------------------------------------------


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) of this process.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mib(device: torch.device) -> float:
    """GPU: max_memory_allocated since the last reset; CPU: peak RSS (VmHWM) since the last reset."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- timing --------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Wall-clock seconds with device synchronisation at both ends."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0

    def __enter__(self):
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
        return False


def median(values) -> float:
    return float(statistics.median(values))


def spread(values) -> float:
    """Half the range, as a plain indication of run-to-run noise."""
    values = list(values)
    return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


# --- interference -------------------------------------------------------------------------------


def _busy_cpu_seconds() -> float | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class InterferenceMonitor:
    """CPU seconds other processes used while a benchmark ran (a shared machine's noise).

    ``/proc/stat``'s busy time of all cores minus this process's (and its children's)
    user + system time. A few percent of the wall time is background; more means the
    timings were disturbed and should be rerun on a quiet machine.
    """

    def __init__(self):
        self.busy, self.own, self.wall = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()

    def report(self) -> dict:
        busy = _busy_cpu_seconds()
        wall = time.perf_counter() - self.wall
        if busy is None or self.busy is None:
            return {"other_cpu_seconds": None, "wall_seconds": wall}
        other = max(0.0, (busy - self.busy) - (_own_cpu_seconds() - self.own))
        return {"other_cpu_seconds": other, "wall_seconds": wall, "other_cores_busy": other / wall,
                "load_avg": os.getloadavg()}


_MONITOR = InterferenceMonitor()  # from import time: the whole benchmark


# --- output --------------------------------------------------------------------------------------


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    if columns is None:  # every key of every row, in order of first appearance
        columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value):
        if isinstance(value, float):
            if value != value:  # NaN
                return "-"
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return "-" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def interference_note(interference: dict) -> str:
    """The line under a benchmark's tables: how much CPU other processes used while it ran."""
    if interference.get("other_cpu_seconds") is None:
        return "interference unknown"
    return (f"other processes used {interference['other_cpu_seconds']:.0f} CPU s during these "
            f"{interference['wall_seconds']:.0f} s ({interference['other_cores_busy']:.2f} cores on average)")


def write_outputs(out: str | Path, name: str, payload: dict, tables: dict[str, str]) -> Path:
    """Print the tables, write ``name.md`` (tables) and ``name.json`` (everything)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = []
    for title, table in tables.items():
        text += [f"### {title}", "", table]
    rendered = "\n".join(text)
    print(rendered, flush=True)
    interference = _MONITOR.report()
    note = interference_note(interference)
    print(f"[{name}] {note}", flush=True)
    rendered += f"\n_{note}_\n"
    (out / f"{name}.md").write_text(rendered, encoding="utf-8")
    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "interference": interference,
               **payload}
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)
    return path
