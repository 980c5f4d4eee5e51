"""The search's worker processes, shared by the trials (`compress.nas.study`) and the finalists'
folds (`compress.nas.finalists`): started afresh, one torch thread each, so N of them fill N cores."""
from __future__ import annotations

from dataclasses import replace


def one_thread(settings):
    """The settings (`NasSettings`) a spawned worker process gets: one torch thread unless the proxy
    names a count."""
    return replace(settings, proxy=replace(settings.proxy, threads=settings.proxy.threads or 1))


def spawn_pool(processes: int):
    """Worker processes started afresh ("spawn": no forked torch or Optuna state)."""
    import concurrent.futures as cf
    import multiprocessing

    return cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
