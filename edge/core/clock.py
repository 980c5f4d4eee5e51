"""The one timestamp format of edgekit's artifacts."""
from __future__ import annotations

import datetime as _dt


def utc_now() -> str:
    """The `created` stamp of every artifact (checkpoint, manifest, sweep report, engine record):
    ISO 8601, UTC, seconds.

    >>> len(utc_now()), utc_now().endswith("Z")
    (20, True)
    """
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
