"""One error policy for the whole toolkit.

`EdgekitError` (and its subclasses) means "the user can fix this": the CLI prints the message on one
line and exits 1, with no traceback. Anything else is a bug in edgekit and stays loud.

Messages name what was received and what was expected, then the fix::

    raise UnknownModelError("unknown model 'resnet9'; expected one of resnet8, resnet10, ... "
                            "(see `edgekit models`)")

This module is torch-free: the device-side runtime raises the same errors.
"""
from __future__ import annotations


class EdgekitError(Exception):
    """Something the user can fix; the message says what was wrong and how to fix it."""


class UnknownNameError(EdgekitError, KeyError):
    """A name (model, task, target, backend, source) that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadInputError(EdgekitError, ValueError):
    """A malformed argument: a bad `--input`, a ratio out of range, an unparsable source spec."""


class FileFormatError(EdgekitError):
    """A file exists but cannot be used: truncated, wrong kind, unsafe, or tampered with."""


class MissingFileError(EdgekitError, FileNotFoundError):
    """A path the user named does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnsupportedError(EdgekitError):
    """A valid request this machine, target or model cannot serve (INT8 on a Jetson Nano, no TensorRT)."""


def require_file(path, what: str = "file"):
    """Return `path` as a Path if it is an existing file, else raise a one-line MissingFileError."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{what} not found: {p}; check the path")
    return p


def closest(name: str, choices) -> str:
    """A ' (did you mean X?)' hint for a mistyped name, or ''."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def lookup(table, name: str, what: str, expected: str):
    """`table[name]`, or a one-line UnknownNameError: 'unknown {what} {name!r} (did you mean ...?);
    {expected}'. The registries (tasks, targets, models, backends) share it.

    >>> lookup({"plane": 1}, "plane", "task", "expected plane")
    1
    """
    try:
        return table[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown {what} {name!r}{closest(str(name), table)}; {expected}") from None
