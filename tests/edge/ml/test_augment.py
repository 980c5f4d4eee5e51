"""Ultrasound augmentations: each keeps the frame's shape, dtype and range, follows its seed, changes the
frame, moves boxes with the picture, and the flip swaps head up/down in the orientation label."""
from __future__ import annotations

import numpy as np
import pytest

from edge.core.errors import BadInputError
from edge.ml.data import phantom_samples
from edge.ml.data.augment import Augment, apex_px, hflip, shadow_map, tgc_map, zoom_rotate

OFF = dict(flip=0.0, zoom=0.0, rotate=0.0, gain=0.0, tgc=0.0, shadow=0.0, speckle=0.0)
ONLY = {
    "flip": Augment(**{**OFF, "flip": 1.0}),
    "zoom": Augment(**{**OFF, "zoom": 1.0}),
    "rotate": Augment(**{**OFF, "rotate": 1.0}),
    "gain": Augment(**{**OFF, "gain": 1.0}),
    "tgc": Augment(**{**OFF, "tgc": 1.0}),
    "shadow": Augment(**{**OFF, "shadow": 1.0}),
    "speckle": Augment(**{**OFF, "speckle": 1.0}),
    "all": Augment(),
}
INTENSITY = ("gain", "tgc", "shadow", "speckle")


@pytest.fixture(scope="module")
def frame():
    samples, _ = phantom_samples("plane", seed=4, n=2, size=(96, 128))
    return samples[0].load_image()


@pytest.mark.parametrize("name", list(ONLY))
@pytest.mark.parametrize("rgb", [False, True])
def test_each_augmentation_keeps_shape_dtype_range_and_follows_its_seed(frame, name, rgb):
    img = np.repeat(frame[:, :, None], 3, axis=2) if rgb else frame
    aug = ONLY[name]
    runs = [aug(img, [], np.random.default_rng(seed)) for seed in (1, 1, 2)]
    out = runs[0][0]
    assert out.shape == img.shape
    assert out.dtype == np.uint8
    assert out.min() >= 0
    assert out.max() <= 255
    assert not np.array_equal(out, img), f"{name} left the frame as it was"
    assert np.array_equal(out, runs[1][0])                           # same seed, same frame
    if name != "flip":                                               # a flip has no strength to draw
        assert not np.array_equal(out, runs[2][0])
    assert runs[0][2] is (name == "flip") or name == "all"
    if name in INTENSITY:                                            # multiplicative: black stays black
        assert (out[img == 0] == 0).all()
        assert abs(float(out.mean()) - float(img.mean())) < 0.6 * float(img.mean())


def test_off_is_the_identity_and_probabilities_are_checked(frame):
    out, boxes, flipped = Augment(**OFF)(frame, [("head", 1.0, 2.0, 30.0, 40.0)], np.random.default_rng(0))
    assert out is frame
    assert boxes == [("head", 1.0, 2.0, 30.0, 40.0)]
    assert not flipped
    with pytest.raises(BadInputError, match="probability"):
        Augment(flip=1.5)
    with pytest.raises(BadInputError, match="range"):
        Augment(zoom_range=(1.2, 0.9))


def _bright_box(out: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(out > 100)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("how", ["flip", "zoom_in", "zoom_out", "rotate", "zoom_rotate"])
def test_boxes_move_with_the_picture(how):
    img = np.zeros((120, 160), np.uint8)
    img[50:80, 30:70] = 200                                          # one bright object, its box below
    box = ("abdomen", 30.0, 50.0, 70.0, 80.0, )
    if how == "flip":
        out, boxes = hflip(img, [box])
    else:
        scale, degrees = {"zoom_in": (1.15, 0.0), "zoom_out": (0.85, 0.0), "rotate": (1.0, 9.0),
                          "zoom_rotate": (0.9, -8.0)}[how]
        out, boxes = zoom_rotate(img, [box], scale, degrees)
    assert len(boxes) == 1
    assert boxes[0][0] == "abdomen"
    np.testing.assert_allclose(boxes[0][1:], _bright_box(out), atol=1.5)


def test_zoom_is_about_the_apex_and_boxes_leaving_the_frame_are_dropped():
    img = np.zeros((100, 100), np.uint8)
    ax, ay = apex_px(img.shape)
    assert ax == 50
    assert ay < 0
    _, boxes = zoom_rotate(img, [("legs", 45.0, 96.0, 55.0, 99.0), ("head", 45.0, 40.0, 55.0, 50.0)], 1.3, 0.0)
    assert [b[0] for b in boxes] == ["head"]                         # pushed below the frame: gone
    x1, y1, x2, y2 = boxes[0][1:]
    assert (x1 + x2) / 2 == pytest.approx(50.0)
    assert y1 > 40.0


def test_tgc_and_shadow_maps_are_bounded_and_placed():
    t = tgc_map((80, 120), 0.5, 0.0)
    assert t.shape == (80, 120)
    assert t.dtype == np.float32
    assert t[-1, 60] > 1.0 > t[0, 60]                                # positive slope: deeper is brighter
    assert np.exp(-0.5) - 1e-3 <= t.min()
    assert t.max() <= np.exp(0.5) + 1e-3
    s = shadow_map((80, 120), 0.0, 6.0, 0.3, 0.7)
    assert s.min() == pytest.approx(0.3, abs=1e-3)
    assert s.max() == 1.0
    assert s[-1, 60] < 0.35
    assert s[5, 60] == 1.0
    assert s[-1, 5] == 1.0


def test_the_dataset_flip_swaps_orientation_and_mirrors_boxes():
    torch = pytest.importorskip("torch")
    from edge.core.preprocess import default_spec
    from edge.core.tasks import get_task
    from edge.ml.data.dataset import TaskDataset

    spec = default_spec((32, 32))
    samples, labels = phantom_samples("orientation", n=4, size=(48, 48))
    task = get_task("orientation").with_labels(labels)
    plain, flipped = TaskDataset(samples, task, spec), TaskDataset(samples, task, spec, augment=ONLY["flip"])
    swap = {"hdvb": "huvb", "huvb": "hdvb", "hdvf": "huvf", "huvf": "hdvf"}
    for i in range(4):
        (x0, y0), (x1, y1) = plain[i], flipped[i]
        assert labels[int(y1)] == swap[labels[int(y0)]]
        assert torch.allclose(x1, torch.flip(x0, dims=[2]), atol=1e-5)

    samples, labels = phantom_samples("detection", n=4, size=(48, 64))
    task = get_task("detection").with_labels(labels)
    plain, flipped = TaskDataset(samples, task, spec), TaskDataset(samples, task, spec, augment=ONLY["flip"])
    b0, b1 = plain[0][1]["boxes"], flipped[0][1]["boxes"]
    assert len(b0)
    assert torch.allclose(b1[:, [0, 2]], 32 - b0[:, [2, 0]], atol=1e-4)
    assert torch.equal(b1[:, [1, 3]], b0[:, [1, 3]])


def test_the_full_recipe_in_a_dataset_is_seeded_by_torch_and_keeps_boxes_in_the_input():
    torch = pytest.importorskip("torch")
    from edge.core.preprocess import default_spec
    from edge.core.tasks import get_task
    from edge.ml.data.dataset import TaskDataset

    samples, labels = phantom_samples("detection", n=6, size=(64, 96))
    ds = TaskDataset(samples, get_task("detection").with_labels(labels), default_spec((32, 48)), augment=True)
    torch.manual_seed(3)
    a = [ds[i] for i in range(6)]
    torch.manual_seed(3)
    b = [ds[i] for i in range(6)]
    for (xa, ta), (xb, tb) in zip(a, b):
        assert torch.equal(xa, xb)
        assert torch.equal(ta["boxes"], tb["boxes"])
        boxes = ta["boxes"]
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
        assert (boxes[:, [0, 2]] <= 48).all()
        assert (boxes[:, [1, 3]] <= 32).all()
        assert (boxes >= 0).all()
    anatomy = TaskDataset(samples, get_task("anatomy"), default_spec((32, 48)), augment=True)
    assert anatomy.augment.zoom_range[1] <= 1.0                      # zooming in could hide a part
