"""Name -> nationality data: download, safe loading, character encoding, splits, batches.

The data is the draft paper author's public set: a pickled dict
``nationality -> list of 2,000 lowercase full names`` for 42 nationalities,
from ``name-ethnicity-classifier/nec-experiments`` at a fixed commit. A user's
own ``name,nationality`` CSV file can stand in for it.

Safety: the pickle comes from the internet, so it is never given to plain
``pickle.load``. Its SHA-256 is checked first; then a restricted unpickler that
refuses every class or function reference reads it, and the result must be
exactly ``dict[str, list[str]]``.

The whole split sits on the device as one padded code tensor; ``batches`` only
selects rows (see :class:`NameData`).

Preprocessing, applied to every name from any source and to user-typed names:
lower-case, leading/trailing whitespace removed, runs of whitespace collapsed
to one space. (66 names in the author's file start with a space or hold a
double space; left in, such typing artefacts could act as a class cue.)
Names are never truncated unless ``max_length`` is given; then only their first
``max_length`` characters are kept. The author's longest name has 83 characters,
and since every batch is padded only to its own longest name, long names cost
almost nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import pickle
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import torch

from lbw_utils.checks import check_positive_int
from lbw_utils.config import data_dir as resolve_data_dir
from lbw_utils.config import select_device
from lbw_utils.files import DataIntegrityError, atomic_write_bytes, verify_file

# --- the published data file -------------------------------------------------

NAMES_REPOSITORY = "name-ethnicity-classifier/nec-experiments"
NAMES_COMMIT = "989f9f7ef934bc77bd5cf99c370da358536d4cc7"
NAMES_REPO_PATH = "datasets/dict_chosen_names.pickle"
NAMES_FILE = "dict_chosen_names.pickle"
# Read at call time (not bound as default arguments) so tests can point them
# at a local file or at a tiny pickle's checksum.
NAMES_URL = f"https://raw.githubusercontent.com/{NAMES_REPOSITORY}/{NAMES_COMMIT}/{NAMES_REPO_PATH}"
NAMES_SHA256 = "7f25333c723a04af172759519d6f581684dd0a810fca0d6042877620cdb82402"

PAPER_CLASSES = ("british", "spanish", "american", "german", "italian")
SPLITS = ("train", "val", "test")

# --- character encoding ------------------------------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyz -"
PAD_INDEX = 0
UNKNOWN_INDEX = len(ALPHABET) + 1  # accents, digits, anything outside ALPHABET
VOCAB_SIZE = len(ALPHABET) + 2  # padding + alphabet + unknown = 30 symbols
UNKNOWN_CHAR = "?"  # what decode_name shows for UNKNOWN_INDEX

_CHAR_TO_CODE = {char: code for code, char in enumerate(ALPHABET, start=1)}
_CODE_TO_CHAR = {code: char for char, code in _CHAR_TO_CODE.items()} | {UNKNOWN_INDEX: UNKNOWN_CHAR}


class NamesFileMissingError(FileNotFoundError):
    """The names data file is not on disk and could not be downloaded."""


class NamesFileContentError(ValueError):
    """A names pickle holds something other than ``dict[str, list[str]]``."""


def normalise_name(name: str) -> str:
    """Lower-case, strip, and collapse whitespace runs to one space."""
    return " ".join(name.lower().split())


def encode_name(name: str, max_length: int | None = None) -> list[int]:
    """Codes of a name's characters (lower-cased first); unknown characters -> ``UNKNOWN_INDEX``.

    ``max_length`` keeps only the first ``max_length`` characters.
    """
    codes = [_CHAR_TO_CODE.get(char, UNKNOWN_INDEX) for char in name.lower()]
    return codes if max_length is None else codes[:max_length]


def decode_name(codes: Sequence[int] | torch.Tensor) -> str:
    """Inverse of :func:`encode_name`; padding is dropped, unknown codes show as ``UNKNOWN_CHAR``."""
    if isinstance(codes, torch.Tensor):
        codes = codes.tolist()
    try:
        return "".join(_CODE_TO_CHAR[code] for code in codes if code != PAD_INDEX)
    except KeyError as error:
        raise ValueError(f"code {error.args[0]} is not a character code (valid: 0..{VOCAB_SIZE - 1})") from None


def encode_batch(
    names: Sequence[str], device: str | torch.device | None = None, max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode names (e.g. typed by a user) into a model's input ``(codes [B, T], lengths [B])``.

    Names get the same preprocessing as the training data (:func:`normalise_name`);
    ``T`` is the longest name, shorter ones are padded with ``PAD_INDEX``.
    """
    if isinstance(names, str):  # a lone string would be encoded as one name per character
        raise TypeError("encode_batch takes a list of names; wrap a single name as [name]")
    cleaned = [normalise_name(name) for name in names]
    for name, clean in zip(names, cleaned):
        if not clean:
            raise ValueError(f"cannot encode {name!r}: a name needs at least one non-space character")
    codes, lengths = _pad_codes([encode_name(name, max_length) for name in cleaned])
    device = torch.device("cpu") if device is None else torch.device(device)
    return codes.to(device), lengths.to(device)


def _pad_codes(encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``[N, longest]`` int64 tensor padded with ``PAD_INDEX``, plus the lengths."""
    lengths = torch.tensor([len(codes) for codes in encoded], dtype=torch.int64)
    width = int(lengths.max()) if len(encoded) else 0
    padded = torch.full((len(encoded), width), PAD_INDEX, dtype=torch.int64)
    # Fill all rows at once: the flat codes go where position < length.
    valid = torch.arange(width) < lengths[:, None]
    padded[valid] = torch.tensor([code for codes in encoded for code in codes], dtype=torch.int64)
    return padded, lengths


# --- getting and reading the files -------------------------------------------


def names_file_path(data_dir: str | Path | None = None) -> Path:
    """Where the names pickle lives: ``<data_dir>/names/dict_chosen_names.pickle``."""
    return resolve_data_dir(data_dir) / "names" / NAMES_FILE


def ensure_names_file(data_dir: str | Path | None = None, *, expected_sha256: str | None = None) -> Path:
    """The verified path of the names pickle, downloading it first if it is missing.

    Raises :class:`NamesFileMissingError` if it is missing and cannot be downloaded,
    and :class:`~lbw_utils.files.DataIntegrityError` (naming both checksums) if the
    file on disk is not the published one.
    """
    expected = expected_sha256 or NAMES_SHA256
    path = names_file_path(data_dir)
    if not path.exists():
        _download_names_file(path, expected)
    verify_file(path, expected)
    return path


def _download_names_file(path: Path, expected_sha256: str) -> None:
    """Download, check the bytes' SHA-256, then write atomically: never a half-written file."""
    url = NAMES_URL
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors
        raise NamesFileMissingError(
            f"The names data file {NAMES_FILE} is not at {path}, and downloading it from {url} "
            f"failed ({error}). Get it from {url} (repository {NAMES_REPOSITORY}, commit "
            f"{NAMES_COMMIT}, path {NAMES_REPO_PATH}) and put it at {path}, or set LBW_DATA_DIR "
            f"to a folder that holds names/{NAMES_FILE}."
        ) from error
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise DataIntegrityError(
            f"Downloaded {url}, but its sha256 is {actual}, expected {expected_sha256}; "
            f"nothing was written to {path}."
        )
    atomic_write_bytes(path, payload)


class _DataOnlyUnpickler(pickle.Unpickler):
    """Builds only what pickle opcodes make without imports; every class or function is refused.

    Refusing ``find_class`` blocks every route to code execution (REDUCE, BUILD,
    NEWOBJ and the extension registry all need a global). Sets, tuples and numbers
    still get through, so the result's types are checked afterwards.
    """

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def read_names_pickle(path: str | Path) -> dict[str, list[str]]:
    """Safely read a ``nationality -> list of names`` pickle (verify its checksum before calling)."""
    path = Path(path)
    try:
        loaded = _DataOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as error:  # malformed pickles raise many types; all mean "refuse"
        raise NamesFileContentError(
            f"{path} holds something other than dicts, lists and strings, or is not a valid "
            f"pickle ({error}); it was refused without running anything."
        ) from None
    _check_names_structure(loaded, path)
    return loaded


def _check_names_structure(loaded: object, path: Path) -> None:
    """Accept exactly ``dict[str, list[str]]``; name the first object that does not fit.

    Checking these two levels with exact types covers the whole object: nothing
    deeper than a name string is admitted, so no recursion is needed.
    """

    def refuse(obj: object, where: str) -> NamesFileContentError:
        kind = type(obj).__name__
        if type(obj) in (dict, list, str):
            return NamesFileContentError(
                f"{path} is not shaped as a dict nationality -> list of names: found a {kind} at {where}."
            )
        return NamesFileContentError(
            f"{path} holds something other than dicts, lists and strings: found a {kind} at {where}."
        )

    if type(loaded) is not dict:
        raise refuse(loaded, "the top level")
    if not loaded:
        raise NamesFileContentError(f"{path} holds an empty dict: no nationalities.")
    for nationality, names in loaded.items():
        if type(nationality) is not str:
            raise refuse(nationality, "a dict key")
        if type(names) is not list:
            raise refuse(names, f"[{nationality!r}]")
        for position, name in enumerate(names):
            if type(name) is not str:
                raise refuse(name, f"[{nationality!r}][{position}]")


def read_names_csv(path: str | Path) -> dict[str, list[str]]:
    """Read a CSV with header ``name,nationality`` (other columns ignored) into ``nationality -> names``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"names CSV {path} does not exist")
    by_nationality: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: tolerate a BOM from Excel
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"names CSV {path} is empty; expected a header 'name,nationality' and one row per name")
        columns = [column.strip().lower() for column in header]
        missing = [column for column in ("name", "nationality") if column not in columns]
        if missing:
            raise ValueError(f"names CSV {path} lacks column(s) {missing}; its header is {header}")
        name_column, nationality_column = columns.index("name"), columns.index("nationality")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            name, nationality = _csv_cell(row, name_column), _csv_cell(row, nationality_column)
            if not name or not nationality:
                raise ValueError(f"names CSV {path}, line {reader.line_num}: empty name or nationality in {row}")
            by_nationality.setdefault(nationality, []).append(name)
    if not by_nationality:
        raise ValueError(f"names CSV {path} has a header but no rows")
    return by_nationality


def _csv_cell(row: list[str], column: int) -> str:
    return row[column].strip() if column < len(row) else ""


# --- selecting and splitting -------------------------------------------------


def _resolve_classes(classes: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """``"paper"`` -> the author's five, ``"all"`` -> every nationality (sorted), else the given list."""
    if classes == "paper":
        chosen = list(PAPER_CLASSES)
    elif classes == "all":
        chosen = sorted(available)
    elif isinstance(classes, str):
        raise ValueError(f"classes={classes!r}: use 'paper', 'all', or a list of nationalities")
    else:
        chosen = list(classes)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise ValueError(f"unknown nationalit(y/ies) {unknown}; valid ones: {sorted(available)}")
    if len(set(chosen)) != len(chosen) or len(chosen) < 2:
        raise ValueError(f"classes={chosen}: need at least two distinct nationalities")
    return chosen


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"{label}={value} must lie strictly between 0 and 1")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction} must be below 1, "
            "or nothing is left to train on"
        )


def _class_generator(seed: int, nationality: str) -> torch.Generator:
    """A random stream per (seed, class), so a class's split does not depend on which other classes are loaded."""
    digest = hashlib.sha256(f"{seed}:{nationality}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))


def _split_class(
    count: int, nationality: str, *, per_class: int | None, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Positions (within one class's list) of its train/val/test names: one seeded permutation, cut in three."""
    if per_class is not None and per_class > count:
        raise ValueError(f"per_class={per_class}, but {nationality!r} has only {count} names")
    kept = count if per_class is None else per_class
    n_val = math.floor(kept * val_fraction + 0.5)
    n_test = math.floor(kept * test_fraction + 0.5)
    if min(n_val, n_test, kept - n_val - n_test) < 1:
        raise ValueError(
            f"{nationality!r}: {kept} names are too few for val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}; every split needs at least one name of every class"
        )
    order = torch.randperm(count, generator=_class_generator(seed, nationality))[:kept].tolist()
    return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}


# --- the dataset -------------------------------------------------------------


class NameData:
    """Names of a train/val/test split, encoded once and held on ``device``.

    Storage: one ``[N, longest]`` int64 code tensor, a lengths and a labels tensor,
    with the splits as contiguous blocks (train, then val, then test), so
    ``labels(split)`` and unshuffled batches are plain slices.

    Implements the dataset protocol the training loop uses (the image datasets
    implement it too): ``labels``, ``batches``, ``size``, ``checksums``,
    ``describe``, ``texts``. Model inputs are ``(codes [B, T], lengths [B])``.
    """

    def __init__(
        self,
        *,
        name: str,
        classes: list[str],
        split_texts: dict[str, list[str]],
        split_labels: dict[str, list[int]],
        device: torch.device,
        max_length: int | None,
        source: str,
        checksums: dict[str, str],
        settings: dict,
        sort_chunk_batches: int = 50,
    ):
        self.name = name
        self.classes = list(classes)
        self.num_classes = len(classes)
        self.device = device
        self._source = source
        self._checksums = dict(checksums)
        self._settings = dict(settings)
        self._sort_chunk_batches = sort_chunk_batches
        self._texts = [text for split in SPLITS for text in split_texts[split]]
        self._bounds: dict[str, tuple[int, int]] = {}
        start = 0
        for split in SPLITS:
            self._bounds[split] = (start, start + len(split_texts[split]))
            start += len(split_texts[split])
        codes, lengths = _pad_codes([encode_name(text, max_length) for text in self._texts])
        self._lengths_cpu = lengths  # batch widths and bucketing are planned on the CPU: no device syncs
        self._codes = codes.to(device)
        self._lengths = lengths.to(device)
        all_labels = [label for split in SPLITS for label in split_labels[split]]
        self._labels = torch.tensor(all_labels, dtype=torch.int64, device=device)

    def _range(self, split: str) -> tuple[int, int]:
        if split not in self._bounds:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)}")
        return self._bounds[split]

    def size(self, split: str) -> int:
        start, stop = self._range(split)
        return stop - start

    def labels(self, split: str) -> torch.Tensor:
        """Class indices of a split, in split order, int64 on ``self.device``."""
        start, stop = self._range(split)
        return self._labels[start:stop]

    def texts(self, split: str) -> list[str]:
        """The (normalised) names of a split, in split order."""
        start, stop = self._range(split)
        return self._texts[start:stop]

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
    ) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """Yield ``((codes [B, T], lengths [B]), targets [B])``, each batch padded to its own longest name.

        ``shuffle=False``: split order, so concatenated outputs line up with
        ``labels(split)``. ``shuffle=True``: a random order drawn from
        ``generator`` (a CPU ``torch.Generator``; ``None`` uses torch's global
        RNG), length-bucketed so that little padding is processed.
        ``augment`` is accepted for the shared protocol and ignored: no name
        augmentation is used, since changing a letter can change the nationality
        a name signals.
        """
        del augment
        check_positive_int("batch_size", batch_size)
        start, stop = self._range(split)
        if shuffle:
            yield from self._shuffled_batches(start, stop, batch_size, generator)
            return
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            width = int(self._lengths_cpu[first:last].max())
            yield (self._codes[first:last, :width], self._lengths[first:last]), self._labels[first:last]

    def _shuffled_batches(self, start: int, stop: int, batch_size: int, generator: torch.Generator | None):
        rows_per_batch = self._bucketed_order(start, stop, batch_size, generator)
        order = torch.cat(rows_per_batch)
        widths = [int(self._lengths_cpu[rows].max()) for rows in rows_per_batch]
        order_on_device = order.to(self.device)  # one transfer per epoch, then slices
        first = 0
        for rows, width in zip(rows_per_batch, widths):
            index = order_on_device[first : first + len(rows)]
            first += len(rows)
            yield (self._codes[index, :width], self._lengths[index]), self._labels[index]

    def _bucketed_order(
        self, start: int, stop: int, batch_size: int, generator: torch.Generator | None
    ) -> list[torch.Tensor]:
        """Shuffle; sort chunks of ``sort_chunk_batches`` batches by length; cut into batches;
        shuffle the batch order.

        Sorting only within chunks keeps batches random while names of similar
        length share a batch, so little padding is computed. The price: name
        length differs between nationalities, so a batch's class mix varies more
        than under plain shuffling (with 5 classes, 53 to 196 of a class in a
        batch of 512 instead of ~102), which matters to per-batch statistics
        such as the dynamic EMA weights. ``sort_chunk_batches=0`` turns it off.
        """
        rows = start + torch.randperm(stop - start, generator=generator)
        if not self._sort_chunk_batches:
            return list(rows.split(batch_size))
        chunk_size = self._sort_chunk_batches * batch_size
        batches: list[torch.Tensor] = []
        for chunk in rows.split(chunk_size):
            by_length = chunk[torch.argsort(self._lengths_cpu[chunk], stable=True)]
            batches.extend(by_length.split(batch_size))
        batch_order = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in batch_order]

    def checksums(self) -> dict[str, str]:
        """File name -> SHA-256 of the data file used."""
        return dict(self._checksums)

    def describe(self) -> dict:
        """Sizes, classes, source and settings: what a run record stores about its data."""
        counts = Counter(self._texts)
        return {
            "name": self.name,
            "source": self._source,
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "sizes": {split: self.size(split) for split in SPLITS},
            "longest_name": int(self._lengths_cpu.max()),
            # The author's file repeats a few names (within and across classes); kept as published.
            "repeated_names": sum(1 for count in counts.values() if count > 1),
            "checksums": self.checksums(),
            **self._settings,
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={self.size(split)}" for split in SPLITS)
        return f"NameData({self.name!r}, {self.num_classes} classes, {sizes}, device={self.device})"


def load_names(
    classes: str | Sequence[str] = "paper",
    *,
    data_dir: str | Path | None = None,
    csv_path: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    per_class: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    max_length: int | None = None,
    expected_sha256: str | None = None,
    sort_chunk_batches: int = 50,
) -> NameData:
    """Load, split (seeded, stratified) and encode the name -> nationality data.

    classes: ``"paper"`` (british, spanish, american, german, italian), ``"all"``
        (every nationality in the source, sorted) or a list of nationalities.
    data_dir: folder holding ``names/dict_chosen_names.pickle`` (default:
        :func:`lbw_utils.config.data_dir`); downloaded there if missing.
    csv_path: use a ``name,nationality`` CSV file instead of the author's pickle.
    val_fraction, test_fraction: shares per class (default 80/10/10, as the author).
    per_class: keep only this many names of every class (seeded), for tiny runs.
    seed: fixes sub-sampling and splits. A class's split depends only on the seed
        and that class's names, not on which other classes are loaded.
    device: where the tensors live (default: ``config.select_device("auto")``).
    max_length: keep only the first ``max_length`` characters of each name
        (default: no truncation).
    expected_sha256: the pickle's checksum (default: the published one).
    sort_chunk_batches: shuffled batches are length-sorted within chunks of this
        many batches (less padding); 0 gives plain shuffling.
    """
    _check_fractions(val_fraction, test_fraction)
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class={per_class} must be a positive number of names, or None for all")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length={max_length} must be at least 1, or None for no truncation")
    if sort_chunk_batches < 0:
        raise ValueError(f"sort_chunk_batches={sort_chunk_batches} must be 0 (plain shuffle) or positive")

    if csv_path is not None:
        by_nationality = read_names_csv(csv_path)
        source = f"CSV file {Path(csv_path)}"
        checksums = {Path(csv_path).name: hashlib.sha256(Path(csv_path).read_bytes()).hexdigest()}
    else:
        path = ensure_names_file(data_dir, expected_sha256=expected_sha256)
        by_nationality = read_names_pickle(path)
        source = f"{NAMES_REPOSITORY}@{NAMES_COMMIT}:{NAMES_REPO_PATH}"
        checksums = {NAMES_FILE: expected_sha256 or NAMES_SHA256}  # verified by ensure_names_file

    chosen = _resolve_classes(classes, list(by_nationality))
    split_texts: dict[str, list[str]] = {split: [] for split in SPLITS}
    split_labels: dict[str, list[int]] = {split: [] for split in SPLITS}
    for label, nationality in enumerate(chosen):
        names = _clean_names(by_nationality[nationality], nationality)
        positions = _split_class(
            len(names), nationality, per_class=per_class,
            val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        )
        for split in SPLITS:
            split_texts[split] += [names[i] for i in positions[split]]
            split_labels[split] += [label] * len(positions[split])

    _interleave_classes(split_texts, split_labels, seed)
    return NameData(
        name="names_csv" if csv_path is not None else f"names{len(chosen)}",
        classes=chosen,
        split_texts=split_texts,
        split_labels=split_labels,
        device=select_device("auto" if device is None else device),
        max_length=max_length,
        source=source,
        checksums=checksums,
        settings={
            "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
            "per_class": per_class, "max_length": max_length, "sort_chunk_batches": sort_chunk_batches,
        },
        sort_chunk_batches=sort_chunk_batches,
    )


def _clean_names(names: list[str], nationality: str) -> list[str]:
    """Normalise every name; a name with no characters left is an error, not a silent drop."""
    cleaned = [normalise_name(name) for name in names]
    for position, name in enumerate(cleaned):
        if not name:
            raise ValueError(f"{nationality!r} name #{position} ({names[position]!r}) is empty")
    return cleaned


def _interleave_classes(split_texts: dict[str, list[str]], split_labels: dict[str, list[int]], seed: int) -> None:
    """Mix classes within each split (seeded), so split order is not grouped by class."""
    generator = torch.Generator().manual_seed(seed)
    for split in SPLITS:
        order = torch.randperm(len(split_texts[split]), generator=generator).tolist()
        split_texts[split] = [split_texts[split][i] for i in order]
        split_labels[split] = [split_labels[split][i] for i in order]


@torch.no_grad()
def predict_nationalities(model: torch.nn.Module, names: list[str], classes: Sequence[str], k: int = 3) -> list[dict]:
    """Top-``k`` nationalities with probabilities for each typed name (model in eval mode)."""
    device = next(model.parameters()).device
    codes, lengths = encode_batch(names, device=device)
    probabilities = torch.softmax(model.eval()(codes, lengths).float(), dim=1).cpu()
    top = probabilities.topk(min(k, len(classes)), dim=1)
    return [
        {"name": name, **{f"#{rank + 1}": f"{classes[index]} ({probability:.0%})"
                          for rank, (probability, index) in enumerate(zip(values.tolist(), indices.tolist()))}}
        for name, values, indices in zip(names, top.values, top.indices)
    ]
