"""Tests of the name -> nationality data (lbw_utils.data.names) and model (lbw_utils.models.recurrent)."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import Counter
from pathlib import Path

import pytest
import torch

from lbw_utils.data import names as names_module
from lbw_utils.files import DataIntegrityError
from lbw_utils.models.recurrent import NameClassifier, word_ids
from lbw_utils.data.names import files as names_files  # the module whose NAMES_URL the download reads
from lbw_utils.data.names import (
    ALPHABET,
    NAMES_FILE,
    PAD_INDEX,
    UNKNOWN_CHAR,
    UNKNOWN_INDEX,
    NamesFileContentError,
    NamesFileMissingError,
    decode_name,
    encode_batch,
    encode_name,
    load_names,
)

NATIONALITIES = ("alpha", "beta", "gamma")
NAMES_PER_CLASS = 30


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_names() -> dict[str, list[str]]:
    """3 nationalities x 30 unique names of varied length, all within ALPHABET."""

    def spelled(number: int) -> str:  # 7 -> "h": digits would encode as the unknown symbol
        return "".join("abcdefghij"[int(digit)] for digit in f"{number:02d}")

    return {
        nationality: [f"{nationality[0] * (1 + i % 9)} {spelled(i)}" for i in range(NAMES_PER_CLASS)]
        for nationality in NATIONALITIES
    }


def write_names_dir(root: Path, payload: bytes) -> tuple[Path, str]:
    """Put a names pickle where load_names looks for it; return (data_dir, its sha256)."""
    path = root / "names" / NAMES_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    return root, sha256(path)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core machine OpenMP's
    spin-waiting made a 30-step training loop take ~50 s instead of ~0.3 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny_dir(tmp_path):
    return write_names_dir(tmp_path / "data", pickle.dumps(tiny_names()))


def load_tiny(tiny_dir, **kwargs):
    data_dir, checksum = tiny_dir
    kwargs.setdefault("classes", "all")
    kwargs.setdefault("tuning_share", None)  # the splits of all names here; tests/test_tuning_share.py: with a share
    return load_names(data_dir=data_dir, expected_sha256=checksum, device="cpu", **kwargs)


# --- encoding ----------------------------------------------------------------


def test_encoding_round_trips_and_uses_padding_zero():
    for name in ["anna-lena muller", "zq x", "-", ALPHABET]:
        codes = encode_name(name)
        assert PAD_INDEX not in codes and len(codes) == len(name)
        assert decode_name(codes) == name
    assert encode_name("ABC") == encode_name("abc")  # lower-cased first
    assert decode_name(encode_name("abcdef", max_length=3)) == "abc"


def test_unknown_characters_map_to_unknown_symbol():
    codes = encode_name("josé 2")
    assert codes[3] == UNKNOWN_INDEX and codes[5] == UNKNOWN_INDEX
    assert sum(code == UNKNOWN_INDEX for code in codes) == 2
    assert decode_name(codes) == f"jos{UNKNOWN_CHAR} {UNKNOWN_CHAR}"
    with pytest.raises(ValueError, match="not a character code"):
        decode_name([99])


def test_encode_batch_pads_to_longest_and_normalises():
    codes, lengths = encode_batch(["Bo", "  anna   maria ", "x"], device="cpu")
    assert lengths.tolist() == [2, 10, 1]
    assert codes.shape == (3, 10) and codes.dtype == torch.int64
    assert decode_name(codes[1]) == "anna maria"
    assert codes[0, 2:].eq(PAD_INDEX).all() and codes[2, 1:].eq(PAD_INDEX).all()
    with pytest.raises(ValueError, match="at least one"):
        encode_batch(["ok", "   "])
    with pytest.raises(TypeError, match="list of names"):
        encode_batch("anna")


# --- loading the pickle ------------------------------------------------------


def test_loads_tiny_pickle_with_its_checksum(tiny_dir):
    data = load_tiny(tiny_dir)
    assert data.name == "names3" and data.classes == list(NATIONALITIES) and data.num_classes == 3
    assert {split: data.size(split) for split in ("train", "val", "test")} == {"train": 72, "val": 9, "test": 9}
    assert data.checksums() == {NAMES_FILE: tiny_dir[1]}
    described = data.describe()
    assert described["sizes"] == {"train": 72, "val": 9, "test": 9} and described["classes"] == list(NATIONALITIES)
    # Every name comes back with the right label.
    label_of = {name: NATIONALITIES.index(nat) for nat, names in tiny_names().items() for name in names}
    for split in ("train", "val", "test"):
        assert [label_of[text] for text in data.texts(split)] == data.labels(split).tolist()
    with pytest.raises(ValueError, match="unknown split"):
        data.labels("validation")


def test_downloads_missing_file_atomically(tmp_path, monkeypatch):
    source = tmp_path / "server" / "names.pickle"
    source.parent.mkdir()
    source.write_bytes(pickle.dumps(tiny_names()))
    monkeypatch.setattr(names_files, "NAMES_URL", source.as_uri())
    data_dir = tmp_path / "data"
    data = load_names("all", data_dir=data_dir, expected_sha256=sha256(source), device="cpu")
    assert data.size("train") == 63  # 80 % of the 27 names a class outside the default tuning share (3 of 30)
    assert os.listdir(data_dir / "names") == [NAMES_FILE]  # no temporary file left behind
    assert sha256(data_dir / "names" / NAMES_FILE) == sha256(source)


def test_download_with_wrong_checksum_writes_nothing(tmp_path, monkeypatch):
    source = tmp_path / "names.pickle"
    source.write_bytes(pickle.dumps(tiny_names()))
    monkeypatch.setattr(names_files, "NAMES_URL", source.as_uri())
    with pytest.raises(DataIntegrityError, match="nothing was written"):
        load_names("all", data_dir=tmp_path / "data", expected_sha256="0" * 64, device="cpu")
    assert not (tmp_path / "data" / "names").exists() or not os.listdir(tmp_path / "data" / "names")


def test_missing_file_without_network_names_path_and_source(tmp_path, monkeypatch):
    monkeypatch.setattr(names_files, "NAMES_URL", (tmp_path / "nowhere.pickle").as_uri())
    with pytest.raises(NamesFileMissingError) as raised:
        load_names(data_dir=tmp_path / "data", device="cpu")
    assert isinstance(raised.value, FileNotFoundError)
    message = str(raised.value)
    assert str(tmp_path / "data" / "names" / NAMES_FILE) in message
    assert "nec-experiments" in message and NAMES_FILE in message


def test_tampered_file_is_refused_before_unpickling(tmp_path):
    marker = tmp_path / "marker"
    data_dir, checksum = write_names_dir(tmp_path / "data", pickle.dumps(WritesMarker(marker)))
    with pytest.raises(DataIntegrityError) as raised:
        load_names(data_dir=data_dir, expected_sha256="a" * 64, device="cpu")
    message = str(raised.value)
    assert checksum in message and "a" * 64 in message and NAMES_FILE in message
    assert not marker.exists()


class WritesMarker:
    """Unpickling this with plain pickle creates ``marker``: a stand-in for os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    "make_payload",
    [
        pytest.param(lambda marker: {"a", "b"}, id="set"),
        pytest.param(lambda marker: (1, 2, 3), id="tuple-of-ints"),
        pytest.param(lambda marker: {"alpha": ("x", "y")}, id="dict-of-tuple"),
        pytest.param(lambda marker: {"alpha": ["x", 3]}, id="int-among-names"),
        pytest.param(lambda marker: {"alpha": [b"bytes"]}, id="bytes-among-names"),
        pytest.param(lambda marker: {"alpha": [WritesMarker(marker)]}, id="reduce-calls-a-function"),
        pytest.param(lambda marker: WritesMarker(marker), id="top-level-reduce"),
    ],
)
def test_pickle_of_other_objects_is_refused_without_running_anything(tmp_path, make_payload):
    marker = tmp_path / "marker"
    payload = pickle.dumps(make_payload(marker))
    data_dir, checksum = write_names_dir(tmp_path / "data", payload)
    with pytest.raises(NamesFileContentError, match="something other than dicts, lists and strings"):
        load_names("all", data_dir=data_dir, expected_sha256=checksum, device="cpu")
    assert not marker.exists()


def test_reduce_payload_is_live_with_plain_pickle(tmp_path):
    """Control for the test above: the payload really would run code under plain pickle."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(WritesMarker(marker))).close()
    assert marker.exists()


def test_wrongly_shaped_pickle_is_refused(tmp_path):
    data_dir, checksum = write_names_dir(tmp_path / "data", pickle.dumps({"alpha": [["nested"]]}))
    with pytest.raises(NamesFileContentError, match="not shaped as a dict nationality"):
        load_names("all", data_dir=data_dir, expected_sha256=checksum, device="cpu")


# --- CSV ---------------------------------------------------------------------


def test_csv_loader(tmp_path):
    rows = [f"Name {i:02d} {nat},{nat}" for nat in ("fr", "de") for i in range(20)]
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text("name,nationality\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = load_names("all", csv_path=csv_path, device="cpu")
    assert data.name == "names_csv" and data.classes == ["de", "fr"]
    assert [data.size(split) for split in ("train", "val", "test")] == [28, 4, 4]  # 18 a class: 2 are tuning names
    assert data.checksums() == {"mine.csv": sha256(csv_path)}
    for text, label in zip(data.texts("train"), data.labels("train").tolist()):
        assert text.startswith("name ") and text.endswith(data.classes[label])  # lower-cased


@pytest.mark.parametrize(
    "content, message",
    [("", "is empty"), ("name,country\nann,fr\n", "lacks column"), ("name,nationality\n", "no rows"),
     ("name,nationality\nann,fr\n ,de\n", "line 3: empty name")],
)
def test_csv_errors(tmp_path, content, message):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_names("all", csv_path=csv_path, device="cpu")


# --- choices and their validation --------------------------------------------


def test_unknown_class_lists_valid_ones(tiny_dir):
    with pytest.raises(ValueError, match="unknown") as raised:
        load_tiny(tiny_dir, classes=["alpha", "delta"])
    assert all(nationality in str(raised.value) for nationality in NATIONALITIES)
    with pytest.raises(ValueError, match="british"):
        load_tiny(tiny_dir, classes="paper")  # the paper's classes are not in this file


def test_per_class_keeps_that_many_and_rejects_too_many(tiny_dir):
    data = load_tiny(tiny_dir, per_class=10)
    for split, expected in (("train", 8), ("val", 1), ("test", 1)):
        assert Counter(data.labels(split).tolist()) == {0: expected, 1: expected, 2: expected}
    with pytest.raises(ValueError, match="per_class=31"):
        load_tiny(tiny_dir, per_class=31)


@pytest.mark.parametrize(
    "val_fraction, test_fraction, message",
    [(0.0, 0.1, "val_fraction"), (0.1, 1.0, "test_fraction"), (-0.1, 0.1, "val_fraction"),
     (0.5, 0.5, "must be below 1"), (0.01, 0.1, "too few")],
)
def test_bad_fractions_are_refused(tiny_dir, val_fraction, test_fraction, message):
    with pytest.raises(ValueError, match=message):
        load_tiny(tiny_dir, val_fraction=val_fraction, test_fraction=test_fraction)


# --- splits ------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_seeded(tiny_dir):
    data = load_tiny(tiny_dir, val_fraction=0.2, test_fraction=0.2)
    expected_counts = {"train": 18, "val": 6, "test": 6}
    for split, count in expected_counts.items():
        assert Counter(data.labels(split).tolist()) == {0: count, 1: count, 2: count}
    split_sets = [set(data.texts(split)) for split in ("train", "val", "test")]
    assert sum(map(len, split_sets)) == 90 and len(set.union(*split_sets)) == 90  # disjoint, complete

    again, other_seed = load_tiny(tiny_dir, val_fraction=0.2, test_fraction=0.2), load_tiny(
        tiny_dir, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert all(again.texts(split) == data.texts(split) for split in ("train", "val", "test"))
    assert set(other_seed.texts("test")) != set(data.texts("test"))


def test_a_class_split_does_not_depend_on_the_other_classes(tiny_dir):
    pair, trio = load_tiny(tiny_dir, classes=["alpha", "beta"]), load_tiny(tiny_dir)
    alpha_test = {text for text in trio.texts("test") if text.startswith("a")}
    assert {text for text in pair.texts("test") if text.startswith("a")} == alpha_test


# --- batches -----------------------------------------------------------------


def test_unshuffled_batches_follow_split_order(tiny_dir):
    data = load_tiny(tiny_dir)
    batches = list(data.batches("train", 16))
    assert [len(targets) for _, targets in batches] == [16, 16, 16, 16, 8]
    assert torch.equal(torch.cat([targets for _, targets in batches]), data.labels("train"))
    decoded = [decode_name(row) for (codes, _), _ in batches for row in codes]
    assert decoded == data.texts("train")
    for (codes, lengths), _ in batches:
        assert codes.dtype == lengths.dtype == torch.int64
        assert codes.shape[1] == lengths.max()  # padded only to this batch's longest name
        assert torch.equal((codes != PAD_INDEX).sum(1), lengths)


def test_shuffled_batches_cover_every_name_once_and_follow_the_generator(tiny_dir):
    data = load_tiny(tiny_dir)
    text_label = sorted(zip(data.texts("train"), data.labels("train").tolist()))

    def epoch(seed):
        pairs, generator = [], torch.Generator().manual_seed(seed)
        for (codes, lengths), targets in data.batches("train", 8, shuffle=True, generator=generator):
            assert codes.shape[1] == lengths.max()
            pairs += [(decode_name(row), label) for row, label in zip(codes, targets.tolist())]
        return pairs

    first = epoch(0)
    assert sorted(first) == text_label  # every name once, with its own label
    assert epoch(0) == first and epoch(1) != first


def test_bucketing_keeps_padding_small():
    lengths = torch.randint(1, 40, (4000,), generator=torch.Generator().manual_seed(0))
    names = ["a" * int(length) for length in lengths]

    def computed_cells(sort_chunk_batches: int) -> int:
        data = names_module.NameData(
            name="lengths", classes=["a", "b"], split_texts={"train": names, "val": ["a"], "test": ["a"]},
            split_labels={"train": [0] * 4000, "val": [0], "test": [1]}, device=torch.device("cpu"),
            max_length=None, source="test", checksums={}, settings={}, sort_chunk_batches=sort_chunk_batches)
        return sum(codes.numel() for (codes, _), _ in data.batches("train", 40, shuffle=True))

    assert computed_cells(50) < 1.1 * int(lengths.sum()) < computed_cells(0)


# --- the model ---------------------------------------------------------------


@pytest.mark.parametrize("cell, options", [
    ("lstm", {}), ("bigru", {}), ("bilstm", {"pooling": "meanmax", "conv_channels": 0}),
    ("gru", {"pooling": "mean", "ngram_buckets": 64}), ("bigru", {"pooling": "max", "ngram_buckets": 64,
                                                                  "ngram_orders": (2, 4)}),
    ("bigru", {"pooling": "meanmax", "ngram_buckets": 64, "words": True, "embedding_dropout": 0.5}),
])
def test_a_name_gets_the_same_logits_alone_and_in_a_padded_batch(cell, options):
    torch.manual_seed(0)
    model = NameClassifier(4, cell=cell, embedding_dim=16, hidden_size=8, **options).eval()
    with torch.no_grad():  # whatever the padding row holds, it must not leak into a name's logits
        model.embedding.weight[PAD_INDEX] = 1.0
    short = "li wei"
    alone = model(*encode_batch([short]))
    batch_codes, batch_lengths = encode_batch(["maximilian von hohenberg", short, "an", "carla"])
    assert batch_codes.shape[1] > len(short)
    in_batch = model(batch_codes, batch_lengths)
    assert in_batch.shape == (4, 4)
    torch.testing.assert_close(in_batch[1:2], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "bigru"])
def test_logits_use_the_top_layer_final_state_of_each_direction(cell):
    torch.manual_seed(0)
    model = NameClassifier(3, cell=cell).eval()
    codes, lengths = encode_batch(["maria garcia"])
    with torch.no_grad():
        features = torch.relu(model.conv(model.embedding(codes).transpose(1, 2))).transpose(1, 2)
        outputs, _ = model.rnn(features)  # top layer's output at every step
        hidden = model.rnn.hidden_size
        if cell == "lstm":
            final = outputs[:, -1]
        else:  # forward direction ends at the last character, backward at the first
            final = torch.cat([outputs[:, -1, :hidden], outputs[:, 0, hidden:]], dim=1)
        torch.testing.assert_close(model(codes, lengths), model.classifier(final), atol=1e-5, rtol=0)


def test_model_trains_and_rejects_unknown_cell():
    torch.manual_seed(0)
    model = NameClassifier(2, embedding_dim=16, conv_channels=8, hidden_size=16, cell="bigru")
    codes, lengths = encode_batch(["anna", "bob", "carolina", "dd"] * 4)
    targets = torch.tensor([0, 1, 0, 1] * 4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first_loss = None
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(codes, lengths), targets)
        first_loss = first_loss if first_loss is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first_loss
    with pytest.raises(ValueError, match="lstm"):
        NameClassifier(2, cell="transformer")
    with pytest.raises(ValueError, match=r"pooling='sum' is not one of \['last', 'mean', 'max', 'meanmax'\]"):
        NameClassifier(2, pooling="sum")
    with pytest.raises(ValueError, match=r"ngram_orders=\(1, 3\) is not allowed"):
        NameClassifier(2, ngram_buckets=64, ngram_orders=(1, 3))
    with pytest.raises(ValueError, match=r"words=True needs ngram_buckets > 0"):
        NameClassifier(2, words=True)


def test_whole_word_embeddings_reach_the_logits():
    """With ``words`` a name's logits change when only its whole-word rows of the hashed table change."""
    torch.manual_seed(0)
    model = NameClassifier(3, cell="bigru", embedding_dim=8, hidden_size=8, conv_channels=0, pooling="meanmax",
                           ngram_buckets=4096, words=True).eval()
    codes, lengths = encode_batch(["maria garcia"])
    before = model(codes, lengths)
    with torch.no_grad():
        model.ngrams.weight[word_ids(codes, 4096)[0].unique()[1:]] += 1.0  # the rows of "maria" and "garcia"
    assert not torch.allclose(model(codes, lengths), before)


def test_ending_ngram_ids_see_the_characters_before_and_nothing_of_the_padding():
    from lbw_utils.models.recurrent import ending_ngram_ids

    codes, lengths = encode_batch(["anna", "an"])
    ids = ending_ngram_ids(codes, lengths, (2, 3), 1024)
    assert ids.shape == (2, 4, 2) and (ids[1, 2:] == 0).all() and (ids[0] > 0).all()
    assert torch.equal(ids[0, 1], ids[1, 1])  # "an" and "^an" end at the same place in both names
    assert ids[0, 1, 0] != ids[0, 3, 0]  # "an" and "na" differ


def test_the_name_switch_keeps_one_word_and_takes_the_other_from_the_same_class(tiny_dir):
    data = load_tiny(tiny_dir)
    data.name_switch = 1.0  # every name switched
    generator = torch.Generator().manual_seed(0)
    train = set(data.texts("train"))
    firsts_by_class, lasts_by_class = {}, {}
    for text, label in zip(data.texts("train"), data.labels("train").tolist()):
        firsts_by_class.setdefault(label, set()).add(text.split(" ")[0])
        lasts_by_class.setdefault(label, set()).add(text.split(" ")[-1])
    changed = 0
    for (codes, lengths), targets in data.batches("train", 8, shuffle=True, generator=generator, augment=True):
        for row, label in zip(range(len(targets)), targets.tolist()):
            first, last = decode_name(codes[row, : lengths[row]]).split(" ")
            assert first in firsts_by_class[label] and last in lasts_by_class[label]
            changed += f"{first} {last}" not in train
    assert changed > 0
    plain = [decode_name(c[:n]) for (codes, lengths), _ in data.batches("train", 8, shuffle=True, augment=False)
             for c, n in zip(codes, lengths)]
    assert set(plain) == train  # without augment, the names as they are


# --- the real data -----------------------------------------------------------

REAL_DATA = os.environ.get("LBW_DATA_DIR")


@pytest.mark.skipif(
    not REAL_DATA or not (Path(REAL_DATA) / "names" / NAMES_FILE).is_file(),
    reason="set LBW_DATA_DIR to a folder holding names/dict_chosen_names.pickle",
)
def test_real_names_file():
    raw = names_module.read_names_pickle(names_module.ensure_names_file(REAL_DATA))  # checksum verified
    assert len(raw) == 42 and all(len(names) == 2000 for names in raw.values())
    data = load_names("paper", data_dir=REAL_DATA, device="cpu")
    assert data.classes == ["british", "spanish", "american", "german", "italian"]
    # 80/10/10 of the 1,800 names a class outside the default tuning share (10 %)
    assert [data.size(split) for split in ("train", "val", "test")] == [7200, 900, 900]
    assert data.checksums() == {NAMES_FILE: names_module.NAMES_SHA256}
