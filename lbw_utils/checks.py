"""Argument checks shared across modules, with messages that name the value and what is allowed."""

from __future__ import annotations


def check_positive_int(name: str, value) -> int:
    """``value`` if it is an int >= 1 (bools refused), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` if it is True or False, else a ValueError naming ``name`` (papermill's ``-p x yes`` passes 'yes')."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be True or False")
    return value
