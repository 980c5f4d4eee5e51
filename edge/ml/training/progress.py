"""A progress bar with a time estimate that stays silent where nobody watches (pipes, CI, logs).

    >>> with Progress(total=10, enabled=False) as bar:
    ...     for _ in range(10):
    ...         bar.advance(loss=0.5)
"""
from __future__ import annotations

import sys


class Progress:
    """rich's bar (elapsed, remaining, a free-text field) on stderr, only if enabled and a TTY."""

    def __init__(self, total: int, description: str = "train", enabled: bool = True):
        self.total, self.description = total, description
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self._bar = self._task = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), console=Console(stderr=True))
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, info="")
        return self

    def advance(self, n: int = 1, **info) -> None:
        if self._bar is not None:
            text = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
            self._bar.update(self._task, advance=n, info=text)

    def describe(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
