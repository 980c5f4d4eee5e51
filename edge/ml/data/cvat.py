"""CVAT-for-images 1.1 XML, parsed safely (the FPUS23 annotation format).

An annotation file comes from outside; defusedxml refuses entity expansion (billion laughs) and
external entities, and any refusal or syntax error becomes one FileFormatError line. What is accepted
makes sense: every image has a plain relative file name (no `..`, not absolute) and a size of
1..65535 pixels, names are unique, every box is finite with x0 < x1 and y0 < y1 inside its image,
and every box and tag label is one the file declares in its `<meta>` labels::

    >>> images = parse_cvat("stream_hdvb_aroundabd_h.annotations.xml")    # doctest: +SKIP
    >>> images[0].name, images[0].tags["Orientation"]  # doctest: +SKIP
    ('frame_000360.png', [{'Pose': 'hdvb'}])
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.errors import FileFormatError, require_file


@dataclass
class CvatImage:
    """One `<image>`: its boxes (label, xtl, ytl, xbr, ybr) and tags (label -> list of attribute dicts)."""

    id: int
    name: str
    width: int
    height: int
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)


MAX_SIDE = 65535                     # pixels; CVAT's own limit on an image side


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
    except (ValueError, UnicodeError, LookupError) as exc:   # an encoding expat cannot read
        raise FileFormatError(f"{path}: not readable XML ({type(exc).__name__}: {str(exc)[:100]}); "
                              f"re-export it from CVAT (UTF-8)") from None
    if root.tag != "annotations":
        raise FileFormatError(f"{path}: root element is <{str(root.tag)[:40]}>, expected <annotations> "
                              f"(CVAT for images 1.1)")
    labels = _declared_labels(root)
    images, seen = [], set()
    for el in root.iter("image"):
        img = _image(el, path, labels)
        if img.name in seen:
            raise FileFormatError(f"{path}: <image name={img.name!r}> appears twice; expected one <image> "
                                  f"per frame (CVAT for images 1.1): re-export it")
        seen.add(img.name)
        images.append(img)
    return images


def _declared_labels(root) -> set[str]:
    """The label names `<meta>` declares (under its task, job or project); a file without them has
    no box or tag a reader could trust, so any box or tag in it is refused."""
    meta = root.find("meta")
    names = {(n.text or "").strip() for lab in (meta.iter("label") if meta is not None else ())
             for n in lab.findall("name")}
    names.discard("")
    return names


def _bad(path: Path, el, what: str) -> FileFormatError:
    return FileFormatError(f"{path}: <image name={str(el.get('name'))[:80]!r}> {what}; expected CVAT for "
                           f"images 1.1: re-export it")


def _int(el, key: str, low: int, high: int, path: Path) -> int:
    text = el.get(key)
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise _bad(path, el, f"has {key}={text!r}, expected an integer") from None
    if not low <= value <= high:
        raise _bad(path, el, f"has {key}={value}, expected {low}..{high}")
    return value


def _coord(box, key: str, el, path: Path) -> float:
    text = box.get(key)
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise _bad(path, el, f"has a <box> with {key}={str(text)[:40]!r}, expected a number") from None
    if not math.isfinite(value):
        raise _bad(path, el, f"has a <box> with {key}={text!r}, expected a finite number")
    return value


def _image(el, path: Path, labels: set[str]) -> CvatImage:
    name = el.get("name")
    if not name or not name.strip() or Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name:
        raise _bad(path, el, "has no plain relative file name (missing, absolute, or with '..')")
    img = CvatImage(_int(el, "id", 0, 10**9, path) if el.get("id") is not None else -1, name,
                    _int(el, "width", 1, MAX_SIDE, path), _int(el, "height", 1, MAX_SIDE, path))
    for box in el.iter("box"):
        label = box.get("label")
        if label not in labels:
            raise _bad(path, el, f"has a <box label={str(label)[:40]!r}> the file does not declare "
                                 f"(declared: {', '.join(sorted(labels))[:200] or 'none'})")
        x0, y0, x1, y1 = (_coord(box, k, el, path) for k in ("xtl", "ytl", "xbr", "ybr"))
        if not (0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height):
            raise _bad(path, el, f"has a <box label={label!r}> ({x0:g}, {y0:g}, {x1:g}, {y1:g}) that is not "
                                 f"x0 < x1, y0 < y1 inside its {img.width}x{img.height} image")
        img.boxes.append((label, x0, y0, x1, y1))
    for tag in el.iter("tag"):
        label = tag.get("label")
        if label not in labels:
            raise _bad(path, el, f"has a <tag label={str(label)[:40]!r}> the file does not declare")
        attrs = {a.get("name", ""): (a.text or "").strip() for a in tag.iter("attribute")}
        img.tags.setdefault(label, []).append(attrs)
    return img
