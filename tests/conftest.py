"""Shared fixtures: one CPU thread per test, and a tiny synthetic image dataset; the slowest files first.

``make test`` spreads the test files over the cores (pytest-xdist, ``--dist loadfile``, one file to one
worker), so every process the tests start (notebook kernels, the runner's workers) trains with one thread:
two workers that each used every core would slow each other many times over.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch starts its thread pool, here and in every child
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from lbw_utils.data.images import ImageData


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The test machine is small and shared: one intra-op thread, restored afterwards.

    One thread also makes CPU training bit-reproducible from run to run.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The files that run whole profiles, slowest first (pytest --durations): with --no-loadscope-reorder xdist hands
# them out in this order, so the two longest start at once on two workers and the short files fill in after.
SLOWEST_FIRST = ("test_gpu_profile.py", "test_notebooks.py", "test_concurrency.py", "test_interruption.py",
                 "test_reliability.py", "test_train.py")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def build_image_data(
    *,
    per_class: dict[str, int] | None = None,
    num_classes: int = 3,
    shape: tuple[int, int, int] = (1, 8, 8),
    means: list[float] | None = None,
    image_noise: float = 0.0,
    pixel_noise: float = 20.0,
    seed: int = 0,
    name: str = "tiny",
    augment: dict | None = None,
) -> ImageData:
    """An :class:`ImageData` whose class is its mean brightness, on the CPU.

    Each image is ``means[class] + image_noise * N(0, 1) + pixel_noise * N(0, 1)``
    per pixel, clipped to uint8. ``image_noise`` (one offset per image) makes
    neighbouring classes overlap, so per-class TPRs differ; the middle classes,
    with two neighbours, are the hard ones.
    """
    per_class = per_class or {"train": 40, "val": 20, "test": 20}
    means = means or torch.linspace(50, 200, num_classes).tolist()
    generator = torch.Generator().manual_seed(seed)
    images, targets = {}, {}
    for split, count in per_class.items():
        labels = torch.arange(num_classes).repeat_interleave(count)
        labels = labels[torch.randperm(len(labels), generator=generator)]
        base = torch.tensor(means)[labels].view(-1, 1, 1, 1)
        offset = image_noise * torch.randn(len(labels), 1, 1, 1, generator=generator)
        pixels = pixel_noise * torch.randn(len(labels), *shape, generator=generator)
        images[split] = (base + offset + pixels).round().clamp(0, 255).to(torch.uint8)
        targets[split] = labels
    floats = images["train"].double().div(255)
    return ImageData(
        name=name,
        classes=[f"class{index}" for index in range(num_classes)],
        images=images,
        targets=targets,
        mean=floats.mean(dim=(0, 2, 3)).float(),
        std=floats.std(dim=(0, 2, 3)).float(),
        augment=dict(augment if augment is not None else {"flip": True, "crop_pad": 1}),
        source_checksums={"synthetic": "0" * 64},
        split_seed=seed,
    )


@pytest.fixture
def tiny_data():
    """A factory: ``tiny_data(**options)`` builds a synthetic dataset (see :func:`build_image_data`)."""
    return build_image_data
