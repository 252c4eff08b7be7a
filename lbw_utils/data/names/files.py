"""The names data file: where it is published, download, checksum, safe reading; a user's CSV instead.

Safety: the pickle comes from the internet, so it is never given to plain
``pickle.load``. Its SHA-256 is checked first; then a restricted unpickler that
refuses every class or function reference reads it, and the result must be
exactly ``dict[str, list[str]]``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import pickle
import urllib.request
from pathlib import Path

from lbw_utils.config import data_dir as resolve_data_dir
from lbw_utils.files import DataIntegrityError, atomic_write_bytes, verify_file

NAMES_REPOSITORY = "name-ethnicity-classifier/nec-experiments"
NAMES_COMMIT = "989f9f7ef934bc77bd5cf99c370da358536d4cc7"
NAMES_REPO_PATH = "datasets/dict_chosen_names.pickle"
NAMES_FILE = "dict_chosen_names.pickle"
# Read at call time (not bound as default arguments) so tests can point them
# at a local file or at a tiny pickle's checksum: patch them here, in this module.
NAMES_URL = f"https://raw.githubusercontent.com/{NAMES_REPOSITORY}/{NAMES_COMMIT}/{NAMES_REPO_PATH}"
NAMES_SHA256 = "7f25333c723a04af172759519d6f581684dd0a810fca0d6042877620cdb82402"


class NamesFileMissingError(FileNotFoundError):
    """The names data file is not on disk and could not be downloaded."""


class NamesFileContentError(ValueError):
    """A names pickle holds something other than ``dict[str, list[str]]``."""


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
        raise NamesFileMissingError(f"The names data file {NAMES_FILE} is not at {path}, and downloading it from {url} "
                                    f"failed ({error}). Get it from {url} (repository {NAMES_REPOSITORY}, commit "
                                    f"{NAMES_COMMIT}, path {NAMES_REPO_PATH}) and put it at {path}, or set "
                                    f"LBW_DATA_DIR to a folder that holds names/{NAMES_FILE}.") from error
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise DataIntegrityError(f"Downloaded {url}, but its sha256 is {actual}, expected {expected_sha256}; "
                                 f"nothing was written to {path}.")
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
        raise NamesFileContentError(f"{path} holds something other than dicts, lists and strings, or is not a valid "
                                    f"pickle ({error}); it was refused without running anything.") from None
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
            return NamesFileContentError(f"{path} is not shaped as a dict nationality -> list of names: "
                                         f"found a {kind} at {where}.")
        return NamesFileContentError(f"{path} holds something other than dicts, lists and strings: "
                                     f"found a {kind} at {where}.")

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


def read_names_source(data_dir: str | Path | None, csv_path: str | Path | None,
                      expected_sha256: str | None) -> tuple[dict[str, list[str]], str, dict[str, str]]:
    """``(nationality -> names, a description of the source, file name -> SHA-256)`` of the CSV file
    if ``csv_path`` is given, else of the published pickle (downloaded into ``data_dir`` if missing)."""
    if csv_path is not None:
        by_nationality = read_names_csv(csv_path)  # first: it says so if the file is missing
        checksums = {Path(csv_path).name: hashlib.sha256(Path(csv_path).read_bytes()).hexdigest()}
        return by_nationality, f"CSV file {Path(csv_path)}", checksums
    path = ensure_names_file(data_dir, expected_sha256=expected_sha256)
    source = f"{NAMES_REPOSITORY}@{NAMES_COMMIT}:{NAMES_REPO_PATH}"
    return read_names_pickle(path), source, {NAMES_FILE: expected_sha256 or NAMES_SHA256}  # verified above
