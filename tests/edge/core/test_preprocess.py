"""`edge.core.preprocess`: the uint8 path (crop, resize the frame as it is, grey and normalise the
small image) against the float implementation it replaced, within the tolerance its docstring states."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

import edge.core.preprocess as pp
from edge.core.errors import BadInputError
from edge.core.phantom import sample
from edge.core.preprocess import default_spec, pixels, preprocess
from tests.conftest import SHARED_DATA
from tests.edge.core.preprocess_reference import old_preprocess

PIXEL_TOL = 1.0          # 0..255 units, before normalisation (measured: 0.81 linear/area, 0.5 cubic, 0 nearest)
SONONET_FRAMES = SHARED_DATA / "sononet16" / "frames"
INTERPOLATIONS = ("linear", "cubic", "area", "nearest")


def spec(size, interpolation="linear", roi=None, grey=True, normalize=None):
    s = default_spec(size)
    s.update(interpolation=interpolation, roi=roi, grey=grey)
    if normalize:
        s["normalize"] = normalize
    return s


def edged(h, w, channels=3, seed=0):
    """Noise with hard black and white bands: where cubic overshoots and rounding shows."""
    img = np.random.default_rng(seed).integers(0, 256, (h, w, channels) if channels else (h, w), np.uint8)
    img[h // 3:h // 2] = 0
    img[:, w // 4:w // 3] = 255
    return img


@lru_cache(maxsize=1)
def _frames():
    ph = sample(0, 1, 389, 672)[0].image
    out = {"grey": ph, "grey_hx1": ph[..., None], "rgb": np.dstack([ph, np.roll(ph, 5, 1), ph // 2]),
           "edged_rgb": edged(97, 131), "bgra": edged(60, 83, 4, seed=1), "edged_grey": edged(61, 67, 0, seed=2)}
    if SONONET_FRAMES.is_dir():
        out["sononet"] = cv2.imread(str(sorted(SONONET_FRAMES.glob("*.tiff"))[0]), cv2.IMREAD_COLOR)[..., ::-1]
    for img in out.values():
        img.flags.writeable = False
    return out


def frames() -> dict:
    """Grey, HxWx1, RGB, BGRA and sharp-edged frames (and a released SonoNet frame, where shared)."""
    return dict(_frames())


SIZES = [(32, 32), (61, 47), (224, 288), (150, 190)]   # down, odd, SonoNet's; up (for the small frames)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matches_the_float_reference_within_tolerance(interpolation):
    for name, img in frames().items():
        for size in SIZES if img.shape[0] < 150 else SIZES[:3]:
            s = spec(size, interpolation)
            got, ref = pixels(img, s), old_preprocess(img, s, normalise=False)
            assert got.shape == ref.shape == (1, *size)
            assert got.dtype == np.float32
            diff = float(np.abs(got - ref).max())
            assert diff <= (0.0 if interpolation == "nearest" else PIXEL_TOL), (name, size, diff)
            x = preprocess(img, s)                                  # meanstd 0.5 / 0.25 x 255
            assert float(np.abs(x - old_preprocess(img, s)).max()) <= PIXEL_TOL / (255 * 0.25) + 1e-6, (name, size)


def test_roi_and_zscore_as_sononet():
    img = frames().get("sononet", edged(735, 975))
    s = spec((288, 224), "cubic", roi=[115, 734, 81, 874], normalize={"mode": "zscore", "scale": 255.0})
    ref_pixels = old_preprocess(img, s, normalise=False)
    got = preprocess(img, s)
    assert got.shape == (1, 288, 224)
    sigma = float(ref_pixels.std())
    assert float(np.abs(got - old_preprocess(img, s)).max()) <= 2 * 255.0 * PIXEL_TOL / sigma
    assert float(np.abs(pixels(img, s) - ref_pixels).max()) <= 0.5 + 1e-4  # cubic: int16, no clipping


def test_full_hd_colour_frame():
    img = cv2.resize(frames()["rgb"], (1920, 1080), interpolation=cv2.INTER_LINEAR)
    for interpolation in INTERPOLATIONS:
        s = spec((64, 64), interpolation)
        assert float(np.abs(pixels(img, s) - old_preprocess(img, s, False)).max()) <= PIXEL_TOL


def test_unchanged_where_nothing_rounds():
    f = frames()
    for img in (f["rgb"][:64, :64], f["bgra"][:32, :32], f["grey"][:32, :32]):   # already the model's size
        s = spec(img.shape[:2])
        assert np.array_equal(preprocess(img, s), old_preprocess(img, s))
    colour = spec((61, 47), grey=False, normalize={"mode": "meanstd", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]})
    assert np.array_equal(preprocess(f["edged_rgb"], colour), old_preprocess(f["edged_rgb"], colour))  # colour: as before
    floats = f["edged_rgb"].astype(np.float32)                           # float frames: no rounding
    assert float(np.abs(preprocess(floats, spec((32, 32))) - old_preprocess(floats, spec((32, 32)))).max()) < 1e-4


def test_resizes_the_integer_frame_never_a_full_size_float(monkeypatch):
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(cv2, name)

        @staticmethod
        def resize(img, *args, **kwargs):
            seen.append((img.dtype, img.shape))
            return cv2.resize(img, *args, **kwargs)

    monkeypatch.setattr(pp, "cv2", Spy())
    f = frames()
    for img in (f["grey"], f["rgb"], f["bgra"]):
        seen.clear()
        preprocess(img, spec((32, 32), roi=[10, 50, 20, 60]))
        assert seen == [(np.dtype(np.uint8), (40, 40, *img.shape[2:]))]     # the cropped frame, as it is
    seen.clear()
    preprocess(f["rgb"], spec((32, 32), "cubic"))
    assert seen == [(np.dtype(np.int16), f["rgb"].shape)]                    # cubic: headroom, no float


def test_bad_frames_are_one_line_errors():
    with pytest.raises(BadInputError, match="HxWx"):
        preprocess(np.zeros((10, 10, 2), np.uint8), spec((4, 4)))
    with pytest.raises(BadInputError, match="ROI"):
        preprocess(np.zeros((10, 10), np.uint8), spec((4, 4), roi=[20, 30, 0, 5]))
    assert preprocess(np.zeros((10, 10), bool), spec((4, 4))).shape == (1, 4, 4)   # odd depths via float32
