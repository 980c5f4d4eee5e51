"""SonoNet: the architecture of seed Fig. 2, the export flag, and the released checkpoint on real frames."""

import cv2
import numpy as np
import pytest
import torch

from edge.ml.checkpoint import load_model, save_checkpoint
from edge.ml.models import create_model
from edge.core.preprocess import preprocess
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "sononet16"
TRUE_CLASS = {"ABDOMINAL": "Abdominal", "BRAIN-CB": "Brain (Cb.)", "FEMUR": "Femur", "LVOT": "LVOT"}
needs_data = pytest.mark.skipif(not (DATA / "SonoNet16.pth").is_file(), reason="shared SonoNet data missing")


@pytest.mark.parametrize("name,width", [("sononet16", 16), ("sononet32", 32), ("sononet64", 64)])
def test_widths_adaptation_and_key_names(name, width):
    m = create_model(name, task="standard_plane", input_size=(64, 48))
    sd = m.state_dict()
    convs = [k for k in sd if k.startswith("features.") and k.endswith(".0.weight")]
    assert len(convs) == 13
    assert not any("num_batches_tracked" in k for k in sd)
    assert [sd[f"features.{s}.0.0.weight"].shape[0] for s in range(5)] == [width * k for k in (1, 2, 4, 8, 8)]
    assert sd["adaption.0.weight"].shape == (4 * width, 8 * width, 1, 1)
    assert sd["adaption.3.weight"].shape == (14, 4 * width, 1, 1)
    assert "adaption.4.running_var" in sd
    assert m.adaption[1].eps == 1e-4
    assert m.edge_config.outputs == ("logits", "cam")


def test_export_flag_returns_class_maps_whose_mean_is_the_logits():
    m = create_model("sononet16", task="standard_plane").eval()
    x = torch.randn(1, 1, 288, 224)
    with torch.no_grad():
        logits = m(x)
        m.export_cam = True
        out, cam = m(x)
    assert cam.shape == (1, 14, 18, 14)              # the paper's 14x18 maps for a 224x288 input
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(cam.mean(dim=(2, 3)), logits)


def test_preprocess_spec_and_checkpoint_round_trip(tmp_path):
    m = create_model("sononet16", task="standard_plane", input_size=(64, 64))
    spec = m.edge_config.preprocess
    assert spec["roi"] == [115, 734, 81, 874]
    assert spec["interpolation"] == "cubic"
    assert spec["normalize"] == {"mode": "zscore", "scale": 255.0}
    assert spec["resize"] == [64, 64]
    assert create_model("sononet16", task="standard_plane", roi=None).edge_config.preprocess["roi"] is None
    back, _ = load_model(save_checkpoint(tmp_path / "s.pt", m))
    assert back.edge_config.input_size == (64, 64)


def _reference(bgr: np.ndarray, resize_uint8: bool) -> np.ndarray:
    """README: crop rows 115:734, cols 81:874, bicubic resize of RGB to 224x288, grey = mean, z-score x 255."""
    rgb = np.ascontiguousarray(bgr[115:734, 81:874, ::-1])
    rgb = rgb if resize_uint8 else rgb.astype(np.float32)
    grey = cv2.resize(rgb, (224, 288), interpolation=cv2.INTER_CUBIC).astype(np.float32).mean(axis=2)
    return (255.0 * (grey - grey.mean()) / grey.std()).astype(np.float32)[None]


@needs_data
def test_released_checkpoint_classifies_the_real_frames():
    model, meta = load_model(DATA / "SonoNet16.pth", model="sononet16", task="standard_plane")
    assert meta["format"] == "state_dict"
    labels, spec = model.edge_config.labels, model.edge_config.preprocess
    frames = sorted(DATA.glob("frames/*.tiff"))
    assert len(frames) == 4
    for path in frames:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr.shape == (735, 975, 3)
        inputs = [preprocess(bgr[..., ::-1], spec), _reference(bgr, False), _reference(bgr, True)]
        with torch.no_grad():
            probs = torch.softmax(model(torch.from_numpy(np.stack(inputs))), dim=1)
        ours = probs[0]
        assert labels[int(ours.argmax())] == TRUE_CLASS[path.stem], path.name
        assert float(ours.max()) > 0.98, (path.name, float(ours.max()))
        assert float((probs[1:] - ours).abs().max()) < 1e-3, path.name    # crop-grey-resize == README order
