"""Progress events: one JSON object per line behind a fixed prefix, for programs; people read the prose lines.

A study's runs print readable lines (``[run ] ...``, ``[done] ... 3.2 s``); the runner that executes the
notebooks (:mod:`lbw_utils.runner.reproduce`) and the fan-out that watches its shards (:mod:`lbw_utils.runner.fanout`)
need the same facts as data: how many runs a study plans, which run finished, how long it took. Those
travel as event lines, ``@lbw-event {"event": "done", ...}``, parsed with :func:`parse` (``json.loads``),
never by picking prose apart.

Event lines are printed only where a program reads them: when ``$LBW_EVENTS`` is ``1`` (the runner sets it
for its kernels, and the fan-out for its shards' processes). In JupyterLab nobody listens, and the
notebook's output holds the prose lines only.

Events
------
``plan``   ``{"runs": N, "methods": M, "seeds": S}``: a study is about to run N runs.
``done``   ``{"run": "dataset / method / seed k", "seconds": s}``: a run trained (or was fitted) now.
``reused`` ``{"run": "dataset / method / seed k"}``: a finished record was read back instead.
"""

from __future__ import annotations

import json
import os
import sys

PREFIX = "@lbw-event "
ENABLED_ENV = "LBW_EVENTS"


def enabled() -> bool:
    """Whether a program reads this process's event lines (``$LBW_EVENTS`` is ``1``)."""
    return os.environ.get(ENABLED_ENV) == "1"


def line(event: str, **fields) -> str:
    """The event line of ``event`` with ``fields`` (JSON-serialisable)."""
    return PREFIX + json.dumps({"event": event, **fields}, sort_keys=True)


def emit(event: str, **fields) -> None:
    """Print the event line to stdout, where a program reads it; nothing when none does (:func:`enabled`)."""
    if enabled():
        print(line(event, **fields), file=sys.stdout, flush=True)


def parse(text: str) -> dict | None:
    """The event of a printed line (leading indentation allowed), or None for a line that is not one."""
    stripped = text.strip()
    if not stripped.startswith(PREFIX):
        return None
    return json.loads(stripped[len(PREFIX):])


def run_identity(dataset: str, label: str, seed: int) -> str:
    """``dataset / method / seed k``: how events and progress lines name one run."""
    return f"{dataset} / {label} / seed {seed}"
