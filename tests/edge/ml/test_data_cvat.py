"""CVAT parsing: the real FPUS23 file's counts, and unsafe or broken XML refused in one line."""
from __future__ import annotations

from collections import Counter

import pytest

from edge.ml.data.cvat import parse_cvat
from edge.ml.data.fpus23 import sample_from_cvat
from edge.core.errors import FileFormatError, MissingFileError

REAL = "fpus23/stream_hdvb_aroundabd_h.annotations.xml"
# Counted independently with grep on the file: grep -c '<image ', grep -o '<box label="[a-z]*"' | uniq -c,
# grep -o 'name="plane">[A-Za-z_]*' | uniq -c
REAL_IMAGES, REAL_ABD_PLANE = 361, 42
REAL_BOXES = {"abdomen": 361, "arm": 485, "head": 16}


@pytest.fixture(scope="module")
def real(shared_data):
    return parse_cvat(shared_data / REAL)


def test_real_file_counts(real):
    assert len(real) == REAL_IMAGES
    assert len({i.name for i in real}) == REAL_IMAGES
    assert Counter(b[0] for i in real for b in i.boxes) == REAL_BOXES
    planes = Counter(t["plane"] for i in real for t in i.tags.get("diagnostic_plane", []))
    assert planes == {"Abd_plane": REAL_ABD_PLANE}
    assert {(i.width, i.height) for i in real} == {(672, 389)}
    assert {t["Pose"] for i in real for t in i.tags["Orientation"]} == {"hdvb"}


def test_real_file_maps_to_task_vocabularies(real):
    samples = [sample_from_cvat(i, None, "stream_hdvb_aroundabd_h") for i in real]
    assert Counter(s.plane for s in samples) == {"AC": 42, "no plane": 319}
    assert Counter(b[0] for s in samples for b in s.boxes) == {"abdomen": 361, "arms": 485, "head": 16}
    assert {s.anatomy for s in samples} == {("abdomen",)}
    assert {s.extra["probe"] for s in samples} == {"h"}
    first = next(s for s in samples if s.path is None and s.boxes)
    assert all(b[1] < b[3] and b[2] < b[4] for b in first.boxes)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotations><image id="0" name="&lol3;" width="1" height="1"/></annotations>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><image id="0" name="&xxe;" width="1" height="1"/></annotations>"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_unsafe_xml_is_refused(tmp_path, text):
    p = tmp_path / "annotations.xml"
    p.write_text(text)
    with pytest.raises(FileFormatError, match="unsafe XML") as err:
        parse_cvat(p)
    assert "\n" not in str(err.value)
    assert "root:" not in str(err.value)


def test_broken_files_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotations><image id='0' name='a.png'>")
    with pytest.raises(FileFormatError, match="not well-formed"):
        parse_cvat(bad)
    other = tmp_path / "other.xml"
    other.write_text("<project/>")
    with pytest.raises(FileFormatError, match="expected <annotations>"):
        parse_cvat(other)
    nobox = tmp_path / "nobox.xml"
    nobox.write_text('<annotations><image id="0" name="a.png"><box label="head" xtl="x"/></image></annotations>')
    with pytest.raises(FileFormatError, match="a.png"):
        parse_cvat(nobox)
    with pytest.raises(MissingFileError):
        parse_cvat(tmp_path / "absent.xml")
