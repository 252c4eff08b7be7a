"""File integrity and atomic writes: nothing half-written is ever read as finished."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


class DataIntegrityError(ValueError):
    """A data file exists but its checksum is not the published one."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks so large files never sit in memory twice."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, expected: str, algorithm: str = "sha256") -> str:
    """Raise :class:`DataIntegrityError` unless ``path`` has the ``expected`` digest."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataIntegrityError(f"{path} is corrupt or was tampered with: its {algorithm} is {actual}, "
                                 f"expected {expected}. Delete it and download it again.")
    return actual


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write to a temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX, so a reader (or a study resumed after a kill)
    sees either the old file, no file, or the complete new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload: object) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True, allow_nan=True) + "\n")


def replace_marked_block(path: str | Path, start: str, end: str, block: str) -> bool:
    """Replace what lies between the markers ``start`` and ``end`` of the text file ``path`` with ``block``
    (atomically); leave a file without both markers alone. Returns whether the file had the block."""
    path = Path(path)
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(path, f"{head}{start}\n{block}\n{end}{tail}")
    return True
