"""The released SonoNet-16 through the chain on the four real frames in shared: FP32, INT8, pruned.

Measures, for each variant, what `edgekit run` (ONNX Runtime, CPU, the frames folder as source) says
on ABDOMINAL / BRAIN-CB / FEMUR / LVOT against the true class and against PyTorch:

- `fp32`: SonoNet16.pth exported as is (`export_bundle(..., model="sononet16")`); parity figures, and the
  max |runtime confidence - PyTorch softmax| over the 4 x 14 confidences;
- `int8`: ModelOpt INT8 quantizers (compress.quant) calibrated on phantom frames plus the four real frames,
  no QAT fine-tuning (no labelled standard-plane data here); top-1 and confidences against FP32;
- `pruned`: structured 30% (compress.structured, torch-pruning) of the released weights, top-1 before and
  after a brief fine-tuning on phantom frames only. The phantom has no standard-plane labels, so the
  fine-tuning distils the unpruned network's softmax (KL divergence), BatchNorm statistics frozen (the
  phantom's would replace the real scans'); the real frames are never trained on. Exported FP32 and run;
- `unstructured`: global magnitude pruning at the same ratio, no fine-tuning, exported FP32 and run; and
  a PyTorch-only scan of one-shot structured pruning at smaller ratios (`structured_one_shot`).

    nice -n 10 python benchmarks/bench_sononet_chain.py --out runs/bench_sononet_chain.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sononet16"
TRUE_CLASS = {"ABDOMINAL": "Abdominal", "BRAIN-CB": "Brain (Cb.)", "FEMUR": "Femur", "LVOT": "LVOT"}


def real_inputs(spec: dict) -> tuple[list[str], torch.Tensor]:
    from edge.core.preprocess import preprocess

    paths = sorted((DATA / "frames").glob("*.tiff"))
    x = np.stack([preprocess(cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1], spec) for p in paths])
    return [p.stem for p in paths], torch.from_numpy(x)


def phantom_inputs(spec: dict, n: int, seed: int) -> torch.Tensor:
    """Phantom frames at the model's input size (no scanner UI to crop), z-scored like the real ones."""
    from edge.core.phantom import sample
    from edge.core.preprocess import preprocess

    h, w = spec["resize"]
    flat = {**spec, "roi": None}
    return torch.from_numpy(np.stack([preprocess(f.image, flat) for f in sample(seed, n, h, w)]))


def softmax(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = model.eval()(x)
    return torch.softmax(out[0] if isinstance(out, tuple) else out, 1).numpy()


def run_bundle(bundle: Path, labels: list[str]) -> list[dict]:
    """`edgekit run BUNDLE --source FRAMES --headless --frames 4 --json-out` as one Python call."""
    import runtime

    jsonl = bundle.parent / f"{bundle.name}.jsonl"
    runtime.run(bundle, source=str(DATA / "frames"), headless=True, frames=4, json_out=jsonl, log=lambda m: None)
    lines = [json.loads(l) for l in jsonl.read_text().splitlines() if '"summary"' not in l[:12]]
    out = []
    for line in sorted(lines, key=lambda l: l["index"]):
        (m,) = line["models"].values()
        out.append({"label": m["label"], "confidence": round(m["confidence"], 5),
                    "confidences": [m["confidences"][l] for l in labels], "cam_box": m.get("cam_box")})
    return out


def frame_table(stems, got: list[dict], ref_probs: np.ndarray | None, labels) -> dict:
    rows = {}
    for stem, g, ref in zip(stems, got, ref_probs if ref_probs is not None else [None] * len(stems)):
        row = {"true": TRUE_CLASS[stem], "label": g["label"], "correct": g["label"] == TRUE_CLASS[stem],
               "confidence": g["confidence"], "cam_box": g["cam_box"]}
        if ref is not None:
            row.update(pytorch_label=labels[int(ref.argmax())], pytorch_confidence=round(float(ref.max()), 5),
                       max_abs_conf_diff=float(np.abs(np.array(g["confidences"]) - ref).max()))
        rows[stem] = row
    return rows


def export(ckpt, precision: str, out: Path, parity_frames: int, model=None) -> dict:
    from export.bundle import export_bundle

    t0 = time.perf_counter()
    manifest = export_bundle([str(ckpt)], "cpu", precision, out, parity_frames=parity_frames, model=model)
    (entry,) = manifest["models"]
    return {"seconds": round(time.perf_counter() - t0, 1), "parity": entry["parity"], "bytes": entry["bytes"],
            "qdq_pairs": entry["qdq_pairs"], "macs": entry["stats"]["macs"], "params": entry["stats"]["params"]}


def distil(student, teacher, x: torch.Tensor, steps: int, lr: float, batch: int, seed: int = 0) -> list[float]:
    """KL(teacher || student) on unlabelled frames; BatchNorm kept in eval mode (statistics frozen)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    with torch.no_grad():
        target = torch.softmax(teacher.eval()(x), 1)
    student.eval()
    losses = []
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=g)[:batch]
        loss = torch.nn.functional.kl_div(torch.log_softmax(student(x[idx]), 1), target[idx], reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 5))
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_sononet_chain.json")
    ap.add_argument("--parity-frames", type=int, default=32)
    ap.add_argument("--calib-phantom", type=int, default=32)
    ap.add_argument("--prune", type=float, default=0.3)
    ap.add_argument("--distil-frames", type=int, default=128)
    ap.add_argument("--distil-steps", type=int, default=60)
    ap.add_argument("--distil-lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--round-to", type=int, default=8, help="structured: channels kept in multiples of this "
                    "(compress's default 8; 0 = any count)")
    ap.add_argument("--scan", type=lambda t: [float(v) for v in t.split(",")], default=[0.1, 0.2, 0.3])
    args = ap.parse_args()
    from edge.ml.quantization import quantization_meta
    from compress.quant import quantize_int8
    from compress.structured import prune_structured
    from compress.unstructured import make_permanent, prune_unstructured
    from edge.ml.checkpoint import load_model, save_checkpoint

    torch.manual_seed(0)
    pth = DATA / "SonoNet16.pth"
    base, _ = load_model(pth, model="sononet16")
    spec, labels = base.edge_config.preprocess, list(base.edge_config.labels)
    stems, real = real_inputs(spec)
    ref = softmax(base, real)
    report = {"checkpoint": str(pth), "frames": stems, "settings": vars(args), "variants": {}}
    with tempfile.TemporaryDirectory(prefix="bench-sononet-") as tmp:
        tmp = Path(tmp)
        # FP32: the released weights as a user brings them
        info = export(pth, "fp32", tmp / "fp32", args.parity_frames, model="sononet16")
        fp32 = run_bundle(tmp / "fp32", labels)
        report["variants"]["fp32"] = {**info, "frames": frame_table(stems, fp32, ref, labels)}
        print("fp32", json.dumps(report["variants"]["fp32"]["frames"]), flush=True)

        # INT8: calibration on phantom + the real frames, no fine-tuning
        q, _ = load_model(pth, model="sononet16")
        calib = torch.cat([phantom_inputs(spec, args.calib_phantom, seed=5), real])
        quantize_int8(q, list(calib.split(args.batch)))
        ck = save_checkpoint(tmp / "int8.pt", q, quantization=quantization_meta(q, calib_samples=len(calib)))
        info = export(ck, "int8", tmp / "int8", args.parity_frames)
        int8 = run_bundle(tmp / "int8", labels)
        rows = frame_table(stems, int8, ref, labels)
        for stem, a in zip(stems, fp32):
            rows[stem]["same_top1_as_fp32"] = rows[stem]["label"] == a["label"]
        report["variants"]["int8"] = {**info, "calib_frames": {"phantom": args.calib_phantom, "real": len(real)},
                                      "qat_finetune": None, "frames": rows}
        print("int8", json.dumps(rows), flush=True)

        # pruned: structured, before and after distillation on phantom frames
        t0 = time.perf_counter()
        pruned, pinfo = prune_structured(base, args.prune, round_to=args.round_to or None)
        before = softmax(pruned, real)
        x = phantom_inputs(spec, args.distil_frames, seed=7)
        losses = distil(pruned, base, x, args.distil_steps, args.distil_lr, args.batch)
        after = softmax(pruned, real)
        ck = save_checkpoint(tmp / "pruned.pt", pruned, compression=[pinfo])
        info = export(ck, "fp32", tmp / "pruned", args.parity_frames)
        rows = frame_table(stems, run_bundle(tmp / "pruned", labels), after, labels)
        for i, stem in enumerate(stems):
            rows[stem].update(before_finetune_label=labels[int(before[i].argmax())],
                              before_finetune_confidence=round(float(before[i].max()), 5))
        report["variants"]["pruned"] = {**info, "prune": pinfo, "seconds_prune_and_distil": round(time.perf_counter() - t0, 1),
                                        "distil": {"frames": len(x), "steps": args.distil_steps, "lr": args.distil_lr,
                                                   "loss_first": losses[0], "loss_last": losses[-1]},
                                        "frames": rows}
        print("pruned", json.dumps(rows), flush=True)

        # for scale: global magnitude (unstructured) pruning at the same ratio, no fine-tuning at all
        sparse, uinfo = prune_unstructured(base, args.prune)
        make_permanent(sparse)
        ck = save_checkpoint(tmp / "sparse.pt", sparse, compression=[uinfo])
        info = export(ck, "fp32", tmp / "sparse", args.parity_frames)
        rows = frame_table(stems, run_bundle(tmp / "sparse", labels), softmax(sparse, real), labels)
        report["variants"]["unstructured"] = {**info, "prune": uinfo, "finetune": None, "frames": rows}
        print("unstructured", json.dumps(rows), flush=True)
    # structured one-shot, PyTorch only: where the real-frame answers start to go, with and without
    # channel rounding (round_to 8 cannot cut SonoNet-16's 16-channel first stage finely)
    scan = {}
    for round_to in (8, None):
        for ratio in args.scan:
            m, info = prune_structured(base, ratio, round_to=round_to)
            probs = softmax(m, real)
            top = [labels[int(i)] for i in probs.argmax(1)]
            scan[f"{ratio}/round_to={round_to}"] = {
                "achieved": info["achieved"], "labels": top, "confidence": [round(float(v), 4) for v in probs.max(1)],
                "correct": sum(t == TRUE_CLASS[s] for t, s in zip(top, stems))}
    report["structured_one_shot"] = scan
    print("scan", json.dumps(scan), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
