"""Image datasets as uint8 tensors on the training device, airbench-style.

Fashion-MNIST and CIFAR-10 are fetched through torchvision's dataset classes
(download, archive checksum, extraction) when missing, then every file is verified against
its published checksum and the whole dataset is converted once into uint8
tensors that live on the training device. Batching and augmentation (padded
random crop, horizontal flip) are batched tensor operations on that device:
no per-sample PIL transforms and no DataLoader workers.

Every dataset object (this module's :class:`ImageData` and the names task's
``NameData``) offers the same small protocol the training loop relies on:
``classes``, ``num_classes``, ``device``, ``labels(split)``, ``size(split)``,
``batches(split, batch_size, shuffle=, generator=, augment=)`` yielding
``(inputs, targets)`` with ``inputs`` a tuple passed as ``model(*inputs)``,
``checksums()`` and ``describe()``.

A new image dataset is one reader and one registration, :func:`register_image_dataset` (see
``docs/extending.md``): the reader returns the training pool and the test set as uint8 ``[N, C, H, W]``
tensors with int64 labels, the class names and the checksums of the files it read; splitting,
subsampling, normalisation, batching and augmentation are shared. It is the image form of
:func:`lbw_utils.data.register_dataset`: notebooks and ``experiments.DataOptions`` accept every registered
name, with the options of :data:`IMAGE_OPTIONS` and the CNN as its default network.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from lbw_utils.checks import check_positive_int
from lbw_utils.config import data_dir as resolve_data_dir
from lbw_utils.config import select_device
from lbw_utils.data import DatasetRegistration, register_dataset
from lbw_utils.files import DataIntegrityError, file_digest, verify_file

SPLITS = ("train", "val", "test")  # every dataset's, the names task's too
DEFAULT_VAL_SIZE = 5000  # training images held out for validation, unless a study says otherwise

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# SHA-256 of the uncompressed IDX files (torchvision publishes MD5s of the .gz
# archives only; these pin the files a loader actually reads).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
CIFAR10_FOLDER = "cifar-10-batches-py"
# MD5s published by the CIFAR-10 authors (the same ones torchvision checks).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR10_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]



@dataclass(frozen=True)
class ImageDataset:
    """A registered image dataset: ``read(root, download)`` returns ``(train_x, train_y, test_x, test_y,
    classes, checksums)`` (uint8 ``[N, C, H, W]``, int64 labels, class names, ``{file: sha256}``), reading
    under the data folder ``root`` (downloading there if ``download``, else raising DataNotFoundError);
    ``augment``: the augmentation that suits it (``flip``, ``crop_pad``)."""

    name: str
    read: Callable[[Path, bool], tuple]
    augment: dict = field(default_factory=dict)


# Every image dataset's reader, by name: filled by register_image_dataset (the two built-in ones at the end of
# this module).
IMAGE_READERS: dict[str, ImageDataset] = {}
# The DataOptions fields an image dataset takes (load_image_dataset's keywords of the same names).
IMAGE_OPTIONS = ("data_dir", "val_size", "per_class")


def register_image_dataset(name: str, read: Callable[[Path, bool], tuple], *, augment: dict | None = None,
                           replace: bool = False) -> ImageDataset:
    """Make ``name`` a dataset every study and notebook accepts: one registration (see :class:`ImageDataset`),
    loaded by :func:`load_image_dataset`, trained with the CNN unless a study names another network."""
    register_dataset(DatasetRegistration(name, partial(load_image_dataset, name), default_model="cnn",
                                         options=IMAGE_OPTIONS), replace=replace)
    IMAGE_READERS[name] = ImageDataset(name, read, dict(augment or {}))
    return IMAGE_READERS[name]


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are missing and could not be downloaded."""


@dataclass
class ImageData:
    """A dataset split three ways, held as uint8 ``[N, C, H, W]`` tensors on ``device``."""

    name: str
    classes: list[str]
    images: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    mean: torch.Tensor
    std: torch.Tensor
    augment: dict = field(default_factory=dict)
    source_checksums: dict[str, str] = field(default_factory=dict)
    split_seed: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images["train"].device

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images["train"].shape[1:])

    def labels(self, split: str) -> torch.Tensor:
        return self.targets[_check_split(split)]

    def size(self, split: str) -> int:
        return len(self.targets[_check_split(split)])

    def checksums(self) -> dict[str, str]:
        return dict(self.source_checksums)

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "classes": list(self.classes),
            "sizes": {split: self.size(split) for split in SPLITS},
            "input_shape": list(self.input_shape),
            "augment": dict(self.augment),
            "split_seed": self.split_seed,
        }

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float, standardised per channel with the training split's statistics."""
        floats = images.float().div_(255)
        return floats.sub_(self.mean.view(1, -1, 1, 1)).div_(self.std.view(1, -1, 1, 1))

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                augment: bool = False, augmentation: str = "dataset", augment_classes: torch.Tensor | None = None,
                targeted_augmentation: str = "dataset") -> Iterator[tuple[tuple[torch.Tensor], torch.Tensor]]:
        """Yield ``((images,), targets)``; unshuffled batches come in split order.

        ``augment``: apply ``augmentation`` to every example, ``"dataset"`` (the recipe the dataset registered)
        or one of :data:`AUGMENTATION_POLICIES`. ``augment_classes`` (a boolean per class: class-targeted
        augmentation; or a probability per class: class-conditional strength, each example drawn with its class's
        probability): those classes' (those drawn) examples get ``targeted_augmentation`` instead, whether or not ``augment``
        is on; the others get what ``augment`` gives them (the random draws do not depend on the classes chosen,
        so the cost does not either)."""
        check_positive_int("batch_size", batch_size)
        images, targets = self.images[_check_split(split)], self.targets[split]
        recipe = self._recipe("augmentation", augmentation)
        targeted = self._recipe("targeted_augmentation", targeted_augmentation)
        count = len(targets)
        order = None
        if shuffle:
            order = torch.randperm(count, generator=generator, device="cpu").to(images.device)
        for start in range(0, count, batch_size):
            index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
            batch = self.normalize(images[index])
            if augment_classes is not None:
                chosen = augment_classes[targets[index]]
                if chosen.is_floating_point():  # a probability per class: each example drawn on its own
                    chosen = torch.rand(len(chosen), generator=generator).to(chosen.device) < chosen
                chosen = chosen.view(-1, 1, 1, 1)
                others = augment_batch(batch, generator=generator, **recipe) if augment else batch
                batch = torch.where(chosen, augment_batch(batch, generator=generator, **targeted), others)
            elif augment:
                batch = augment_batch(batch, generator=generator, **recipe)
            yield (batch.contiguous(memory_format=torch.channels_last),), targets[index]

    def _recipe(self, name: str, policy: str) -> dict:
        recipe = self.augment if policy == "dataset" else AUGMENTATION_POLICIES.get(policy)
        if recipe is None:
            raise ValueError(f"{name}={policy!r} is not known; choose 'dataset' or one of "
                             f"{tuple(AUGMENTATION_POLICIES)}")
        return recipe


# The augmentations a baseline search may choose between by name (TrainConfig.augmentation); "dataset" is the
# recipe the dataset registered (flip + a 2-pixel crop for Fashion-MNIST and CIFAR-10).
AUGMENTATION_POLICIES = {
    "flip": {"flip": True},
    "flip+crop": {"flip": True, "crop_pad": 2},
    "flip+crop+erase": {"flip": True, "crop_pad": 2, "erase": 0.5},
    "erase": {"flip": False, "erase": 0.5},
}


def augment_batch(images: torch.Tensor, *, flip: bool = True, crop_pad: int = 0, erase: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flip, padded random crop and random erasing, for a whole batch at once."""
    if flip:
        mirror = torch.rand(len(images), generator=generator).to(images.device) < 0.5
        images = torch.where(mirror.view(-1, 1, 1, 1), images.flip(-1), images)
    if crop_pad > 0:
        images = random_crop(images, crop_pad, generator=generator)
    if erase > 0:
        images = random_erase(images, erase, generator=generator)
    return images


def random_erase(images: torch.Tensor, probability: float, *, generator: torch.Generator | None = None,
                 area: tuple[float, float] = (0.02, 0.33), aspect: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Set one random rectangle of each chosen image to 0 (the training mean, as images are standardised).

    torchvision's ``RandomErasing`` defaults (area 2-33 % of the image, aspect ratio 0.3-3.3, value 0), drawn
    for the whole batch at once; each image is erased with ``probability``."""
    count, _, height, width = images.shape
    draws = torch.rand(5, count, generator=generator)
    target_area = height * width * (area[0] + (area[1] - area[0]) * draws[0])
    log_low, log_high = np.log(aspect[0]), np.log(aspect[1])
    ratio = torch.exp(log_low + (log_high - log_low) * draws[1])
    box_height = torch.sqrt(target_area * ratio).round().clamp(1, height).long()
    box_width = torch.sqrt(target_area / ratio).round().clamp(1, width).long()
    top = (draws[2] * (height - box_height + 1)).long()
    left = (draws[3] * (width - box_width + 1)).long()
    rows = torch.arange(height).view(1, -1)
    cols = torch.arange(width).view(1, -1)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + box_height).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + box_width).view(-1, 1))
    box = in_rows[:, :, None] & in_cols[:, None, :] & (draws[4] < probability).view(-1, 1, 1)
    return images.masked_fill(box[:, None].to(images.device), 0.0)


def random_crop(images: torch.Tensor, pad: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by up to ``pad`` pixels (reflect padding), as one gather."""
    count, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    shifts = torch.randint(0, 2 * pad + 1, (2, count), generator=generator).to(images.device)
    rows = shifts[0].view(-1, 1) + torch.arange(height, device=images.device)
    cols = shifts[1].view(-1, 1) + torch.arange(width, device=images.device)
    batch_index = torch.arange(count, device=images.device).view(-1, 1, 1)
    cropped = padded[batch_index, :, rows.view(count, height, 1), cols.view(count, 1, width)]
    return cropped.permute(0, 3, 1, 2)


def load_image_dataset(name: str, *, data_dir: str | Path | None = None, val_size: int | float = DEFAULT_VAL_SIZE,
                       per_class: int | None = None, seed: int = 0, device: str | torch.device = "auto",
                       download: bool = True, augment: dict | None = None) -> ImageData:
    """Load a registered image dataset (``fashion_mnist``, ``cifar10``, ...) onto ``device`` with a stratified
    validation split.

    ``val_size`` is a count (int) or a fraction of the training pool (float in
    (0, 1)). ``per_class`` keeps that many images per class in the training pool
    and in the test set, for tiny runs. The split depends on ``seed`` only; the
    test set is never touched by it.
    """
    if name not in IMAGE_READERS:
        raise ValueError(f"dataset={name!r} is not a registered image dataset; choose one of {tuple(IMAGE_READERS)}")
    root = resolve_data_dir(data_dir)
    dataset = IMAGE_READERS[name]
    train_x, train_y, test_x, test_y, classes, checksums = dataset.read(root, download)
    generator = torch.Generator().manual_seed(seed)
    if per_class is not None:
        train_x, train_y = take_per_class(train_x, train_y, per_class, generator, "training set")
        test_x, test_y = take_per_class(test_x, test_y, per_class, generator, "test set")
    train_index, val_index = stratified_split(train_y, val_size, generator)
    target_device = select_device(device)
    images = {"train": train_x[train_index], "val": train_x[val_index], "test": test_x}
    targets = {"train": train_y[train_index], "val": train_y[val_index], "test": test_y}
    mean, std = _channel_statistics(images["train"])
    return ImageData(name=name, classes=classes,
                     images={split: tensor.to(target_device) for split, tensor in images.items()},
                     targets={split: tensor.to(target_device) for split, tensor in targets.items()},
                     mean=mean.to(target_device), std=std.to(target_device),
                     augment=dict(dataset.augment if augment is None else augment), source_checksums=checksums,
                     split_seed=seed)


def stratified_split(labels: torch.Tensor, val_size: int | float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded split that keeps every class's share in both parts."""
    count = len(labels)
    val_count = _validation_count(val_size, count)
    classes = torch.unique(labels)
    sizes = [int((labels == label).sum()) for label in classes]
    # Largest-remainder apportionment: every class gets its share and the total is exactly val_count.
    takes = [val_count * size // count for size in sizes]
    by_remainder = sorted(range(len(sizes)), key=lambda i: -(val_count * sizes[i] % count))
    for i in by_remainder[: val_count - sum(takes)]:
        takes[i] += 1
    val_parts, train_parts = [], []
    for label, take in zip(classes, takes):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        val_parts.append(members[:take])
        train_parts.append(members[take:])
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


def _validation_count(val_size: int | float, pool: int) -> int:
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise ValueError(f"val_size={val_size!r} must be an int count or a float fraction in (0, 1)")
    if isinstance(val_size, float):
        if not 0 < val_size < 1:
            raise ValueError(f"val_size={val_size} as a fraction must lie in (0, 1)")
        return max(1, round(val_size * pool))
    if not 0 < val_size < pool:
        raise ValueError(f"val_size={val_size} must be between 1 and {pool - 1}: the training pool holds {pool} images")
    return val_size


def take_per_class(images: torch.Tensor, labels: torch.Tensor, per_class: int, generator: torch.Generator,
                   what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` randomly chosen examples of every class (``what`` names the set in errors), in order."""
    check_positive_int("per_class", per_class)
    keep = []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        if per_class > len(members):
            raise ValueError(f"per_class={per_class} is larger than class {int(label)} of the {what} "
                             f"({len(members)} images); choose at most {len(members)}")
        keep.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    index = torch.cat(keep).sort().values
    return images[index], labels[index]


def _channel_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    floats = images.double().div(255)
    mean = floats.mean(dim=(0, 2, 3))
    std = floats.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.float(), std.float()


# --- Fashion-MNIST ---------------------------------------------------------


def _read_fashion_mnist(root: Path, download: bool):
    raw = root / "FashionMNIST" / "raw"
    missing = [name for name in FASHION_MNIST_SHA256 if not (raw / name).exists()]
    if missing:
        import torchvision  # only to download: importing it costs about 3 s of every notebook that loads the data

        _download(lambda: torchvision.datasets.FashionMNIST(root, train=True, download=True), raw,
                  missing, download, "Fashion-MNIST")
    checksums = {f"FashionMNIST/raw/{name}": verify_file(raw / name, digest)
                 for name, digest in FASHION_MNIST_SHA256.items()}
    train_images, test_images = (read_idx(raw / f"{part}-images-idx3-ubyte") for part in ("train", "t10k"))
    train_labels, test_labels = (read_idx(raw / f"{part}-labels-idx1-ubyte") for part in ("train", "t10k"))
    return (train_images.unsqueeze(1), train_labels.long(), test_images.unsqueeze(1), test_labels.long(),
            list(FASHION_MNIST_CLASSES), checksums)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (the MNIST format: two zero bytes, type code 0x08, the number of
    dimensions, each dimension as a big-endian int32, then the values) as a uint8 tensor of that shape."""
    content = Path(path).read_bytes()
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise DataIntegrityError(f"{path} is not an IDX file of unsigned bytes (it starts with {content[:4]!r})")
    dims = content[3]
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">i4", count=dims, offset=4))
    values = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise DataIntegrityError(f"{path}: its header gives shape {shape}, but it holds {values.size} values")
    return torch.from_numpy(values.reshape(shape).copy())


# --- CIFAR-10 --------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batches, refusing every class but numpy's array rebuilders.

    torchvision reads these files with plain ``pickle.load``, which would run any
    code a tampered file names; this reader cannot.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        # What Python 3 writes for an array at protocol 2 (bytes via codecs) and 5 (buffer):
        ("_codecs", "encode"), ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR-10 files hold only arrays")


def read_cifar_batch(path: Path) -> dict:
    with open(path, "rb") as handle:
        batch = _ArrayUnpickler(handle, encoding="latin1").load()
    if not isinstance(batch, dict):
        raise DataIntegrityError(f"{path} does not hold a CIFAR-10 batch (a dict), but {type(batch).__name__}")
    return batch


def _read_cifar10(root: Path, download: bool):
    import torchvision

    folder = root / CIFAR10_FOLDER
    missing = [name for name in CIFAR10_MD5 if not (folder / name).exists()]
    if missing:
        _download(lambda: torchvision.datasets.CIFAR10(root, train=True, download=True), folder,
                  missing, download, "CIFAR-10")
    checksums = {}
    for name, digest in CIFAR10_MD5.items():
        verify_file(folder / name, digest, algorithm="md5")
        checksums[f"{CIFAR10_FOLDER}/{name}"] = file_digest(folder / name)
    train = [read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    test = read_cifar_batch(folder / "test_batch")
    classes = list(read_cifar_batch(folder / "batches.meta")["label_names"])
    train_x, train_y = _cifar_arrays(train, folder)
    test_x, test_y = _cifar_arrays([test], folder)
    return train_x, train_y, test_x, test_y, classes, checksums


def _cifar_arrays(batches: list[dict], folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = np.concatenate([np.asarray(batch["data"], dtype=np.uint8) for batch in batches])
        labels = np.concatenate([np.asarray(batch["labels"], dtype=np.int64) for batch in batches])
    except KeyError as missing:
        raise DataIntegrityError(f"a CIFAR-10 batch in {folder} lacks the key {missing}") from None
    except (ValueError, TypeError) as error:  # e.g. batches whose rows differ in length
        raise DataIntegrityError(f"the CIFAR-10 batches in {folder} do not fit together: {error}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataIntegrityError(f"CIFAR-10 batches in {folder} have shape {data.shape}, expected [N, 3072]")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


# --- shared helpers ----------------------------------------------------------


def _download(fetch, folder: Path, files: list[str], allowed: bool, title: str) -> None:
    hint = (f"{title} was not found: the files {', '.join(files)} are missing from {folder}. "
            f"Place them there (or point LBW_DATA_DIR / the data_dir parameter at a folder that has them)")
    if not allowed:
        raise DataNotFoundError(hint + "; downloading is switched off (download=False).")
    try:
        fetch()
    except Exception as error:  # no network, DNS failure, archive checksum mismatch, ...
        raise DataNotFoundError(f"{hint}; the download failed: {error}") from error


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    return split


# Both are left-right symmetric; a 2-pixel translation is the usual CIFAR-10 recipe and also helps on
# 28x28 clothes.
register_image_dataset("fashion_mnist", _read_fashion_mnist, augment={"flip": True, "crop_pad": 2})
register_image_dataset("cifar10", _read_cifar10, augment={"flip": True, "crop_pad": 2})
