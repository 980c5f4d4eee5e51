"""Frame sources: the registry, each kind read for real, and one-line errors for bad specs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.core.errors import BadInputError, EdgekitError, MissingFileError
from runtime.sources import SOURCES, Frame, Source, open_source
from runtime.sources.folder import FolderSource
from tests.conftest import SHARED_DATA

SONONET_FRAMES = SHARED_DATA / "sononet16" / "frames"


def write_video(path: Path, images, fps: float = 25.0) -> Path:
    """An MJPG .avi from RGB/grey uint8 images (what a capture card or a scanner export gives)."""
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for im in images:
        writer.write(cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_all(source: Source, limit: int = 1000) -> list[Frame]:
    frames = []
    with source:
        while len(frames) < limit and (f := source.read()) is not None:
            frames.append(f)
    return frames


def gradient(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    img[..., 1] = 40 * i
    return img


@pytest.fixture
def example_paths(tmp_path, monkeypatch):
    """The registry's example specs made real (a video and a folder exist) in a temp cwd."""
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "scan.avi", [gradient(i) for i in range(3)])
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "a.png"), gradient(0))
    return tmp_path


def test_registry_sweep_every_kind_parses_its_example(example_paths):
    assert set(SOURCES) == {"phantom", "camera", "video", "folder"}
    for kind, cls in SOURCES.items():
        src = open_source(cls.example)
        assert type(src) is cls, kind
        assert cls.forms
        assert src.describe()
        if kind == "camera":  # no camera here: opening says so in one line
            with pytest.raises(MissingFileError, match="usb:0") as exc:
                src.open()
            assert "\n" not in str(exc.value)
            continue
        frames = read_all(open_source(cls.example, **({"frames": 3} if kind == "phantom" else {})), limit=3)
        assert frames, f"{kind}: no frames read"
        assert frames[0].image.dtype == np.uint8, f"{kind}: dtype {frames[0].image.dtype}"
        assert frames[0].image.ndim in (2, 3), f"{kind}: ndim {frames[0].image.ndim}"
        assert [f.index for f in frames] == list(range(len(frames)))
        assert all(b.t >= a.t for a, b in zip(frames, frames[1:]))


@pytest.mark.parametrize("spec, error, text", [
    ("nonsense", BadInputError, "usb:N"),
    ("usb:x", BadInputError, "usb:N"),
    ("phantom:seven", BadInputError, "phantom:SEED"),
    ("missing.avi", MissingFileError, "missing.avi"),
    ("no/such/dir/", MissingFileError, "not found"),
    ("phantom?speed=9", BadInputError, "realtime"),
    ("phantom?frames=abc", BadInputError, "frames"),
    ("phantom?fps=0", BadInputError, "fps=0 must be above 0"),
    ("usb:0?roi=5,1,0,4", BadInputError, "y0<y1"),
    ("", BadInputError, "phantom"),
])
def test_bad_specs_are_one_line_errors(spec, error, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=text) as exc:
        open_source(spec)
    assert "\n" not in str(exc.value)
    assert isinstance(exc.value, EdgekitError)


def test_camera_spec_options():
    cam = open_source("/dev/video3?width=1280&height=720&fps=30&roi=10,700,20,1000")
    assert (cam.device, cam.width, cam.height, cam.fps, cam.roi) == ("/dev/video3", 1280, 720, 30.0, (10, 700, 20, 1000))
    assert open_source("usb:2").device == 2
    assert open_source("usb:2").live


def test_video_file_through_opencv_capture(tmp_path):
    images = [gradient(i) for i in range(5)]
    frames = read_all(open_source(str(write_video(tmp_path / "v.avi", images, fps=200.0))))
    assert len(frames) == 5
    assert frames[0].image.shape == (48, 64, 3)
    for f, im in zip(frames, images):  # MJPG is lossy: close, not equal; RGB order preserved
        assert np.abs(f.image.astype(int) - im).mean() < 6


def test_video_of_real_sononet_frames_with_roi(tmp_path):
    paths = sorted(SONONET_FRAMES.glob("*.tiff"))
    if not paths:
        pytest.skip(f"real frames not found in {SONONET_FRAMES}")
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    video = write_video(tmp_path / "sononet.avi", images, fps=100.0)  # the temp dir, never the repo
    frames = read_all(open_source(f"{video}?realtime=0"))
    # MJPEG (4:2:0) stores even sizes: OpenCV's writer drops the odd last row and column
    assert len(frames) == len(images)
    assert frames[0].image.shape == (734, 974, 3)
    assert np.abs(frames[1].image.astype(int) - images[1][:734, :974]).mean() < 8
    cropped = read_all(open_source(f"{video}?realtime=0&roi=115,734,81,874"), limit=1)[0]
    assert cropped.image.shape == (619, 793, 3)  # the README's crop of the scanner UI


def test_video_realtime_is_paced_and_loops(tmp_path):
    video = write_video(tmp_path / "v.avi", [gradient(i) for i in range(3)], fps=50.0)
    frames = read_all(open_source(f"{video}?loop=1"), limit=8)
    assert len(frames) == 8  # looped past the 3 frames it has
    assert frames[-1].t - frames[0].t >= 7 / 50.0 * 0.8


def test_image_folder_sorted_looped_and_skips_unreadable(tmp_path, capsys):
    for name, value in (("b.png", 20), ("a.jpg", 10), ("c.tif", 30), ("d.bmp", 40)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), value, np.uint8))
    (tmp_path / "e.tiff").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    frames = read_all(open_source(str(tmp_path)))
    assert [int(f.image.mean()) for f in frames] == [10, 20, 30, 40]
    assert "e.tiff" in capsys.readouterr().err
    looped = read_all(FolderSource(tmp_path, loop=True), limit=9)
    assert [int(f.image.mean()) for f in looped][4:8] == [10, 20, 30, 40]


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(EdgekitError, match="no images"):
        open_source(str(tmp_path)).open()


def test_real_tiff_folder():
    if not SONONET_FRAMES.is_dir():
        pytest.skip(f"real frames not found in {SONONET_FRAMES}")
    frames = read_all(open_source(str(SONONET_FRAMES)))
    assert len(frames) == 4
    assert all(f.image.shape == (735, 975, 3) for f in frames)


def test_phantom_sweep_fast_and_realtime():
    fast = read_all(open_source("phantom:2?realtime=0&frames=5&width=160&height=96"))
    assert len(fast) == 5
    assert fast[0].image.shape == (96, 160)
    assert fast[0].image.dtype == np.uint8
    again = read_all(open_source("phantom:2", realtime=False, frames=2, width=160, height=96))
    assert np.array_equal(again[1].image, fast[1].image)  # seeded: the same sweep
    paced = read_all(open_source("phantom:2?frames=4&fps=40&width=160&height=96"))
    assert paced[-1].t - paced[0].t >= 3 / 40.0 * 0.8


def test_reopen_keeps_counting_frames(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), gradient(0))
    src = FolderSource(tmp_path)
    first = read_all(src)
    second = read_all(src)
    assert [f.index for f in first + second] == [0, 1]
