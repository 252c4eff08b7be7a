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
"""

from __future__ import annotations

import ast


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
    """Remembers where the kernel's input history stood before the `parameters` cell."""

    def __init__(self, history: list[str] | None = None):
        self._history = history if history is not None else _ipython_history()
        self._start = len(self._history)

    def check(self, namespace: dict) -> dict:
        """Values of the declared parameters; unknown injected names raise UnknownParameterError."""
        assignments = [names for names in map(literal_assignments, self._history[self._start :]) if names]
        if not assignments:
            raise RuntimeError("run the `parameters` cell between ParameterGuard() and guard.check()")
        declared, *injected = assignments
        passed = [name for names in injected for name in names]
        unknown = sorted(set(passed) - set(declared))
        if unknown:
            raise UnknownParameterError(f"unknown parameter(s) {unknown}; this notebook accepts: {sorted(declared)}")
        return {name: namespace[name] for name in declared}


def _ipython_history() -> list[str]:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return []
    shell = get_ipython()
    if shell is None:
        raise RuntimeError("ParameterGuard reads the IPython input history: use it inside a notebook")
    return shell.user_ns["In"]
