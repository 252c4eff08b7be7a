"""The names task's dataset: class selection, a fixed tuning share, seeded stratified splits or k-fold
cross-fitting, and :class:`NameData`.

The tuning share (``tuning_share``, default 0.1): a fixed share of each class's names, drawn once from a
constant seed (:data:`TUNING_SEED`, never from the run's seed, fold or ``partition_seed``), is set aside
for choosing hyper-parameters. Evaluated runs never see one of its names in any split: the splits below
cut only the rest. A tuning run (``tuning=True``, :func:`load_names`) trains on the rest and validates on
the tuning share; its test split is empty, so nothing about evaluated names can select anything.

Two ways to split a class's (non-tuning) names: a random train/val/test cut per seed (``folds=None``), or
k-fold cross-fitting (``folds=k``): one fixed partition of each class's names into k test folds (drawn from
``partition_seed`` only), and for fold ``i`` (the run's ``seed``) a stratified validation split drawn
from the other k - 1 folds; the rest trains. Over the k folds every non-tuning name is a test name exactly
once.

The whole split sits on the device as one padded code tensor; ``batches`` only
selects rows (see :class:`NameData`).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import torch

from lbw_utils.checks import check_positive_int
from lbw_utils.config import select_device
from lbw_utils.data import DatasetRegistration, check_folds, check_tuning_share, register_dataset
from lbw_utils.data.images import SPLITS
from lbw_utils.data.names.encoding import encode_name, normalise_name, pad_codes
from lbw_utils.data.names.files import read_names_source

PAPER_CLASSES = ("british", "spanish", "american", "german", "italian")
# The share of training names the author's augmentation rewrites (train_stats.json "augmentation" of his final
# 21-class run: 0.25), when a run's training config asks for augmentation.
NAME_SWITCH = 0.25
# The share of each class's names set aside for tuning by default, and the seed that draws it: a constant, so
# the share is the same for every run, fold and partition.
TUNING_SHARE = 0.1
TUNING_SEED = "tuning-share"


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


def _class_generator(seed: int | str, nationality: str) -> torch.Generator:
    """A random stream per (seed, class), so a class's split does not depend on which other classes are loaded."""
    digest = hashlib.sha256(f"{seed}:{nationality}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))


def _tuning_cut(names: list[str], nationality: str, share: float | None) -> tuple[list[int], list[int]]:
    """``(tuning, rest)``: positions (within one class's list of names) of its tuning share and of the others,
    both ascending. The share is the first ``round(n * share)`` of the class's ``n`` distinct names in one
    permutation drawn from (:data:`TUNING_SEED`, the class), with every copy of a name the file repeats within
    the class: fixed whatever the run, and nested (a smaller share is part of a larger one). A name the file
    gives to two classes is drawn in each class on its own (a class's split never depends on the others).
    ``share`` None: no name is set aside."""
    if share is None:
        return [], list(range(len(names)))
    distinct = list(dict.fromkeys(names))  # first-appearance order
    n_tuning = math.floor(len(distinct) * share + 0.5)
    if n_tuning < 1:
        raise ValueError(f"tuning_share={share} sets no name of {nationality!r} ({len(distinct)} distinct names) "
                         f"aside; allowed: a share in [{0.5 / len(distinct):.3g}, 0.5] for that class")
    order = torch.randperm(len(distinct), generator=_class_generator(TUNING_SEED, nationality)).tolist()
    chosen = {distinct[i] for i in order[:n_tuning]}
    tuning = [position for position, name in enumerate(names) if name in chosen]
    return tuning, [position for position, name in enumerate(names) if name not in chosen]


def _split_class(count: int, nationality: str, *, per_class: int | None, val_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, list[int]]:
    """Positions (within one class's list) of its train/val/test names: one seeded permutation, cut in three."""
    if per_class is not None and per_class > count:
        raise ValueError(f"per_class={per_class}, but {nationality!r} has only {count} names")
    kept = count if per_class is None else per_class
    n_val = math.floor(kept * val_fraction + 0.5)
    n_test = math.floor(kept * test_fraction + 0.5)
    if min(n_val, n_test, kept - n_val - n_test) < 1:
        raise ValueError(f"{nationality!r}: {kept} names are too few for val_fraction={val_fraction} and "
                         f"test_fraction={test_fraction}; every split needs at least one name of every class")
    order = torch.randperm(count, generator=_class_generator(seed, nationality))[:kept].tolist()
    return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}


def _tuning_train(count: int, nationality: str, *, per_class: int | None, seed: int) -> list[int]:
    """A tuning run's training positions (within the ``count`` non-tuning names): all of them, or
    ``per_class`` drawn from (seed, class)."""
    if per_class is not None and per_class > count:
        raise ValueError(f"per_class={per_class}, but {nationality!r} has only {count} names")
    order = torch.randperm(count, generator=_class_generator(f"tuning/{seed}", nationality)).tolist()
    return sorted(order if per_class is None else order[:per_class])


def _fold_class(count: int, nationality: str, *, per_class: int | None, val_fraction: float, folds: int, fold: int,
                partition_seed: int) -> dict[str, list[int]]:
    """Positions of one class's train/val/test names in fold ``fold`` of ``folds``.

    The class's (kept) names are permuted once from ``partition_seed`` and cut into ``folds`` contiguous
    test folds of nearly equal size, whatever the fold index; fold ``fold``'s validation names are
    ``round(kept * val_fraction)`` of the others, drawn from (partition_seed, fold)."""
    if per_class is not None and per_class > count:
        raise ValueError(f"per_class={per_class}, but {nationality!r} has only {count} names")
    kept = count if per_class is None else per_class
    if folds > kept:
        raise ValueError(f"folds={folds} is more than {nationality!r} has names ({kept}); allowed: "
                         f"2..{kept}")
    order = torch.randperm(count, generator=_class_generator(partition_seed, nationality))[:kept].tolist()
    bounds = [kept * i // folds for i in range(folds + 1)]
    test = order[bounds[fold] : bounds[fold + 1]]
    rest = order[: bounds[fold]] + order[bounds[fold + 1] :]
    n_val = math.floor(kept * val_fraction + 0.5)
    if n_val < 1 or len(rest) - n_val < 1:
        raise ValueError(f"{nationality!r}: {kept} names are too few for folds={folds} and val_fraction="
                         f"{val_fraction}; every split needs at least one name of every class")
    shuffled = torch.randperm(len(rest), generator=_class_generator(f"{partition_seed}/fold{fold}", nationality))
    rest = [rest[i] for i in shuffled.tolist()]
    return {"test": test, "val": rest[:n_val], "train": rest[n_val:]}


class NameData:
    """Names of a train/val/test split, encoded once and held on ``device``.

    Storage: one ``[N, longest]`` int64 code tensor, a lengths and a labels tensor,
    with the splits as contiguous blocks (train, then val, then test), so
    ``labels(split)`` and unshuffled batches are plain slices.

    Implements the dataset protocol the training loop uses (the image datasets
    implement it too): ``labels``, ``batches``, ``size``, ``checksums``,
    ``describe``, ``texts``. Model inputs are ``(codes [B, T], lengths [B])``.
    """

    def __init__(self, *, name: str, classes: list[str], split_texts: dict[str, list[str]],
                 split_labels: dict[str, list[int]], device: torch.device, max_length: int | None, source: str,
                 checksums: dict[str, str], settings: dict, sort_chunk_batches: int = 50,
                 name_switch: float = NAME_SWITCH):
        self.name = name
        self.classes = list(classes)
        self.num_classes = len(classes)
        self.device = device
        self._source = source
        self._checksums = dict(checksums)
        self._settings = dict(settings)
        self._sort_chunk_batches = sort_chunk_batches
        self.name_switch = name_switch
        self._max_length = max_length
        self._texts = [text for split in SPLITS for text in split_texts[split]]
        self._bounds: dict[str, tuple[int, int]] = {}
        start = 0
        for split in SPLITS:
            self._bounds[split] = (start, start + len(split_texts[split]))
            start += len(split_texts[split])
        codes, lengths = pad_codes([encode_name(text, max_length) for text in self._texts])
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

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                augment: bool = False) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """Yield ``((codes [B, T], lengths [B]), targets [B])``, each batch padded to its own longest name.

        ``shuffle=False``: split order, so concatenated outputs line up with
        ``labels(split)``. ``shuffle=True``: a random order drawn from
        ``generator`` (a CPU ``torch.Generator``; ``None`` uses torch's global
        RNG), length-bucketed so that little padding is processed.
        ``augment`` (shuffled training batches only): the draft author's name switch
        (``nameEthnicityDataset.py`` of name-ethnicity-classifier/nec-experiments, ``src/final_model``):
        each name, with probability ``name_switch``, keeps its first or its last word (a coin flip) and
        takes the other from a random training name of the same class. Letters are never changed, since
        changing a letter can change the nationality a name signals. Model configurations that do not
        ask for it set ``augment`` to False.
        """
        check_positive_int("batch_size", batch_size)
        start, stop = self._range(split)
        if shuffle:
            switch = augment and split == "train" and self.name_switch > 0
            yield from self._shuffled_batches(start, stop, batch_size, generator, switch)
            return
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            width = int(self._lengths_cpu[first:last].max())
            yield (self._codes[first:last, :width], self._lengths[first:last]), self._labels[first:last]

    def _shuffled_batches(self, start: int, stop: int, batch_size: int, generator: torch.Generator | None,
                          switch: bool = False):
        rows_per_batch = self._bucketed_order(start, stop, batch_size, generator)
        order = torch.cat(rows_per_batch)
        widths = [int(self._lengths_cpu[rows].max()) for rows in rows_per_batch]
        order_on_device = order.to(self.device)  # one transfer per epoch, then slices
        first = 0
        for rows, width in zip(rows_per_batch, widths):
            index = order_on_device[first : first + len(rows)]
            first += len(rows)
            if switch:
                yield self._switched(rows, start, stop, generator), self._labels[index]
            else:
                yield (self._codes[index, :width], self._lengths[index]), self._labels[index]

    def _switched(self, rows: torch.Tensor, start: int, stop: int, generator: torch.Generator | None):
        """Codes and lengths of ``rows`` with the name switch applied (see :meth:`batches`)."""
        if not hasattr(self, "_word_codes"):  # once: each name's codes and its first and last word's codes
            self._code_lists = [encode_name(text, self._max_length) for text in self._texts]
            self._word_codes = [(encode_name(text.split(" ")[0]), encode_name(text.split(" ")[-1]))
                                for text in self._texts]
            self._labels_list = self._labels.cpu().tolist()
            labels = self._labels[start:stop].cpu()
            self._same_class = [(start + torch.nonzero(labels == c).flatten()).tolist()
                                for c in range(self.num_classes)]
        draws = (torch.rand(len(rows), generator=generator) < self.name_switch).tolist()
        flips = (torch.rand(len(rows), generator=generator) < 0.5).tolist()
        partners = torch.rand(len(rows), generator=generator).tolist()
        space = encode_name(" ")
        code_lists = []
        for row, switch, flip, partner in zip(rows.tolist(), draws, flips, partners):
            if not switch:
                code_lists.append(self._code_lists[row])
                continue
            pool = self._same_class[self._labels_list[row]]
            own, other = self._word_codes[row], self._word_codes[pool[int(partner * len(pool))]]
            codes = own[0] + space + other[1] if flip else other[0] + space + own[1]
            code_lists.append(codes if self._max_length is None else codes[: self._max_length])
        codes, lengths = pad_codes(code_lists)
        return codes.to(self.device), lengths.to(self.device)

    def _bucketed_order(self, start: int, stop: int, batch_size: int,
                        generator: torch.Generator | None) -> list[torch.Tensor]:
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


def load_names(classes: str | Sequence[str] = "paper", *, data_dir: str | Path | None = None,
               csv_path: str | Path | None = None, val_fraction: float = 0.1, test_fraction: float = 0.1,
               per_class: int | None = None, seed: int = 0, device: str | torch.device | None = None,
               max_length: int | None = None, expected_sha256: str | None = None,
               sort_chunk_batches: int = 50, folds: int | None = None, partition_seed: int = 0,
               name_switch: float = NAME_SWITCH, tuning_share: float | None = TUNING_SHARE,
               tuning: bool = False) -> NameData:
    """Load, split (seeded, stratified) and encode the name -> nationality data.

    classes: ``"paper"`` (british, spanish, american, german, italian), ``"all"``
        (every nationality in the source, sorted) or a list of nationalities.
    data_dir: folder holding ``names/dict_chosen_names.pickle`` (default:
        :func:`lbw_utils.config.data_dir`); downloaded there if missing.
    csv_path: use a ``name,nationality`` CSV file instead of the author's pickle.
    val_fraction, test_fraction: shares per class (default 80/10/10 of the non-tuning names, as the author).
    per_class: keep only this many (non-tuning) names of every class (seeded), for tiny runs.
    seed: fixes sub-sampling and splits. A class's split depends only on the seed
        and that class's names, not on which other classes are loaded.
    device: where the tensors live (default: ``config.select_device("auto")``).
    max_length: keep only the first ``max_length`` characters of each name
        (default: no truncation).
    expected_sha256: the pickle's checksum (default: the published one).
    sort_chunk_batches: shuffled batches are length-sorted within chunks of this
        many batches (less padding); 0 gives plain shuffling.
    folds: ``None`` for the random splits above; an integer k >= 2 for k-fold cross-fitting, where
        ``seed`` is the fold index (0..k-1) and ``test_fraction`` is unused (the test fold is 1/k of a
        class): see the module's docstring.
    partition_seed: fixes the k-fold partition of the non-tuning names (never the tuning share).
    name_switch: the share of training names the author's augmentation rewrites when a run asks for
        augmentation (see :meth:`NameData.batches`).
    tuning_share: the share of each class's names set aside for tuning, in (0, 0.5]: fixed (drawn from
        :data:`TUNING_SEED`, whatever ``seed``, ``folds`` and ``partition_seed``), never in an evaluated
        split; the splits above cut the rest. ``None``: nothing set aside (the splits of records made before
        the share existed); a study's ``DataOptions`` cannot ask for it (None there means this default).
    tuning: a tuning run: train on the non-tuning names (``per_class`` of them a class if given, drawn
        from ``seed``), validate on the tuning share; the test split is empty. Needs a ``tuning_share``
        and ``folds=None``; ``val_fraction`` and ``test_fraction`` are unused.
    """
    if not 0 <= name_switch <= 1:
        raise ValueError(f"name_switch={name_switch!r} must lie in [0, 1]")
    check_folds(folds, [seed])
    check_tuning_share(tuning_share)
    if tuning and (tuning_share is None or folds is not None):
        raise ValueError(f"tuning=True with tuning_share={tuning_share!r} and folds={folds!r} is not allowed: a "
                         "tuning run validates on the tuning share (a share in (0, 0.5]) and trains on the rest "
                         "(folds=None)")
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"{label}={value} must lie strictly between 0 and 1")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction = {val_fraction + test_fraction} must be below 1, "
                         "or nothing is left to train on")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class={per_class} must be a positive number of names, or None for all")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length={max_length} must be at least 1, or None for no truncation")
    if sort_chunk_batches < 0:
        raise ValueError(f"sort_chunk_batches={sort_chunk_batches} must be 0 (plain shuffle) or positive")

    by_nationality, source, checksums = read_names_source(data_dir, csv_path, expected_sha256)
    chosen = _resolve_classes(classes, list(by_nationality))
    split_texts: dict[str, list[str]] = {split: [] for split in SPLITS}
    split_labels: dict[str, list[int]] = {split: [] for split in SPLITS}
    for label, nationality in enumerate(chosen):
        names = _clean_names(by_nationality[nationality], nationality)
        tuning_positions, rest = _tuning_cut(names, nationality, tuning_share)
        where = ("" if tuning_share is None else
                 f"; counted outside the tuning share (tuning_share={tuning_share} sets {len(tuning_positions)} of "
                 f"{len(names)} aside)")
        try:
            if tuning:
                positions = {"train": _tuning_train(len(rest), nationality, per_class=per_class, seed=seed),
                             "val": [], "test": []}
            elif folds is None:
                positions = _split_class(len(rest), nationality, per_class=per_class, val_fraction=val_fraction,
                                         test_fraction=test_fraction, seed=seed)
            else:
                positions = _fold_class(len(rest), nationality, per_class=per_class, val_fraction=val_fraction,
                                        folds=folds, fold=seed, partition_seed=partition_seed)
        except ValueError as error:  # the counts it names are those left outside the tuning share
            raise ValueError(f"{error}{where}") from None
        # positions index the non-tuning names; a tuning run validates on the tuning share
        positions = {split: [rest[i] for i in positions[split]] for split in SPLITS}
        if tuning:
            positions["val"] = tuning_positions
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
            "seed": seed, "val_fraction": None if tuning else val_fraction,
            "test_fraction": None if tuning else test_fraction if folds is None else 1 / folds,
            "per_class": per_class, "max_length": max_length, "sort_chunk_batches": sort_chunk_batches,
            "name_switch": name_switch,
            **({} if folds is None else {"folds": folds, "fold": seed, "partition_seed": partition_seed}),
            # absent without a share: the description (and fingerprint) of records made before the share existed
            **({} if tuning_share is None else {"tuning_share": tuning_share}),
            **({"tuning": True} if tuning else {}),
        },
        sort_chunk_batches=sort_chunk_batches,
        name_switch=name_switch,
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


# The names task's registration: the recurrent network by default; its classes, k-fold cross-fitting,
# augmentation share and tuning share are its own options (load_names' keywords of the same names, with their
# defaults).
register_dataset(DatasetRegistration(
    "names", load_names, default_model="name_rnn",
    options=("data_dir", "per_class", "classes", "folds", "partition_seed", "name_switch", "tuning_share"),
))
