"""lbw_utils.data: every dataset one registration (loader, options, default network), which the study layer reads
without testing a dataset's name; lbw_utils.data.images: the CIFAR-10 reader on small files in CIFAR-10's own format,
splits, batching, augmentation."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import ast
import inspect

import numpy as np
import pytest
import torch

import lbw_utils.data as registry
from conftest import build_image_data
from lbw_utils.data import DatasetRegistration, dataset_registration, datasets, register_dataset
from lbw_utils.data import images as data_module
from lbw_utils.data.names.dataset import NAME_SWITCH
from lbw_utils.runs import experiments
from lbw_utils.runs.experiments import DataOptions, Settings, load_data
from lbw_utils.data.images import (
    CIFAR10_FOLDER,
    FASHION_MNIST_SHA256,
    DataNotFoundError,
    augment_batch,
    load_image_dataset,
    random_crop,
    read_cifar_batch,
    stratified_split,
)
from lbw_utils.files import DataIntegrityError

CLASS_NAMES = ["plane", "car", "bird", "cat"]
PER_CLASS_PER_BATCH = 3  # 12 images per training batch file, 60 in the pool, 15 per class
TEST_PER_CLASS = 5


def image_rows(ids: np.ndarray) -> np.ndarray:
    """CIFAR rows [N, 3072] whose first two bytes encode an id, so every image can be traced."""
    rng = np.random.default_rng(int(ids[0]) + 1)
    rows = rng.integers(0, 256, size=(len(ids), 3072), dtype=np.uint8)
    rows[:, 0] = ids // 256
    rows[:, 1] = ids % 256
    return rows


def image_ids(images: torch.Tensor) -> list[int]:
    flat = images.reshape(len(images), -1).long()
    return (flat[:, 0] * 256 + flat[:, 1]).tolist()


def write_pickle(path: Path, payload, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    with open(path, "wb") as handle:
        pickle.dump(payload, handle, protocol=protocol)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root: Path, class_names: list[str], per_class_per_batch: int, test_per_class: int,
                  rows=lambda ids, labels: image_rows(ids)) -> dict[str, str]:
    """Write a CIFAR-10 in its on-disk format (torchvision's python pickles) under ``root``; return the MD5s.

    Five training batches of ``per_class_per_batch`` images per class, a test batch of ``test_per_class``
    per class, and ``batches.meta``; ``rows(ids, labels)`` makes the [N, 3072] uint8 pixel rows (default:
    random pixels whose first two bytes encode the image's id). The MD5s are what ``CIFAR10_MD5`` must hold
    for the loader to accept these files."""
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    next_id = 0
    for batch in range(1, 6):
        labels = np.repeat(np.arange(len(class_names)), per_class_per_batch)
        np.random.default_rng(batch).shuffle(labels)
        ids = np.arange(next_id, next_id + len(labels))
        next_id += len(labels)
        write_pickle(folder / f"data_batch_{batch}",
                     {"batch_label": f"training batch {batch} of 5", "labels": labels.tolist(),
                      "data": rows(ids, labels), "filenames": [f"{i}.png" for i in ids]})
    test_labels = np.repeat(np.arange(len(class_names)), test_per_class)
    test_ids = np.arange(max(1000, next_id), max(1000, next_id) + len(test_labels))
    write_pickle(folder / "test_batch", {"labels": test_labels.tolist(), "data": rows(test_ids, test_labels)})
    write_pickle(folder / "batches.meta", {"label_names": list(class_names),
                                           "num_cases_per_batch": len(class_names) * per_class_per_batch,
                                           "num_vis": 3072})
    return {path.name: md5(path) for path in sorted(folder.iterdir())}


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A data folder with a tiny CIFAR-10 in its on-disk format; CIFAR10_MD5 pinned to these files."""
    digests = write_cifar10(tmp_path, CLASS_NAMES, PER_CLASS_PER_BATCH, TEST_PER_CLASS)
    monkeypatch.setattr(data_module, "CIFAR10_MD5", digests)
    return tmp_path


def load(root, **options):
    options = {"val_size": 8, "device": "cpu", "download": False, **options}
    return load_image_dataset("cifar10", data_dir=root, **options)


def per_class_counts(labels: torch.Tensor, num_classes: int = len(CLASS_NAMES)) -> list[int]:
    return torch.bincount(labels.cpu(), minlength=num_classes).tolist()


# --- the CIFAR-10 reader ------------------------------------------------------------------


def test_cifar10_shapes_classes_and_layout(cifar_root):
    data = load(cifar_root)
    assert data.classes == CLASS_NAMES and data.num_classes == 4
    for split in ("train", "val", "test"):
        images = data.images[split]
        assert images.dtype == torch.uint8 and images.device.type == "cpu"
        assert images.shape[1:] == (3, 32, 32)
        assert len(images) == data.size(split) == len(data.labels(split))
        assert data.labels(split).dtype == torch.int64
    assert data.size("train") + data.size("val") == 60
    assert data.size("test") == 20
    # The test split keeps file order, and a row is 1024 red, then green, then blue values, row-major.
    with open(cifar_root / CIFAR10_FOLDER / "test_batch", "rb") as handle:
        raw = pickle.load(handle)  # our own file, written above
    np.testing.assert_array_equal(data.images["test"].numpy(), raw["data"].reshape(-1, 3, 32, 32))
    assert data.labels("test").tolist() == raw["labels"]
    assert data.images["test"][3, 1, 2, 5] == raw["data"][3, 1024 + 2 * 32 + 5]
    assert set(data.checksums()) == {f"{CIFAR10_FOLDER}/{name}" for name in data_module.CIFAR10_MD5}
    assert data.describe()["sizes"] == {"train": 52, "val": 8, "test": 20}


def test_cifar10_split_is_stratified_disjoint_and_complete(cifar_root):
    data = load(cifar_root, val_size=20)
    assert per_class_counts(data.labels("val")) == [5] * 4
    assert per_class_counts(data.labels("train")) == [10] * 4
    train_ids, val_ids = image_ids(data.images["train"]), image_ids(data.images["val"])
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == list(range(60))
    # Every image keeps its own label through the split.
    labels_by_id = {}
    for batch in range(1, 6):
        raw = read_cifar_batch(cifar_root / CIFAR10_FOLDER / f"data_batch_{batch}")
        labels_by_id.update(zip(image_ids(torch.from_numpy(raw["data"])), raw["labels"]))
    assert [labels_by_id[i] for i in val_ids] == data.labels("val").tolist()
    assert [labels_by_id[i] for i in train_ids] == data.labels("train").tolist()


def test_cifar10_split_depends_on_the_seed_only(cifar_root):
    first, again, other = load(cifar_root, seed=3), load(cifar_root, seed=3), load(cifar_root, seed=4)
    for split in ("train", "val", "test"):
        assert torch.equal(first.images[split], again.images[split])
        assert torch.equal(first.labels(split), again.labels(split))
    assert image_ids(first.images["val"]) != image_ids(other.images["val"])
    assert torch.equal(first.images["test"], other.images["test"])  # the test set is never split
    assert torch.equal(first.mean, again.mean) and torch.equal(first.std, again.std)


def test_val_size_as_count_and_as_fraction(cifar_root):
    assert load(cifar_root, val_size=12).size("val") == 12
    fraction = load(cifar_root, val_size=0.25)
    assert fraction.size("val") == 15 and fraction.size("train") == 45
    assert sorted(per_class_counts(fraction.labels("val"))) == [3, 4, 4, 4]
    # A count that does not divide evenly over the classes is still honoured exactly.
    uneven = load(cifar_root, val_size=10)
    assert uneven.size("val") == 10 and uneven.size("train") == 50
    assert max(per_class_counts(uneven.labels("val"))) - min(per_class_counts(uneven.labels("val"))) <= 1


def test_stratified_split_keeps_each_class_share_on_imbalanced_labels():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    train, val = stratified_split(labels, 20, torch.Generator().manual_seed(0))
    assert per_class_counts(labels[val], 3) == [12, 6, 2]
    assert per_class_counts(labels[train], 3) == [48, 24, 8]
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))


def test_per_class_subset(cifar_root):
    data = load(cifar_root, per_class=5, val_size=0.2)
    assert per_class_counts(data.labels("train")) == [4] * 4
    assert per_class_counts(data.labels("val")) == [1] * 4
    assert per_class_counts(data.labels("test")) == [TEST_PER_CLASS] * 4  # 5 per class is all there is
    smaller = load(cifar_root, per_class=3, val_size=4)
    assert per_class_counts(smaller.labels("test")) == [3] * 4
    assert smaller.size("train") + smaller.size("val") == 12
    test_ids = image_ids(smaller.images["test"])
    assert len(set(test_ids)) == 12 and all(1000 <= i < 1020 for i in test_ids)


@pytest.mark.parametrize("options, words", [
    ({"val_size": 60}, ["val_size=60", "60 images"]),
    ({"val_size": 500}, ["val_size=500"]),
    ({"val_size": 1.5}, ["val_size=1.5", "(0, 1)"]),
    ({"val_size": 0}, ["val_size=0"]),
    ({"val_size": "10"}, ["val_size='10'"]),
    ({"per_class": 16}, ["per_class=16", "training set", "15 images"]),
    ({"per_class": 6}, ["per_class=6", "test set", "5 images"]),
    ({"per_class": 0}, ["per_class=0"]),
])
def test_bad_split_options_raise(cifar_root, options, words):
    with pytest.raises(ValueError) as caught:
        load(cifar_root, **options)
    for word in words:
        assert word in str(caught.value)


def test_unknown_dataset_and_split(cifar_root):
    with pytest.raises(ValueError, match="mnist"):
        load_image_dataset("mnist", data_dir=cifar_root, device="cpu", download=False)
    data = load(cifar_root)
    for call in (lambda: data.labels("validation"), lambda: data.size("dev"),
                 lambda: next(data.batches("holdout", 4))):
        with pytest.raises(ValueError, match="not one of"):
            call()


def test_missing_files_without_download(cifar_root):
    folder = cifar_root / CIFAR10_FOLDER
    (folder / "data_batch_3").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(DataNotFoundError) as caught:
        load(cifar_root)
    message = str(caught.value)
    assert "data_batch_3" in message and "test_batch" in message and str(folder) in message
    assert "data_batch_1" not in message  # only what is missing is named
    assert "download=False" in message
    assert isinstance(caught.value, FileNotFoundError)


def test_missing_folder_without_download(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        load(tmp_path / "empty")
    assert str(tmp_path / "empty" / CIFAR10_FOLDER) in str(caught.value)
    assert "batches.meta" in str(caught.value)


def test_tampered_file_fails_the_checksum(cifar_root):
    path = cifar_root / CIFAR10_FOLDER / "data_batch_2"
    payload = bytearray(path.read_bytes())
    payload[-20] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(DataIntegrityError) as caught:
        load(cifar_root)
    assert "data_batch_2" in str(caught.value) and "md5" in str(caught.value)


class _RunsAShellCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_that_references_another_class_is_refused_without_running(cifar_root, monkeypatch):
    folder = cifar_root / CIFAR10_FOLDER
    marker = cifar_root / "pwned"
    write_pickle(folder / "data_batch_4", {"labels": [0], "data": _RunsAShellCommand(marker)})
    checksums = dict(data_module.CIFAR10_MD5, data_batch_4=md5(folder / "data_batch_4"))
    monkeypatch.setattr(data_module, "CIFAR10_MD5", checksums)  # it passes the checksum: only the reader stops it
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load(cifar_root)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="system"):
        read_cifar_batch(folder / "data_batch_4")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_reader_accepts_arrays_pickled_at_any_protocol(tmp_path, protocol):
    rows = image_rows(np.arange(5))
    write_pickle(tmp_path / "batch", {"data": rows, "labels": [0, 1, 2, 3, 0]}, protocol=protocol)
    batch = read_cifar_batch(tmp_path / "batch")
    np.testing.assert_array_equal(batch["data"], rows)
    assert batch["labels"] == [0, 1, 2, 3, 0]


def test_reader_rejects_a_batch_that_is_not_a_dict(tmp_path):
    write_pickle(tmp_path / "batch", [1, 2, 3])
    with pytest.raises(DataIntegrityError, match="list"):
        read_cifar_batch(tmp_path / "batch")


@pytest.mark.parametrize("name, payload, words", [
    ("test_batch", {"labels": [0, 1], "data": np.zeros((2, 100), np.uint8)}, ["3072"]),
    ("test_batch", {"labels": [0, 1, 2], "data": np.zeros((2, 3072), np.uint8)}, ["3072"]),
    ("test_batch", {"data": np.zeros((2, 3072), np.uint8)}, ["labels"]),
    # A training batch whose rows do not fit the other batches' rows.
    ("data_batch_5", {"labels": [0, 1], "data": np.zeros((2, 100), np.uint8)}, [CIFAR10_FOLDER]),
])
def test_malformed_batch_is_an_integrity_error(cifar_root, monkeypatch, name, payload, words):
    folder = cifar_root / CIFAR10_FOLDER
    write_pickle(folder / name, payload)
    monkeypatch.setattr(data_module, "CIFAR10_MD5", dict(data_module.CIFAR10_MD5, **{name: md5(folder / name)}))
    with pytest.raises(DataIntegrityError) as caught:
        load(cifar_root)
    for word in words:
        assert word in str(caught.value)


# --- real Fashion-MNIST, where a copy is available ----------------------------------------

REAL_DATA = os.environ.get("LBW_DATA_DIR")


@pytest.mark.skipif(not (REAL_DATA and (Path(REAL_DATA) / "FashionMNIST" / "raw").is_dir()),
                    reason="set LBW_DATA_DIR to a folder with FashionMNIST/raw to test the real data")
def test_real_fashion_mnist():
    data = load_image_dataset("fashion_mnist", device="cpu", download=False)
    assert [data.size(split) for split in ("train", "val", "test")] == [55000, 5000, 10000]
    assert data.input_shape == (1, 28, 28) and data.images["train"].dtype == torch.uint8
    assert per_class_counts(data.labels("val"), 10) == [500] * 10
    assert per_class_counts(data.labels("test"), 10) == [1000] * 10
    assert data.checksums() == {f"FashionMNIST/raw/{name}": digest for name, digest in FASHION_MNIST_SHA256.items()}
    assert data.classes[6] == "Shirt" and data.classes[8] == "Bag"


# --- batching and augmentation --------------------------------------------------------------


@pytest.fixture
def indexed_data(tiny_data):
    """A dataset whose every image is constant and equal to its own target: index = label = pixel."""
    data = tiny_data(per_class={"train": 1, "val": 1, "test": 1}, num_classes=23)
    for split in ("train", "val", "test"):
        data.targets[split] = torch.arange(23)
        data.images[split] = torch.arange(23, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone()
    data.mean, data.std = torch.zeros(1), torch.ones(1) / 255  # normalize() then returns the pixel value
    return data


def test_unshuffled_batches_come_in_split_order(tiny_data):
    data = tiny_data()
    for split in ("train", "val", "test"):
        batches = list(data.batches(split, 7))
        assert [len(targets) for _, targets in batches][:-1] == [7] * (len(batches) - 1)
        assert torch.equal(torch.cat([targets for _, targets in batches]), data.labels(split))
        images = torch.cat([inputs[0] for inputs, _ in batches])
        assert images.dtype == torch.float32 and images.shape == data.images[split].shape
        torch.testing.assert_close(images, data.normalize(data.images[split]))


def test_shuffled_batches_cover_every_index_once(indexed_data):
    generator = torch.Generator().manual_seed(1)
    batches = list(indexed_data.batches("train", 5, shuffle=True, generator=generator))
    order = torch.cat([targets for _, targets in batches])
    assert sorted(order.tolist()) == list(range(23))
    assert order.tolist() != list(range(23))
    for (images,), targets in batches:  # images travel with their targets
        assert torch.equal(images[:, 0, 0, 0].round().long(), targets)
    again = torch.cat([t for _, t in indexed_data.batches("train", 5, shuffle=True,
                                                          generator=torch.Generator().manual_seed(1))])
    assert torch.equal(order, again)


def test_augmented_batches_keep_shape_and_pairing(indexed_data):
    indexed_data.augment = {"flip": True, "crop_pad": 2}
    for (images,), targets in indexed_data.batches("train", 8, shuffle=True, augment=True,
                                                   generator=torch.Generator().manual_seed(0)):
        assert images.shape == (len(targets), 1, 8, 8)
        # A constant image stays constant under flip and reflect-padded crop.
        assert torch.equal(images.amin(dim=(1, 2, 3)).round().long(), targets)
        assert torch.equal(images.amax(dim=(1, 2, 3)).round().long(), targets)


def test_random_crop_is_a_translation_by_the_drawn_shift():
    pad = 2
    images = torch.randn(6, 3, 9, 10, generator=torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(11)
    expected_shifts = torch.randint(0, 2 * pad + 1, (2, 6), generator=torch.Generator().manual_seed(11))
    cropped = random_crop(images, pad, generator=generator)
    assert cropped.shape == images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    for index in range(6):
        dy, dx = expected_shifts[:, index].tolist()
        assert torch.equal(cropped[index], padded[index, :, dy:dy + 9, dx:dx + 10])
        # In the interior it is a plain translation of the input by (dy - pad, dx - pad).
        sy, sx = dy - pad, dx - pad
        rows = slice(max(0, -sy), 9 - max(0, sy))
        cols = slice(max(0, -sx), 10 - max(0, sx))
        source = images[index, :, rows.start + sy:rows.stop + sy, cols.start + sx:cols.stop + sx]
        assert torch.equal(cropped[index, :, rows, cols], source)
    assert len({tuple(pair) for pair in expected_shifts.T.tolist()}) > 1


def test_random_crop_with_a_known_shift():
    """Shift (dy, dx) = (2, 0) with pad 1: the image moves up one row and right one column."""
    images = torch.arange(16.0).view(1, 1, 4, 4)

    generator = None
    # Find a seed whose first draw is (2, 0) for one image, so the expected output is known exactly.
    for seed in range(1000):
        if torch.randint(0, 3, (2, 1), generator=torch.Generator().manual_seed(seed)).flatten().tolist() == [2, 0]:
            generator = torch.Generator().manual_seed(seed)
            break
    assert generator is not None
    cropped = random_crop(images, 1, generator=generator)[0, 0]
    # out[y, x] = padded[y + 2, x] = image[y + 1, x - 1] (reflect at the borders).
    expected = torch.tensor([[5.0, 4, 5, 6], [9, 8, 9, 10], [13, 12, 13, 14], [9, 8, 9, 10]])
    assert torch.equal(cropped, expected)


def test_flip_flips_exactly_the_drawn_images():
    images = torch.randn(64, 2, 5, 7, generator=torch.Generator().manual_seed(2))
    mirror = torch.rand(64, generator=torch.Generator().manual_seed(9)) < 0.5
    out = augment_batch(images, flip=True, crop_pad=0, generator=torch.Generator().manual_seed(9))
    assert out.shape == images.shape
    assert 0 < int(mirror.sum()) < 64
    assert torch.equal(out[mirror], images[mirror].flip(-1))
    assert torch.equal(out[~mirror], images[~mirror])
    assert torch.equal(augment_batch(images, flip=False, crop_pad=0), images)


def test_augment_batch_flips_then_crops():
    images = torch.randn(10, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    out = augment_batch(images, flip=True, crop_pad=1, generator=torch.Generator().manual_seed(8))
    replay = torch.Generator().manual_seed(8)
    mirror = torch.rand(10, generator=replay) < 0.5
    flipped = torch.where(mirror.view(-1, 1, 1, 1), images.flip(-1), images)
    assert torch.equal(out, random_crop(flipped, 1, generator=replay))


def test_idx_reader_reads_shape_and_values_and_refuses_other_files(tmp_path):
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good-idx3-ubyte"
    good.write_bytes(b"\x00\x00\x08\x03" + np.array([2, 3, 4], dtype=">i4").tobytes() + values.tobytes())
    read = data_module.read_idx(good)
    assert read.dtype == torch.uint8 and torch.equal(read, torch.from_numpy(values))
    wrong_type = tmp_path / "floats-idx1"
    wrong_type.write_bytes(b"\x00\x00\x0d\x01" + np.array([1], dtype=">i4").tobytes() + b"\x00" * 4)
    with pytest.raises(DataIntegrityError, match="not an IDX file of unsigned bytes"):
        data_module.read_idx(wrong_type)
    truncated = tmp_path / "short-idx3-ubyte"
    truncated.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(DataIntegrityError, match=r"shape \(2, 3, 4\), but it holds 19 values"):
        data_module.read_idx(truncated)



# --- the registry: one registration per dataset -----------------------------------------------------------


@pytest.fixture
def own_registry(monkeypatch):
    """The registry (every built-in dataset in it) as a copy this test may add to; the module's is left as it was."""
    datasets()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(data_module, "IMAGE_READERS", dict(data_module.IMAGE_READERS))


def test_the_built_in_datasets_are_registrations():
    assert datasets()[:3] == ("fashion_mnist", "cifar10", "names")
    for name in ("fashion_mnist", "cifar10"):
        image = dataset_registration(name)
        assert image.default_model == "cnn" and image.options == data_module.IMAGE_OPTIONS
        assert image.defaults() == {"data_dir": None, "val_size": data_module.DEFAULT_VAL_SIZE, "per_class": None}
    names = dataset_registration("names")
    assert names.default_model == "name_rnn" and "folds" in names.options and "val_size" not in names.options
    with pytest.raises(ValueError, match=r"dataset='mnist' is not known; choose one of \('fashion_mnist', 'cifar10'"):
        dataset_registration("mnist")


def test_data_options_take_each_dataset_s_defaults_and_refuse_what_it_does_not_take():
    names = DataOptions("names")
    assert (names.classes, names.partition_seed, names.name_switch, names.folds, names.val_size) == (
        "paper", 0, NAME_SWITCH, None, None)
    assert DataOptions("names", classes="all", folds=5).classes == "all"
    images = DataOptions("fashion_mnist")
    assert images.val_size == data_module.DEFAULT_VAL_SIZE and images.classes is None and images.partition_seed is None
    for dataset, given, word in (("fashion_mnist", {"folds": 5}, "folds=5"), ("cifar10", {"classes": "all"},
                                 "classes='all'"), ("names", {"val_size": 0.2}, "val_size=0.2")):
        with pytest.raises(ValueError) as caught:
            DataOptions(dataset, **given)
        message = str(caught.value)
        assert f"{word} does not apply to dataset={dataset!r}" in message
        assert str(dataset_registration(dataset).options) in message


def tiny_loader(*, seed, device, per_class=12, data_dir=None):
    """A loader of the tests' synthetic images, whose arguments it remembers."""
    tiny_loader.calls.append({"seed": seed, "device": device, "per_class": per_class, "data_dir": data_dir})
    return build_image_data(per_class={"train": per_class, "val": 4, "test": 4}, seed=seed)


tiny_loader.calls = []


def test_a_registered_dataset_is_loaded_and_trained_by_its_registration(own_registry):
    register_dataset(DatasetRegistration("tiny-set", tiny_loader, default_model="name_ngram",
                                         options=("per_class", "data_dir")))
    assert "tiny-set" in datasets()
    options = DataOptions("tiny-set", device="cpu")
    assert options.per_class == 12  # the loader's default
    tiny_loader.calls.clear()
    data = load_data(options, seed=3)
    assert tiny_loader.calls == [{"seed": 3, "device": "cpu", "per_class": 12, "data_dir": None}]
    assert data.size("train") == 3 * 12
    settings = Settings.from_params({"dataset": "tiny-set", "seeds": [0], "per_class": 5})
    assert settings.model.name == "name_ngram" and settings.data.per_class == 5  # its default network
    assert Settings.from_params({"dataset": "tiny-set", "model": "cnn"}).model.name == "cnn"
    with pytest.raises(ValueError, match=r"folds=2 does not apply to dataset='tiny-set': it takes \('per_class', "
                                         r"'data_dir'\) \(and device\)"):
        DataOptions("tiny-set", folds=2)
    with pytest.raises(ValueError, match="'tiny-set' is already registered"):
        register_dataset(DatasetRegistration("tiny-set", tiny_loader, default_model="cnn"))
    register_dataset(DatasetRegistration("tiny-set", tiny_loader, default_model="cnn"), replace=True)
    assert dataset_registration("tiny-set").default_model == "cnn"


def test_a_registration_with_an_option_data_options_lacks_is_refused_when_used(own_registry):
    def load(*, seed, device, resolution=28):
        raise AssertionError("never loaded")

    register_dataset(DatasetRegistration("odd-set", load, default_model="cnn", options=("resolution",)))
    with pytest.raises(ValueError, match=r"dataset 'odd-set' is registered with options \['resolution'\] that "
                                         r"DataOptions does not have"):
        DataOptions("odd-set")


def test_an_image_dataset_registers_through_its_image_form(own_registry):
    def read(root, download):
        raise AssertionError("not read: nothing here loads it")

    data_module.register_image_dataset("shapes", read, augment={"flip": True})
    shapes = dataset_registration("shapes")
    assert shapes.default_model == "cnn" and shapes.options == data_module.IMAGE_OPTIONS
    assert data_module.IMAGE_READERS["shapes"].read is read
    with pytest.raises(ValueError, match="'names' is already registered"):
        data_module.register_image_dataset("names", read)


@pytest.mark.parametrize("load, options, words", [
    (lambda *, seed, device: None, ("per_class",), ["takes no ['per_class']"]),
    (lambda *, device, per_class=None: None, ("per_class",), ["takes no ['seed']"]),
    (lambda *, seed, device, per_class: None, ("per_class",), ["options ['per_class'] have no default"]),
    ("not a function", (), ["load must be a function"]),
    (lambda *, seed, device: None, ("device",), ["('seed', 'device') are given to every loader"]),
])
def test_a_registration_that_cannot_be_loaded_is_refused_by_name(load, options, words):
    with pytest.raises(ValueError) as caught:
        DatasetRegistration("broken", load, default_model="cnn", options=options)
    for word in ["'broken'", *words]:
        assert word in str(caught.value)
    with pytest.raises(ValueError, match="non-empty string"):
        DatasetRegistration("", tiny_loader, default_model="cnn")
    with pytest.raises(ValueError, match="default_model must name a network"):
        DatasetRegistration("broken", tiny_loader, default_model="")


def test_the_study_layer_names_no_dataset():
    """experiments reads the registrations: no dataset's name stands in its code."""
    tree = ast.parse(inspect.getsource(experiments))
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not strings & set(datasets()), strings & set(datasets())
