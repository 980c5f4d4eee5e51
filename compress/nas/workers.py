"""The search's worker processes, shared by the trials (`compress.nas.study`) and the finalists'
folds (`compress.nas.finalists`): started afresh, one torch thread each, so N of them fill N cores."""
from __future__ import annotations

from dataclasses import replace


def one_thread(settings):
    """The settings (`NasSettings`) a spawned worker process gets: one torch thread unless the proxy
    names a count."""
    return replace(settings, proxy=replace(settings.proxy, threads=settings.proxy.threads or 1))


def pin_threads(settings) -> None:
    """Give this process the torch threads the proxy names (`one_thread` in a spawned worker); none
    named, torch's own. Called where a worker's job starts: a trial worker, a reference, a fold, the
    final training."""
    if settings.proxy.threads:
        import torch

        torch.set_num_threads(settings.proxy.threads)


def spawn_pool(processes: int):
    """Worker processes started afresh ("spawn": no forked torch or Optuna state)."""
    import concurrent.futures as cf
    import multiprocessing

    return cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
