"""Names as character codes: the alphabet, preprocessing, encoding, decoding and padding.

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

from typing import Sequence

import torch

ALPHABET = "abcdefghijklmnopqrstuvwxyz -"
PAD_INDEX = 0
UNKNOWN_INDEX = len(ALPHABET) + 1  # accents, digits, anything outside ALPHABET
VOCAB_SIZE = len(ALPHABET) + 2  # padding + alphabet + unknown = 30 symbols
UNKNOWN_CHAR = "?"  # what decode_name shows for UNKNOWN_INDEX

_CHAR_TO_CODE = {char: code for code, char in enumerate(ALPHABET, start=1)}
_CODE_TO_CHAR = {code: char for char, code in _CHAR_TO_CODE.items()} | {UNKNOWN_INDEX: UNKNOWN_CHAR}


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
    codes, lengths = pad_codes([encode_name(name, max_length) for name in cleaned])
    device = torch.device("cpu") if device is None else torch.device(device)
    return codes.to(device), lengths.to(device)


def pad_codes(encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``[N, longest]`` int64 tensor padded with ``PAD_INDEX``, plus the lengths."""
    lengths = torch.tensor([len(codes) for codes in encoded], dtype=torch.int64)
    width = int(lengths.max()) if len(encoded) else 0
    padded = torch.full((len(encoded), width), PAD_INDEX, dtype=torch.int64)
    # Fill all rows at once: the flat codes go where position < length.
    valid = torch.arange(width) < lengths[:, None]
    padded[valid] = torch.tensor([code for codes in encoded for code in codes], dtype=torch.int64)
    return padded, lengths
