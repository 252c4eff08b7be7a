"""Helpers for the notebooks' first cells: strict parameters and output folders.

Papermill only logs a warning for a parameter the notebook does not define, so
a typo (``epoch=50``) would silently run with the default. The notebooks guard
against that:

    guard = ParameterGuard()          # cell before the `parameters` cell
    # parameters cell: literal assignments only
    params = guard.check(globals())   # cell after (papermill injects between)

``check`` reads the kernel's input history since the guard was made and keeps
the cells that consist of literal assignments only: the first is the
`parameters` cell, later ones are papermill's injected cell (or the same cell
run again). A name assigned there but not in the `parameters` cell raises.

A notebook that trains makes its guard with ``ParameterGuard(settings=True)``: it then takes, besides its
own, every parameter of the study's settings by name (``experiments.SETTINGS_PARAMETERS``: each TrainConfig,
DataOptions and ModelOptions field, e.g. ``epochs``), so its `parameters` cell does not repeat them; one
not given keeps its dataclass's default. :func:`settings_parameters_of` reads that from a notebook file,
for the profiles.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path


class UnknownParameterError(NameError):
    """A parameter was passed that the notebook's `parameters` cell does not define."""


def literal_assignments(source: str) -> list[str] | None:
    """Names a cell assigns if it holds only ``name = <literal>`` statements, else None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    names = []
    for node in body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            return None
        try:
            ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # e.g. {[]: 1} -> TypeError
            return None
        names.append(node.targets[0].id)
    return names or None


class ParameterGuard:
    """Remembers where the kernel's input history stood before the `parameters` cell; with ``settings``, the
    notebook also takes every parameter of the study's settings by name."""

    def __init__(self, history: list[str] | None = None, *, settings: bool = False):
        self._history = history if history is not None else _ipython_history()
        self._start = len(self._history)
        self._settings = settings_parameters() if settings else ()

    def check(self, namespace: dict) -> dict:
        """Values of the declared parameters and of the settings parameters passed; unknown injected names
        raise UnknownParameterError."""
        assignments = [names for names in map(literal_assignments, self._history[self._start :]) if names]
        if not assignments:
            raise RuntimeError("run the `parameters` cell between ParameterGuard() and guard.check()")
        declared, *injected = assignments
        passed = [name for names in injected for name in names]
        unknown = sorted(set(passed) - set(declared) - set(self._settings))
        if unknown:
            also = f", and any of the settings' {sorted(self._settings)}" if self._settings else ""
            raise UnknownParameterError(f"unknown parameter(s) {unknown}; this notebook accepts: {sorted(declared)}"
                                        + also)
        taken = [name for name in dict.fromkeys(passed) if name in self._settings and name not in declared]
        return {name: namespace[name] for name in [*declared, *taken]}


def settings_parameters() -> tuple[str, ...]:
    """The study settings' parameters (``experiments.SETTINGS_PARAMETERS``)."""
    # Imported on first use: importing this module (the profiles do) stays free of torch until settings are asked for.
    from lbw_utils.runs.experiments import SETTINGS_PARAMETERS

    return SETTINGS_PARAMETERS


def settings_parameters_of(path: str | Path) -> tuple[str, ...]:
    """The settings parameters the notebook at ``path`` takes besides its `parameters` cell's: all of them
    where a code cell makes its guard with ``ParameterGuard(settings=True)``, none otherwise (read from the
    source; nothing is run)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    return settings_parameters() if any(map(_makes_a_settings_guard, sources)) else ()


def _makes_a_settings_guard(source: str) -> bool:
    """Whether the cell ``source`` calls ``ParameterGuard(..., settings=True)``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. an IPython magic: a cell the profiles cannot read
        return False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if called == "ParameterGuard" and any(
                keyword.arg == "settings" and isinstance(keyword.value, ast.Constant) and keyword.value.value is True
                for keyword in node.keywords):
            return True
    return False


def _ipython_history() -> list[str]:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return []
    shell = get_ipython()
    if shell is None:
        raise RuntimeError("ParameterGuard reads the IPython input history: use it inside a notebook")
    return shell.user_ns["In"]
