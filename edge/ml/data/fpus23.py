"""FPUS23 on disk: streams of frames with CVAT annotations, and the diagnostic-plane image folder.

Layout (the released dataset, and what `edgekit data synth` writes)::

    root/<stream>/frame_XXXXXX.png
    root/annotations/<stream>/annotations.xml       (CVAT for images 1.1)
    root/planes/{AC_PLANE,BPD_PLANE,FL_PLANE,NO_PLANE}/*.png   (optional)

    >>> samples = load_streams("fpus23/")                    # doctest: +SKIP
    >>> samples[0].group, samples[0].plane, samples[0].boxes[0][0]  # doctest: +SKIP
    ('stream_hdvb_aroundabd_h', 'no plane', 'abdomen')

Annotation names differ from the task names in two places: boxes say ``arm`` for the task's ``arms``,
and planes are tagged Head_plane | Abd_plane | Femur_plane for BPD | AC | FL; a frame without a
diagnostic_plane tag is "no plane". Torch-free.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from edge.ml.data.cvat import CvatImage, parse_cvat
from edge.ml.data.records import Sample
from edge.core.errors import MissingFileError

PLANE_TAGS = {"Head_plane": "BPD", "Abd_plane": "AC", "Femur_plane": "FL"}
PLANE_DIRS = {"AC_PLANE": "AC", "BPD_PLANE": "BPD", "FL_PLANE": "FL", "NO_PLANE": "no plane"}
BOX_LABELS = {"arm": "arms", "arms": "arms", "head": "head", "legs": "legs", "leg": "legs", "abdomen": "abdomen"}


def annotation_files(root) -> dict[str, Path]:
    """stream name -> annotations.xml, from root/annotations/<stream>/ (or root/<stream>/)."""
    root = Path(root)
    found = {p.parent.name: p for p in sorted(root.glob("annotations/*/annotations.xml"))}
    for p in sorted(root.glob("*/annotations.xml")):
        found.setdefault(p.parent.name, p)
    return found


def sample_from_cvat(img: CvatImage, path: Path | None, group: str) -> Sample:
    """Map one CVAT image to a Sample with the task vocabularies."""
    def first(tag, attr):
        vals = [t.get(attr) for t in img.tags.get(tag, []) if t.get(attr)]
        return vals[0] if vals else None

    plane = first("diagnostic_plane", "plane")
    views = [t["View_fetus"] for t in img.tags.get("location", []) if t.get("View_fetus")]
    boxes = [(BOX_LABELS.get(lbl, lbl), x0, y0, x1, y1) for lbl, x0, y0, x1, y1 in img.boxes]
    return Sample(path, group, plane=PLANE_TAGS.get(plane, plane) if plane else "no plane",
                  orientation=first("Orientation", "Pose"),
                  anatomy=tuple(dict.fromkeys(BOX_LABELS.get(v, v) for v in views)) if views else None,
                  boxes=boxes, width=img.width or None, height=img.height or None,
                  extra={"probe": first("Probe", "orientation")})


def load_streams(root) -> list[Sample]:
    """Every annotated frame under an FPUS23 root whose image exists; group = stream."""
    root = Path(root)
    files = annotation_files(root)
    if not files:
        raise MissingFileError(f"no FPUS23 annotations under {root}; expected "
                               f"{root}/annotations/<stream>/annotations.xml")
    samples, missing = [], 0
    for stream, xml in files.items():
        for img in parse_cvat(xml):
            path = root / stream / img.name
            if path.exists():
                samples.append(sample_from_cvat(img, path, stream))
            else:
                missing += 1
    if missing:
        warnings.warn(f"{missing} annotated frames under {root} have no image file; they were skipped", stacklevel=2)
    if not samples:
        raise MissingFileError(f"annotations found under {root} but none of their frames; expected "
                               f"{root}/<stream>/frame_XXXXXX.png")
    return samples


def is_plane_folder(root) -> bool:
    return any((Path(root) / d).is_dir() for d in PLANE_DIRS)


def load_plane_folder(root) -> list[Sample]:
    """The {AC,BPD,FL,NO}_PLANE folder; group = the stream prefix of '<stream>__frame.png' names."""
    from edge.ml.data.folder import load_folder

    samples = load_folder(root, classes=PLANE_DIRS)
    for s in samples:
        s.plane = s.label
    return samples


def samples_from_frames(frames) -> list[Sample]:
    """Phantom frames (edge.core.phantom.PhantomFrame) as in-memory Samples: no PNGs written."""
    return [Sample(None, f.stream, plane=f.plane, orientation=f.orientation, anatomy=tuple(f.anatomy),
                   boxes=list(f.boxes), width=f.image.shape[1], height=f.image.shape[0], image=f.image)
            for f in frames]
