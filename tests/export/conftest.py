"""Tiny checkpoints shared by the export tests (built once per session, CPU-cheap)."""
from __future__ import annotations

import pytest
import torch


def _calibrate(model, n=8, detector=False):
    import modelopt.torch.quantization as mtq

    from export.parity import frames
    from edge.ml.quantization import quantization_meta

    xs = [torch.from_numpy(f) for f in frames(model.edge_config.preprocess, n, seed=1)]
    loop = (lambda m: m(xs)) if detector else (lambda m: [m(x[None]) for x in xs])
    mtq.quantize(model, mtq.INT8_DEFAULT_CFG, loop)
    return quantization_meta(model)


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory):
    """{'plane', 'plane_qat', 'anatomy'}: resnet8 at 32x32 as edgekit checkpoints (QAT via ModelOpt)."""
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.models import create_model

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    out = {}
    for task in ("plane", "anatomy"):
        m = create_model("resnet8", task=task, input_size=(32, 32)).eval()
        out[task] = save_checkpoint(d / f"{task}.pt", m)
    m = create_model("resnet8", task="plane", input_size=(32, 32)).eval()
    m.load_state_dict(torch.load(out["plane"], weights_only=True)["state_dict"])
    out["plane_qat"] = save_checkpoint(d / "plane.qat.pt", m, quantization=_calibrate(m))
    return out


@pytest.fixture(scope="session")
def detector_ckpts(tmp_path_factory):
    """{'det', 'det_qat'}: a small Faster R-CNN ResNet10 (64x64, FPN 32 channels)."""
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.models import create_model

    d = tmp_path_factory.mktemp("det")
    torch.manual_seed(0)
    m = create_model("fasterrcnn_resnet10", task="detection", input_size=(64, 64), fpn_channels=32).eval()
    out = {"det": save_checkpoint(d / "det.pt", m)}
    out["det_qat"] = save_checkpoint(d / "det.qat.pt", m, quantization=_calibrate(m, 4, detector=True))
    return out
