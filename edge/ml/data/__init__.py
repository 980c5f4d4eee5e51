"""Datasets as lists of `Sample` records: detect the format, label for a task, split by group.

    >>> from edge.ml.data import load_samples, split_by_group
    >>> samples, labels = load_samples("fpus23/", "plane")            # doctest: +SKIP
    >>> train, val, test = split_by_group(samples, (0.8, 0.1, 0.1))   # doctest: +SKIP

Formats, tried in this order: FETAL_PLANES_DB (its CSV), FPUS23 streams (``annotations/<stream>/``),
the FPUS23 plane folder (``{AC,BPD,FL,NO}_PLANE/``), a plain ``<class>/`` image folder. Single-label
answers land in ``sample.label``; a dataset with its own class names (FETAL_PLANES_DB's six planes)
returns those as `labels`. Splits keep every group (stream, patient) on one side, never splitting
frames of one sweep, which would leak near-duplicates into the test set. Torch-free.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edge.ml.data.records import Box, Sample
from edge.core.errors import BadInputError, MissingFileError, UnsupportedError
from edge.core.tasks import SINGLE_LABEL, get_task

__all__ = ["Sample", "Box", "load_samples", "split_by_group", "phantom_samples", "detect_format"]


def detect_format(root) -> str:
    """'fetal_planes' | 'fpus23' | 'fpus23_planes' | 'folder' for a dataset root."""
    from edge.ml.data import fetal_planes, folder, fpus23

    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"dataset not found: {root}; check the path")
    if (root / fetal_planes.CSV_NAME).exists():
        return "fetal_planes"
    if fpus23.annotation_files(root):
        return "fpus23"
    if fpus23.is_plane_folder(root):
        return "fpus23_planes"
    if folder.class_dirs(root):
        return "folder"
    raise MissingFileError(f"no dataset found in {root}; expected FPUS23 streams with "
                           f"annotations/<stream>/annotations.xml, {{AC,BPD,FL,NO}}_PLANE/ folders, "
                           f"{fetal_planes.CSV_NAME}, or <class>/*.png folders")


def load_samples(root, task_name: str) -> tuple[list[Sample], tuple[str, ...]]:
    """Samples of the dataset at `root` labelled for `task_name`, and the label names to train on."""
    from edge.ml.data import fetal_planes, folder, fpus23

    task, fmt = get_task(task_name), detect_format(root)
    if fmt == "fpus23":
        return label_for_task(fpus23.load_streams(root), task_name)
    if fmt == "fpus23_planes" and task_name != "plane":
        raise UnsupportedError(f"{root} is a diagnostic-plane folder; it can only train task 'plane', "
                               f"not {task_name!r}")
    if task.kind != SINGLE_LABEL:
        raise UnsupportedError(f"{root} ({fmt}) has one class per image; task {task_name!r} is "
                               f"{task.kind}: use an FPUS23 stream dataset")
    loader = {"fpus23_planes": fpus23.load_plane_folder, "fetal_planes": fetal_planes.load_fetal_planes,
              "folder": folder.load_folder}[fmt]
    samples = loader(root)
    found = sorted({s.label for s in samples})
    labels = task.labels if set(found) <= set(task.labels) else tuple(found)
    return samples, task.with_labels(labels).labels


def label_for_task(samples: list[Sample], task_name: str) -> tuple[list[Sample], tuple[str, ...]]:
    """Keep the FPUS23 samples labelled for the task; single-label answers go to `label`."""
    task = get_task(task_name)
    kept = [s for s in samples if s.answer(task_name) is not None]
    if not kept:
        raise MissingFileError(f"none of the {len(samples)} frames is labelled for task {task_name!r}")
    unknown = {s.answer(task_name) for s in kept if task.kind == SINGLE_LABEL} - set(task.labels)
    if unknown:
        raise BadInputError(f"labels {sorted(unknown)} are not in task {task_name!r} ({', '.join(task.labels)})")
    if task.kind == SINGLE_LABEL:
        kept = [dataclasses.replace(s, label=s.answer(task_name)) for s in kept]
    return kept, task.labels


def phantom_samples(task_name: str, seed: int = 0, n: int = 256, size: tuple[int, int] = (96, 96)):
    """In-memory phantom frames as (samples, labels), like `load_samples` without writing PNGs."""
    from edge.ml.data.fpus23 import samples_from_frames
    from edge.core.phantom import sample

    return label_for_task(samples_from_frames(sample(seed, n, size[0], size[1])), task_name)


def split_by_group(samples: list[Sample], fractions=(0.8, 0.1, 0.1), seed: int = 0) -> list[list[Sample]]:
    """Split into len(fractions) lists by group (stream, patient), close to the requested fractions
    of frames; groups are shuffled with `seed`, each lands in the split furthest below its target."""
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or len(fr) == 0 or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
        raise BadInputError(f"split fractions {tuple(fractions)} must be non-negative and sum to 1, "
                            f"e.g. (0.8, 0.1, 0.1)")
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    if len(groups) < int((fr > 0).sum()):
        raise BadInputError(f"{len(groups)} groups (streams/patients) cannot fill {int((fr > 0).sum())} "
                            f"splits without cutting one; add data or use fewer splits")
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    sizes, total = np.zeros(len(fr)), float(len(samples))
    splits: list[list[Sample]] = [[] for _ in fr]
    for k, i in enumerate(order):
        g = groups[names[i]]
        empty = [j for j in range(len(fr)) if fr[j] > 0 and not splits[j]]
        left = len(order) - k
        # fill every wanted split first while there are just enough groups left, then by deficit
        j = empty[0] if empty and left <= len(empty) else int(np.argmax(fr * total - sizes))
        splits[j].extend(g)
        sizes[j] += len(g)
    return splits
