"""CVAT-for-images 1.1 XML, parsed safely (the FPUS23 annotation format).

An annotation file comes from outside; defusedxml refuses entity expansion (billion laughs) and
external entities, and any refusal or syntax error becomes one FileFormatError line::

    >>> images = parse_cvat("stream_hdvb_aroundabd_h.annotations.xml")    # doctest: +SKIP
    >>> images[0].name, images[0].tags["Orientation"]  # doctest: +SKIP
    ('frame_000360.png', [{'Pose': 'hdvb'}])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import FileFormatError, require_file


@dataclass
class CvatImage:
    """One `<image>`: its boxes (label, xtl, ytl, xbr, ybr) and tags (label -> list of attribute dicts)."""

    id: int
    name: str
    width: int
    height: int
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def parse_cvat(path) -> list[CvatImage]:
    """All images of a CVAT-for-images file, in file order."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException
    from xml.etree.ElementTree import ParseError

    path = require_file(path, "CVAT annotation file")
    try:
        root = SafeET.parse(str(path), forbid_dtd=False, forbid_entities=True, forbid_external=True).getroot()
    except DefusedXmlException as exc:
        raise FileFormatError(f"{path}: refused unsafe XML ({type(exc).__name__}); CVAT exports never "
                              f"declare entities, so the file was altered: re-export it") from None
    except ParseError as exc:
        raise FileFormatError(f"{path}: not well-formed XML ({exc}); re-export it from CVAT") from None
    if root.tag != "annotations":
        raise FileFormatError(f"{path}: root element is <{root.tag}>, expected <annotations> "
                              f"(CVAT for images 1.1)")
    return [_image(el, path) for el in root.iter("image")]


def _image(el, path: Path) -> CvatImage:
    try:
        img = CvatImage(int(el.get("id", -1)), el.attrib["name"], int(el.get("width", 0)),
                        int(el.get("height", 0)))
        for box in el.iter("box"):
            img.boxes.append((box.attrib["label"], float(box.attrib["xtl"]), float(box.attrib["ytl"]),
                              float(box.attrib["xbr"]), float(box.attrib["ybr"])))
    except (KeyError, ValueError) as exc:
        raise FileFormatError(f"{path}: <image name={el.get('name')!r}> has a missing or bad attribute "
                              f"({exc}); expected CVAT for images 1.1") from None
    for tag in el.iter("tag"):
        attrs = {a.get("name", ""): (a.text or "").strip() for a in tag.iter("attribute")}
        img.tags.setdefault(tag.get("label", ""), []).append(attrs)
    return img
