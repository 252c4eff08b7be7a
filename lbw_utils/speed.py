"""Speed tricks, in one place: what makes training fast without changing what it computes.

- **Precision by capability** (:func:`autocast_dtype`, the one place that decides): bf16 autocast where the
  hardware has native bf16, fp16 with loss scaling on other CUDA GPUs, else fp32. The training loop,
  prediction and the run record all ask it.
- **The CPU's weight gradient on small maps** (:class:`SmallMapConv`): a 3x3 convolution whose weight
  gradient is one convolution over the batch, faster than oneDNN's own on 3x3 and 4x4 maps.
- **glibc's allocator** (:func:`keep_freed_memory`): freed blocks kept for reuse instead of page-faulted
  in again every step.

Each changes speed only: the same values up to rounding (tests/test_precision.py, tests/test_models.py,
tests/test_train.py check it). How much each buys: docs/speed.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import warnings

import torch
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------

def autocast_dtype(device: torch.device | str, amp: bool) -> torch.dtype | None:
    """The dtype a run on ``device`` autocasts to when ``amp`` asks for mixed precision; None: fp32.

    The one place that decides (the training loop, prediction and the run record all ask it):
    - bf16 where the hardware has it natively: a CUDA GPU with native bf16 (Ampere and later;
      ``is_bf16_supported`` would also say yes for the emulated bf16 of a V100 or T4, which is slow),
      or a CPU with AVX512-BF16 / AMX (~1.4x faster convolutions there, slower elsewhere);
    - fp16 on any other CUDA GPU (V100, T4: fp16 tensor cores), with loss scaling (:func:`make_grad_scaler`);
    - otherwise none (fp32): CPUs without native bf16, MPS, or ``amp=False``.
    """
    if not amp:
        return None
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if _cuda_has_native_bf16() else torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def autocast_precision(device: torch.device | str, amp: bool) -> str | None:
    """:func:`autocast_dtype` as a name for the run record: "bfloat16", "float16", or None (fp32)."""
    dtype = autocast_dtype(device, amp)
    return None if dtype is None else str(dtype).removeprefix("torch.")


def _cuda_has_native_bf16() -> bool:
    # Compute capability 8.0 or later (or ROCm). It asks about the current CUDA device: the one a study
    # trains on (lbw_utils.runner.fanout gives each worker process one GPU).
    return torch.cuda.is_bf16_supported(including_emulation=False)


def autocast(device: torch.device, enabled: bool):
    """Autocast to :func:`autocast_dtype`'s choice, or a no-op context when that is fp32."""
    dtype = autocast_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def bf16_pays(device: torch.device) -> bool:
    """Whether ``device`` has native bf16 (autocast then runs in bf16 when ``amp`` is on)."""
    return autocast_dtype(device, True) == torch.bfloat16


def make_grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler | None:
    """A loss scaler when the run autocasts to fp16 (bf16 has fp32's exponent range and needs none), else None."""
    if autocast_dtype(device, amp) != torch.float16:
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def scaled_step(scaler: torch.amp.GradScaler, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                 scheduler) -> None:
    """One training step's backward pass and updates under fp16 loss scaling.

    ``scaler.step`` unscales the gradients (one foreach kernel for all of them) and skips the step when
    any is inf or NaN; a fused optimizer (AdamW here) receives the scale and the inf flag and does both
    inside its own kernel. ``update`` then lowers the scale after a skipped step and raises it after a
    run of good ones. The learning-rate schedule advances either way, as PyTorch's AMP recipe does: a few
    skipped steps at the start shift nothing but those steps.
    """
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    with warnings.catch_warnings():
        # When the first step is skipped for an overflow (the scale starts at 2^16 and falls), the scheduler
        # warns that it stepped before the optimizer: expected under loss scaling, not a misuse.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()


# --------------------------------------------------------------------------
# The CPU's weight gradient on small maps
# --------------------------------------------------------------------------

class _WeightGradOverBatch(torch.autograd.Function):
    """``conv2d(x, weight, padding=1)`` whose weight gradient is computed as a convolution over the batch.

    ``dW[o, c, i, j] = sum over n, h, w of g[n, o, h, w] * x_padded[n, c, h + i, w + j]``: a convolution of
    ``x`` seen as C images of N channels with ``g`` seen as O filters of N channels and the map's size.
    On maps of 3x3 and 4x4, oneDNN's own weight gradient was 1.2-3.7x slower than that convolution (bf16, 2
    CPU cores: 2.3 against 0.7 ms for the small CNN's last convolution, a tenth of its training step); on a
    7x7 map it was faster, so FastCNN uses this in its last block only.
    """

    @staticmethod
    def forward(ctx, images, weight):
        ctx.save_for_backward(images, weight)
        return F.conv2d(images, weight, padding=1)

    @staticmethod
    def backward(ctx, grad):
        images, weight = ctx.saved_tensors
        grad_images = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_images = torch.nn.grad.conv2d_input(images.shape, weight, grad, padding=1)
        if ctx.needs_input_grad[1]:
            by_channel = images.transpose(0, 1).contiguous(memory_format=torch.channels_last)
            filters = grad.transpose(0, 1).contiguous(memory_format=torch.channels_last)
            grad_weight = F.conv2d(by_channel, filters, padding=1).transpose(0, 1)
        return grad_images, grad_weight


class SmallMapConv(nn.Conv2d):
    """A 3x3 convolution (padding 1, no bias) for small maps: on the CPU its weight gradient is computed
    by ``_WeightGradOverBatch``; same values as ``nn.Conv2d`` up to rounding (checked), same parameters."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.device.type != "cpu":  # measured on oneDNN only; cuDNN keeps its own backward
            return super().forward(images)
        weight = self.weight
        if torch.is_autocast_enabled("cpu"):  # a custom Function is not autocast: cast as conv2d would be
            dtype = torch.get_autocast_dtype("cpu")
            images, weight = images.to(dtype), weight.to(dtype)
        return _WeightGradOverBatch.apply(images, weight)


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------

# glibc's malloc returns a freed block of 32 MiB or more to the kernel at once (mmap threshold) and trims
# free heap beyond 128 KiB, so a tensor of that size that is freed and allocated again every step (the
# names model's dense embedding gradient: 2^17 x 64 floats) is page-faulted in anew each time: 10 of the
# 38 ms of a one-thread names step. Keeping such blocks on the heap makes the step 27 ms; values are not
# affected. Other C libraries are left alone.
_MALLOC_SETTINGS = {-3: 64 * 2**20, -1: 256 * 2**20}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD (bytes)
_malloc_tuned = False


def keep_freed_memory() -> None:
    """Let glibc keep freed blocks below 64 MiB, and up to 256 MiB of free heap, for reuse (once per process)."""
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return
    for option, value in _MALLOC_SETTINGS.items():
        mallopt(option, value)
