"""`edgekit compress` is not ResNet-only: other zoo families go through the same command."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_cli


@pytest.mark.slow
@pytest.mark.parametrize("name, size, kwargs, int8", [
    ("mobilenet_v3_small", 32, {}, True),          # torchvision: depthwise convs, squeeze-excite, hardswish
    ("sononet16", 64, {"roi": None}, False),        # SonoNet: VGG-like body, adaptation head
])
def test_cli_compresses_another_family(tmp_path, name, size, kwargs, int8):
    from edge.ml.quantization import load_quantized
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.synth import synth
    from edge.ml.models import create_model

    synth(tmp_path / "data", frames=32, seed=0, size=(48, 64), streams=8)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model(name, task="plane", input_size=(size, size), **kwargs))
    r = run_cli("compress", ckpt, "--data", tmp_path / "data", "--prune", "0.5", "--finetune-epochs", "1",
                "--batch-size", "8", "--latency-rounds", "2", "--int8" if int8 else "--no-int8",
                "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "sweep.json").read_text())
    rows = {v["name"]: v for v in report["variants"]}
    expect = ["baseline", "structured-50"] + (["structured-50-int8", "int8"] if int8 else [])
    assert list(rows) == expect
    assert "| structured-50 |" in r.stdout
    assert rows["structured-50"]["params"] < 0.7 * rows["baseline"]["params"]
    assert abs(rows["structured-50"]["achieved"] - 0.5) < 0.1
    for v in report["variants"][1:]:
        model, meta = load_quantized(v["checkpoint"])                  # the pruned structure rebuilds
        assert meta["model"]["name"] == name
        assert (v["precision"] == "int8") == (v["latency_ms"]["qdq_pairs"] > 0)
        with torch.no_grad():
            assert model(torch.zeros(1, 1, size, size)).shape == (1, 4)
