"""Property-based fuzzing of CVAT-for-images XML (issue 10): mutate the real FPUS23 annotation file
(attribute values, missing and extra elements, huge numbers, NaN/inf, negative boxes, wrong types,
truncated text, entities). Whatever the input, `parse_cvat` either accepts it with records that make
sense (unique plain names, positive sizes, finite boxes inside the image, declared labels) or refuses
it with an EdgekitError; any other exception is a bug."""
from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.ml.data.cvat import parse_cvat
from edge.core.errors import EdgekitError

REAL = "fpus23/stream_hdvb_aroundabd_h.annotations.xml"
IMAGES_KEPT = 6          # a slice of the real file keeps every example small and fast

_NUMBERS = st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-1", "-0.5", "0", "1e18", "99999999999999999999",
                            "3.5", "12", "0x10", "1_000", " 7 ", "", "abc", "1e-320", "+5", "672.0001"])
_TEXT = st.one_of(_NUMBERS, st.text(max_size=20), st.sampled_from(["&amp;", "a/b.png", "../x.png", "/etc/passwd",
                                                                   "head", "arm", "legs", "nosuchlabel"]))
_ATTRS = ("id", "name", "width", "height", "label", "xtl", "ytl", "xbr", "ybr", "occluded", "z_order")


def _base(shared_data: Path) -> bytes:
    root = ET.parse(shared_data / REAL).getroot()
    for img in root.findall("image")[IMAGES_KEPT:]:
        root.remove(img)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    root = ET.fromstring(base)
    elements = list(root.iter())
    for _ in range(draw(st.integers(1, 6))):
        el = draw(st.sampled_from(elements))
        op = draw(st.sampled_from(["set", "drop_attr", "remove", "duplicate", "extra", "text"]))
        if op == "set":
            el.set(draw(st.sampled_from(_ATTRS)), draw(_TEXT))
        elif op == "drop_attr" and el.attrib:
            del el.attrib[draw(st.sampled_from(sorted(el.attrib)))]
        elif op == "remove":
            parent = next((p for p in root.iter() if el in list(p)), None)
            if parent is not None:
                parent.remove(el)
        elif op == "duplicate":
            parent = next((p for p in root.iter() if el in list(p)), None)
            if parent is not None:
                parent.append(copy.deepcopy(el))
        elif op == "extra":
            tag = draw(st.sampled_from(["box", "tag", "image", "attribute", "label", "meta", "polygon"]))
            attrs = {k: draw(_TEXT) for k in draw(st.lists(st.sampled_from(_ATTRS), max_size=6, unique=True))}
            ET.SubElement(el, tag, attrs).text = draw(st.one_of(st.none(), _TEXT))
        else:
            el.text = draw(_TEXT)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    raw = draw(st.sampled_from(["none", "truncate", "entity", "external", "undefined", "bytes"]))
    if raw == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif raw == "entity":
        data = data.replace(b"<annotations>", b'<!DOCTYPE annotations [<!ENTITY e "head">]>\n<annotations>', 1)
        data = data.replace(b">head<", b">&e;<", 1)
    elif raw == "external":
        data = data.replace(b"<annotations>", b'<!DOCTYPE annotations [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                            b"\n<annotations>&x;", 1)
    elif raw == "undefined":
        data = data.replace(b"<version>", b"<version>&nosuch;", 1)
    elif raw == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data


def _sensible(images, declared: set[str]) -> None:
    names = [i.name for i in images]
    assert len(names) == len(set(names)), "duplicate image names accepted"
    for img in images:
        assert img.name, "empty image name accepted"
        assert not Path(img.name).is_absolute(), f"absolute image name accepted: {img.name}"
        assert ".." not in Path(img.name).parts, f"image name escapes the folder: {img.name}"
        assert isinstance(img.width, int)
        assert isinstance(img.height, int)
        assert 1 <= img.width <= 65535, f"width out of range: {img.width}"
        assert 1 <= img.height <= 65535, f"height out of range: {img.height}"
        for label, x0, y0, x1, y1 in img.boxes:
            assert label in declared, label
            assert all(isinstance(v, float) and math.isfinite(v) for v in (x0, y0, x1, y1))
            assert 0 <= x0 < x1 <= img.width, f"box x out of [0, {img.width}]: {(x0, y0, x1, y1)}"
            assert 0 <= y0 < y1 <= img.height, f"box y out of [0, {img.height}]: {(x0, y0, x1, y1)}"
        assert set(img.tags) <= declared, img.tags


def _declared(data: bytes) -> set[str]:
    root = ET.fromstring(data)
    meta = root.find("meta")
    return {(n.text or "").strip() for lab in (meta.iter("label") if meta is not None else ()) for n in lab.findall("name")}


def test_the_unmutated_slice_is_accepted(shared_data, tmp_path):
    data = _base(shared_data)
    p = tmp_path / "annotations.xml"
    p.write_bytes(data)
    images = parse_cvat(p)
    assert len(images) == IMAGES_KEPT
    assert any(i.boxes for i in images)
    _sensible(images, _declared(data))


def test_any_mutation_is_accepted_sensibly_or_refused_with_an_edgekit_error(shared_data, tmp_path):
    base = _base(shared_data)
    outcomes = {"accepted": 0, "refused": 0}

    @settings(max_examples=100, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated(base))
    def check(data):
        p = tmp_path / "annotations.xml"
        p.write_bytes(data)
        try:
            images = parse_cvat(p)
        except EdgekitError as exc:
            assert "\n" not in str(exc), str(exc)
            outcomes["refused"] += 1
            return
        _sensible(images, _declared(data))
        outcomes["accepted"] += 1

    check()
    # both branches ran: the property was tested on accepted files, not only on refusals
    assert outcomes["accepted"] > 0, f"no file was accepted: {outcomes}"
    assert outcomes["refused"] > 0, f"no file was refused: {outcomes}"


@pytest.mark.parametrize("box", [
    'xtl="nan" ytl="1" xbr="5" ybr="5"', 'xtl="1" ytl="1" xbr="inf" ybr="5"', 'xtl="-3" ytl="1" xbr="5" ybr="5"',
    'xtl="5" ytl="1" xbr="1" ybr="5"', 'xtl="1" ytl="1" xbr="900" ybr="5"', 'xtl="1" ytl="1" xbr="1e309" ybr="5"',
])
def test_a_nonsense_box_is_refused_naming_its_image(tmp_path, box):
    p = tmp_path / "a.xml"
    p.write_text('<annotations><meta><task><labels><label><name>head</name></label></labels></task></meta>'
                 f'<image id="0" name="f.png" width="672" height="389"><box label="head" {box}/></image></annotations>')
    with pytest.raises(EdgekitError, match="f.png"):
        parse_cvat(p)
