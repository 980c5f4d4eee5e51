"""Datasets as lists of `Sample` records: detect the format, label for a task, split by group.

    >>> from edge.ml.data import load_samples, split_by_group
    >>> samples, labels = load_samples("fpus23/", "plane")            # doctest: +SKIP
    >>> train, val, test = split_by_group(samples, (0.8, 0.1, 0.1))   # doctest: +SKIP
    >>> split = split_streams(samples, "plane", (0.8, 0.1, 0.1))       # doctest: +SKIP
    >>> train, val, test = split.parts; split.warnings                # every class in val and test

Formats, tried in this order: FETAL_PLANES_DB (its CSV), FPUS23 streams (``annotations/<stream>/``),
the FPUS23 plane folder (``{AC,BPD,FL,NO}_PLANE/``), a plain ``<class>/`` image folder. Single-label
answers land in ``sample.label``; a dataset with its own class names (FETAL_PLANES_DB's six planes)
returns those as `labels`. Splits keep every group (stream, patient) on one side, never splitting
frames of one sweep, which would leak near-duplicates into the test set; `split_streams` also makes
every held-out split hold every class (or says loudly that the data cannot). Torch-free.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edge.ml.data.records import Box, Sample
from edge.core.errors import BadInputError, MissingFileError, UnsupportedError
from edge.core.tasks import DETECTION, MULTI_LABEL, SINGLE_LABEL, Task, get_task

__all__ = ["Sample", "Box", "load_samples", "split_by_group", "split_streams", "StreamSplit", "classes_of",
           "phantom_samples", "detect_format"]
SPLIT_NAMES = ("train", "val", "test")


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


def _fractions_and_groups(samples: list[Sample], fractions) -> tuple[np.ndarray, dict[str, list[Sample]]]:
    """The checked split fractions and the samples by group (stream, patient), in first-seen order."""
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or len(fr) == 0 or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
        raise BadInputError(f"split fractions {tuple(fractions)} must be non-negative and sum to 1, "
                            f"e.g. (0.8, 0.1, 0.1)")
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    return fr, groups


def split_by_group(samples: list[Sample], fractions=(0.8, 0.1, 0.1), seed: int = 0) -> list[list[Sample]]:
    """Split into len(fractions) lists by group (stream, patient), close to the requested fractions
    of frames; groups are shuffled with `seed`, each lands in the split furthest below its target."""
    fr, groups = _fractions_and_groups(samples, fractions)
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


def classes_of(sample: Sample, task: Task) -> set[str]:
    """The classes a frame shows for `task`: its label (single-label), its positive labels (multi-label)
    or the labels of its boxes (detection)."""
    if task.kind == SINGLE_LABEL:
        label = sample.label if sample.label is not None else sample.answer(task.name)
        return {label} if label is not None else set()
    if task.kind == MULTI_LABEL:
        return set(sample.answer(task.name) or ())
    if task.kind == DETECTION:
        return {b[0] for b in sample.boxes}
    return set()


@dataclasses.dataclass
class StreamSplit:
    """Whole groups (streams, patients) assigned to splits; `missing` says which classes a split lacks."""

    parts: list[list[Sample]]
    names: tuple[str, ...]
    fractions: tuple[float, ...]
    classes: tuple[str, ...]                 # the classes the data shows
    missing: dict[str, list[str]]            # split name -> classes it holds no frame of
    warnings: list[str]
    seed: int
    attempt: int

    def __getitem__(self, name: str) -> list[Sample]:
        return self.parts[self.names.index(name)]

    def record(self) -> dict:
        """What a checkpoint records (`provenance.split`): fractions asked and got, groups per split."""
        total = max(1, sum(map(len, self.parts)))
        rec = {"fractions": list(self.fractions), "by": "group", "method": "split_streams", "seed": self.seed,
               "attempt": self.attempt, "classes": list(self.classes), "missing": self.missing,
               "warnings": list(self.warnings)}
        for name, part in zip(self.names, self.parts):
            rec[name] = {"frames": len(part), "fraction": round(len(part) / total, 4),
                         "groups": sorted({s.group for s in part})}
        return rec


def split_names(n: int) -> tuple[str, ...]:
    """train/val/test for three splits, train/test for two (detection's 80/20)."""
    return {2: ("train", "test"), 3: SPLIT_NAMES}.get(n, tuple(f"part{k}" for k in range(n)))


def split_streams(samples: list[Sample], task, fractions=(0.8, 0.1, 0.1), seed: int = 0,
                  tries: int = 64) -> StreamSplit:
    """Split by group (stream, patient) so that every split, the held-out ones above all, holds every
    class the data shows; close to `fractions` of frames otherwise.

    Greedy, rarest class first: each split that lacks a class takes the unassigned group that adds the
    most classes it lacks (then the smallest, then the seeded order); the remaining groups go to the
    split furthest below its share of frames. `tries` seeded orders are tried and the one that misses
    the fewest classes, then lands closest to `fractions`, wins, so a seed always gives the same split.
    Held-out splits grow past their fraction when that is what holding every class takes (16 phantom
    streams of 4 orientations: 8/4/4 streams). A class shown by fewer groups than there are splits
    cannot reach them all: train gets it first (to learn it), then test, then val, and the split's
    `warnings` say which split misses what.
    """
    task = get_task(task) if isinstance(task, str) else task
    fr, groups = _fractions_and_groups(samples, fractions)
    wanted = [j for j in range(len(fr)) if fr[j] > 0]
    if len(groups) < len(wanted):
        raise BadInputError(f"{len(groups)} groups (streams/patients) cannot fill {len(wanted)} "
                            f"splits without cutting one; add data or use fewer splits")
    names = sorted(groups)
    shows = {g: frozenset().union(*(classes_of(s, task) for s in groups[g])) for g in names}
    classes = sorted(frozenset().union(*shows.values()))
    count = {c: sum(c in shows[g] for g in names) for c in classes}
    # scarce classes: train first (to learn them), then the last split (test), then the others
    priority = [wanted[0], *reversed(wanted[1:])]
    best = None
    for attempt in range(max(1, tries)):
        order = np.random.default_rng([seed, attempt]).permutation(len(names))
        rank = {names[i]: k for k, i in enumerate(order)}
        assign = _assign(names, groups, shows, classes, count, fr, wanted, priority, rank)
        cover = [frozenset().union(*(shows[g] for g in assign[j])) for j in range(len(fr))]
        missing = sum(len(set(classes) - cover[j]) for j in wanted)
        sizes = np.array([sum(len(groups[g]) for g in assign[j]) for j in range(len(fr))], dtype=float)
        key = (missing, float(np.abs(sizes / max(1.0, sizes.sum()) - fr).sum()))
        if best is None or key < best[0]:
            best = (key, attempt, assign, cover)
    _, attempt, assign, cover = best
    split_of = split_names(len(fr))
    missing = {split_of[j]: sorted(set(classes) - cover[j]) for j in wanted if set(classes) - cover[j]}
    warnings = [f"{name} split holds no frame of {', '.join(map(repr, lacks))} (shown by "
                f"{', '.join(f'{count[c]}' for c in lacks)} of {len(names)} groups): its figures cannot "
                f"measure {'that class' if len(lacks) == 1 else 'those classes'}; add streams/patients that show it"
                for name, lacks in missing.items()]
    absent = [c for c in task.labels if c not in count]
    if absent:
        warnings.append(f"the data holds no frame of {', '.join(map(repr, absent))} at all: no split can "
                        f"train or test {'it' if len(absent) == 1 else 'them'}")
    parts = [[s for g in sorted(assign[j]) for s in groups[g]] for j in range(len(fr))]
    return StreamSplit(parts, split_of, tuple(float(f) for f in fr), tuple(classes), missing, warnings,
                       seed, attempt)


def _assign(names, groups, shows, classes, count, fr, wanted, priority, rank) -> list[list[str]]:
    assign: list[list[str]] = [[] for _ in fr]
    free = set(names)
    cover = [set() for _ in fr]
    for c in sorted(classes, key=lambda c: (count[c], c)):
        for j in priority:
            if c in cover[j]:
                continue
            empty_others = sum(1 for k in wanted if k != j and not assign[k])
            candidates = [g for g in free if c in shows[g]]
            if not candidates or len(free) - 1 < empty_others:
                continue
            g = min(candidates, key=lambda g: (-len(shows[g] - cover[j]), len(groups[g]), rank[g]))
            assign[j].append(g)
            free.discard(g)
            cover[j] |= shows[g]
    sizes = np.array([sum(len(groups[g]) for g in a) for a in assign], dtype=float)
    total = float(sum(map(len, groups.values())))
    rest = sorted(free, key=rank.__getitem__)
    for k, g in enumerate(rest):
        empty = [j for j in wanted if not assign[j]]
        left = len(rest) - k
        j = empty[0] if empty and left <= len(empty) else int(np.argmax(np.where(fr > 0, fr * total - sizes, -np.inf)))
        assign[j].append(g)
        sizes[j] += len(groups[g])
    return assign
