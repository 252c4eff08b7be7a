"""The one place a notebook's generated texts are written: ``tables/<dataset>/<name>`` of a results folder.

Generated sentences, markdown tables and the tuning choice (JSON) go through :func:`save_texts`, atomically
(a reader, or a study resumed after a kill, sees the old file or the whole new one), so no notebook writes a
file by hand and the README and docs quote only what this wrote.
"""

from __future__ import annotations

from pathlib import Path

from lbw_utils.files import atomic_write_text
from lbw_utils.runs.experiments import table_path

TEXT_SUFFIXES = (".md", ".json", ".csv", ".tex")


def save_texts(folder: str | Path, dataset: str, texts: dict[str, str]) -> list[Path]:
    """Write each ``name -> text`` of ``texts`` to ``<folder>/tables/<dataset>/<name>``; return the paths.

    A name is a plain file name ending in one of :data:`TEXT_SUFFIXES`; every name is checked before the
    first file is written."""
    for name, text in texts.items():
        if not isinstance(name, str) or Path(name).name != name or Path(name).suffix not in TEXT_SUFFIXES:
            raise ValueError(f"file name {name!r} is not allowed: expected a plain file name (no folder) ending in "
                             f"one of {TEXT_SUFFIXES}, e.g. 'goal.md'")
        if not isinstance(text, str):
            raise ValueError(f"the text for {name!r} is a {type(text).__name__}, not a str")
    return [atomic_write_text(table_path(folder, dataset, name), text) for name, text in texts.items()]
