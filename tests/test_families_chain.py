"""Every seed family goes through the FPUS23 chain: `compress` (structured 30% + INT8 QAT, one fine-tune
epoch) -> `export` (FP32 and INT8, parity gated) -> `runtime.run` on the phantom sweep.

One model per family, tiny inputs: SonoNet-16 (class-score maps), the soft-proposal ResNet18
(proposal maps, multi-label) and a torchvision FETAL_PLANES_DB classifier (MobileNetV3-small).
"""
from __future__ import annotations

import json

import pytest
import torch

FAST = dict(finetune_epochs=1, batch_size=4, calib_samples=8, latency_rounds=1, progress=False)
FAMILIES = [  # (model, task, input size, create_model overrides)
    ("sononet16", "plane", (48, 32), {"roi": None}),
    ("resnet18_sp", "anatomy", (48, 48), {}),
    ("mobilenet_v3_small", "plane", (32, 32), {}),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,task,size,kw", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_compresses_exports_and_runs(name, task, size, kw, tmp_path):
    import runtime
    from compress.sweep import SweepSettings, sweep
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.dataset import PhantomDataset
    from edge.ml.models import create_model
    from export.bundle import export_bundle

    torch.manual_seed(0)
    model = create_model(name, task=task, input_size=size, **kw).eval()
    spec = model.edge_config.preprocess
    ckpt = save_checkpoint(tmp_path / f"{name}.pt", model)
    sets = (PhantomDataset(task, spec, seed=0, n=8, size=size, augment=True),
            PhantomDataset(task, spec, seed=1, n=4, size=size))
    report = sweep(ckpt, sets, tmp_path / "c", SweepSettings(ratios=(0.3,), method="structured", int8=True, **FAST))
    rows = {v["name"]: v for v in report["variants"]}
    assert set(rows) == {"baseline", "structured-30", "structured-30-int8", "int8"}
    assert rows["structured-30"]["achieved"] == pytest.approx(0.3, abs=0.08)
    assert rows["structured-30"]["params"] < rows["baseline"]["params"]
    roles = list(model.edge_config.outputs)
    for precision, variant in (("fp32", "structured-30"), ("int8", "structured-30-int8")):
        bundle = tmp_path / f"bundle-{precision}"
        manifest = export_bundle([rows[variant]["checkpoint"]], "cpu", precision, bundle, parity_frames=4)
        (entry,) = manifest["models"]
        assert entry["parity"]["passed"]
        assert [o["role"] for o in entry["outputs"]] == roles
        assert (entry["qdq_pairs"] > 0) == (precision == "int8")
        summary = runtime.run(bundle, source="phantom:3?realtime=0", headless=True, frames=2,
                              json_out=tmp_path / f"{precision}.jsonl", log=lambda msg: None)
        assert summary["frames"] == 2
        lines = [json.loads(l) for l in (tmp_path / f"{precision}.jsonl").read_text().splitlines()]
        for line in lines[:-1]:
            out = line["models"][entry["name"]]
            assert set(out["confidences"]) == set(entry["labels"])
            assert out["kind"] == entry["kind"]
