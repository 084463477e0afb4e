"""Refusing an option that names none of its allowed values, with one message shape everywhere."""

from __future__ import annotations

from collections.abc import Iterable


def check_choice(what: str, value: object, choices: Iterable[str]) -> None:
    """Raise ``ValueError`` naming ``what`` and listing ``choices`` (in the order given) unless ``value`` is one."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}")
