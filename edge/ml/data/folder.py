"""Plain image folders: ``root/<class>/*.png|jpg|tif``; the folder name is the label.

A file named ``<group>__<name>.png`` belongs to <group> (so a split keeps a stream or patient
together); any other file is its own group::

    >>> samples = load_folder("planes/")                      # doctest: +SKIP
    >>> samples[0].label, samples[0].group  # doctest: +SKIP
    ('AC_PLANE', 'stream_hdvb_aroundabd_h')
"""
from __future__ import annotations

from pathlib import Path

from edge.ml.data.records import Sample
from edge.core.errors import MissingFileError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def class_dirs(root) -> list[Path]:
    """Sub-folders of `root` that hold at least one image."""
    return [d for d in sorted(Path(root).iterdir()) if d.is_dir() and not d.name.startswith(".")
            and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir())]


def load_folder(root, classes: dict[str, str] | None = None) -> list[Sample]:
    """One Sample per image; `classes` maps folder names to labels (others are skipped when given)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"image folder not found: {root}; check the path")
    samples = []
    for d in class_dirs(root):
        if classes is not None and d.name not in classes:
            continue
        label = classes[d.name] if classes else d.name
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                group = p.stem.split("__")[0] if "__" in p.stem else f"{d.name}/{p.stem}"
                samples.append(Sample(p, group, label=label))
    if not samples:
        raise MissingFileError(f"no images under {root}; expected {root}/<class>/*.png (or .jpg, .tif)")
    return samples
