"""Bad input, spelled one way: the parameter's name, what was given, and what is allowed."""
from __future__ import annotations


def check_choice(name: str, value, valid) -> None:
    """`value` is one of `valid`, else ValueError "NAME: unknown value V; valid: A, B"."""
    if value not in valid:
        raise ValueError(f"{name}: unknown value {value!r}; valid: {', '.join(map(str, valid))}")


def check_known(overrides, valid) -> None:
    """Every key of `overrides` is a setting in `valid`, else one error listing the valid ones."""
    unknown = set(overrides) - set(valid)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(valid)}")
