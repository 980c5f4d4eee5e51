"""edgekit's model side: model zoo, tasks, datasets, training, checkpoints and reports.

Importing `edge` is cheap and torch-free; the torch-backed modules (`edge.models`, `edge.train`, ...)
load only when used. The torch-free modules (`edge.errors`, `edge.tasks`, `edge.phantom`) are the only
ones the on-device runtime may import.
"""
import datetime as _dt

__version__ = "0.1.0"


def utc_now() -> str:
    """The `created` stamp of every artifact (checkpoint, manifest, sweep report): ISO 8601, UTC, seconds.

    >>> len(utc_now()), utc_now().endswith("Z")
    (20, True)
    """
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
