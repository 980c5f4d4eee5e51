"""Write phantom sweeps as an FPUS23-shaped dataset (frames + CVAT XML + plane folder), atomically.

    >>> summary = synth("phantom_fpus23/", frames=2000, seed=0, size=(389, 672))   # doctest: +SKIP
    >>> sorted(summary["streams"])[:1]  # doctest: +SKIP
    ['stream_hdvb_aroundabd_h']

Label, tag and attribute names are exactly those of the real FPUS23 annotation files (boxes ``arm``
for the task's ``arms``; one ``location`` tag per anatomy in view; ``diagnostic_plane`` only on frames
at a plane), so anything that reads the real dataset reads this one. The dataset is built in a hidden
folder beside OUT and renamed into place: an interrupted run leaves no half-written OUT.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from edge.core.errors import BadInputError

_LABELS = [("Orientation", "Pose", "hdvb", "hdvb huvb hdvf huvf"), ("head",), ("arm",),
           ("location", "View_fetus", "abdomen", "abdomen head legs arms"),
           ("Probe", "orientation", "v", "v h"),
           ("diagnostic_plane", "plane", "Head_plane", "Head_plane Abd_plane Femur_plane"),
           ("abdomen",), ("legs",)]
PLANE_TAG = {"BPD": "Head_plane", "AC": "Abd_plane", "FL": "Femur_plane"}
PLANE_DIR = {"AC": "AC_PLANE", "BPD": "BPD_PLANE", "FL": "FL_PLANE", "no plane": "NO_PLANE"}
BOX_NAME = {"arms": "arm"}
MAX_STREAMS = 256                   # fetuses; past 16 a stream name repeats and gets a round suffix (_2, _3, ...)


def synth(out, frames: int = 2000, seed: int = 0, size: tuple[int, int] = (389, 672),
          streams: int | None = None) -> dict:
    """Render `frames` frames as `streams` sweeps (default: one per ~100 frames, at least 4, at most one per frame) into OUT."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"{out} exists and is not empty; choose a new OUT folder or remove it")
    n_streams = streams or min(MAX_STREAMS, frames, max(4, math.ceil(frames / 100)))
    if not (1 <= n_streams <= MAX_STREAMS) or frames < n_streams:
        raise BadInputError(f"--frames {frames} / --streams {n_streams}: need 1..{MAX_STREAMS} streams "
                            f"and at least one frame per stream")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        summary = _write(tmp, frames, seed, size, n_streams)
        if out.exists():
            out.rmdir()                 # empty (checked above); rename needs it gone
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), **summary}


def _write(root: Path, frames: int, seed: int, size, n_streams: int) -> dict:
    import cv2

    from edge.core.phantom import sweep

    per = [frames // n_streams + (k < frames % n_streams) for k in range(n_streams)]
    streams, planes = {}, {d: 0 for d in PLANE_DIR.values()}
    for d in PLANE_DIR.values():
        (root / "planes" / d).mkdir(parents=True)
    for k, count in enumerate(per):
        sweep_frames = list(sweep(seed + k, count, size[0], size[1]))
        name = sweep_frames[0].stream + (f"_{k // 16 + 1}" if k >= 16 else "")   # 16 seeds cycle the names
        (root / name).mkdir()
        for f in sweep_frames:
            png = root / name / f"frame_{f.index:06d}.png"
            if not cv2.imwrite(str(png), f.image):
                raise OSError(f"could not write {png}")
            link = root / "planes" / PLANE_DIR[f.plane] / f"{name}__{png.name}"
            try:
                os.link(png, link)
            except OSError:
                shutil.copyfile(png, link)
            planes[PLANE_DIR[f.plane]] += 1
        xml = root / "annotations" / name / "annotations.xml"
        xml.parent.mkdir(parents=True)
        cvat_tree(name, sweep_frames, size, probe=sweep_frames[0].view.probe).write(xml, encoding="utf-8",
                                                                            xml_declaration=True)
        streams[name] = count
    return {"frames": frames, "streams": streams, "planes": planes}


def cvat_tree(name: str, frames, size, probe: str) -> ET.ElementTree:
    """CVAT for images 1.1 for one stream, with the real FPUS23 label set."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    for key, val in (("name", name), ("size", str(len(frames))), ("mode", "annotation"),
                     ("start_frame", "0"), ("stop_frame", str(len(frames) - 1))):
        ET.SubElement(task, key).text = val
    labels = ET.SubElement(task, "labels")
    for spec in _LABELS:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = spec[0]
        attrs = ET.SubElement(label, "attributes")
        if len(spec) > 1:
            attr = ET.SubElement(attrs, "attribute")
            for key, val in (("name", spec[1]), ("mutable", "False"), ("input_type", "select"),
                             ("default_value", spec[2]), ("values", spec[3].replace(" ", "\n"))):
                ET.SubElement(attr, key).text = val
    for f in frames:
        img = ET.SubElement(root, "image", id=str(f.index), name=f"frame_{f.index:06d}.png",
                            width=str(size[1]), height=str(size[0]))
        for lbl, x0, y0, x1, y1 in f.boxes:
            ET.SubElement(img, "box", label=BOX_NAME.get(lbl, lbl), occluded="0", source="manual",
                          xtl=f"{x0:.2f}", ytl=f"{y0:.2f}", xbr=f"{x1:.2f}", ybr=f"{y1:.2f}", z_order="0")
        _tag(img, "Orientation", "Pose", f.orientation)
        for part in f.anatomy:
            _tag(img, "location", "View_fetus", part)
        _tag(img, "Probe", "orientation", probe)
        if f.plane in PLANE_TAG:
            _tag(img, "diagnostic_plane", "plane", PLANE_TAG[f.plane])
    ET.indent(root, space="  ")
    return ET.ElementTree(root)


def _tag(img, label: str, attr: str, value: str) -> None:
    ET.SubElement(ET.SubElement(img, "tag", label=label, source="manual"), "attribute", name=attr).text = value
