"""Parity at export: does the ONNX file answer like the PyTorch model it came from, on phantom frames?

The frames are the phantom simulator's (`edge.core.phantom.sample`), preprocessed exactly as the manifest
says, so parity measures the graph, not the data path. Each precision has one gate (a miss fails the
export with `ParityError`) and its figures go into the manifest:

| model | fp32 vs PyTorch | fp16 vs PyTorch FP32 | int8 vs PyTorch QAT (fake-quant) |
| --- | --- | --- | --- |
| classifier | max abs logit diff <= 1e-4 x max(1, max abs logit) | top-1 agreement >= 99% | top-1 agreement >= 99% |
| detector | agreement mAP >= 99 | mAP vs truth within 1 point of PyTorch's | mAP vs truth within 1 point of PyTorch QAT's |

The FP32 gate scales with the logits' magnitude. Two FP32 engines that run the same graph differ by
float rounding, which grows with the size of the values summed: 1e-4 absolute is ~1000 float32 ulps
for logits near 1, but only ~4 ulps for logits near 250, which is what an untrained SonoNet gives on
z-score x 255 inputs (there PyTorch and ONNX Runtime each sit ~2e-4 from a float64 run of the same
weights, and 1.2e-4 from each other). So the bound is 1e-4 per unit of the largest reference logit,
with a floor of one unit: unchanged (1e-4 absolute) for logits within +-1, and still ~1000x tighter
than a real graph difference (a changed weight, a wrong BatchNorm epsilon), which moves logits by a
share of their own size. The report keeps the absolute figure (`max_abs_diff`) beside the bound.

Multi-label classifiers gate on per-label decision agreement (sigmoid > 0.5) instead of top-1.

INT8 comes in two forms (`export.onnx`) and both meet the same gate against the same PyTorch QAT
model. The TensorRT form is ModelOpt's own graph, so ORT reproduces PyTorch's fake quantisation to
rounding (max |logit diff| ~0.02 on the demo's plane model). The ONNX Runtime form
(`export.int8_ort`) runs integer kernels with a few quantisation points QAT never saw (a conv's
output before a residual Add, calibrated) and without the QAT clip on ReLU outputs, so it sits
further from the reference (~0.1 there, less than the float twin's own distance from it) while
answering the same on >= 99% of frames; when it does not, the bundle ships the TensorRT form
(`export.bundle`).

Detectors. The agreement mAP (COCO, IoU .50:.95, pycocotools) scores the ONNX detections against the
reference's own detections with score >= `gt_score` as ground truth, so the reference scores 100 by
construction and "within one point" means >= 99: the FP32 gate, where the two graphs agree to float
rounding. It is too strict a ruler for FP16 and INT8: at IoU .95 a box that moves by a pixel on a small
part counts as a miss, and a score that crosses the display threshold adds or removes a "true" box (a
trained FRCNN-R10 at INT8 scored 96.6-97.1 on it while detecting as well as its fake-quant reference).
So reduced precisions are gated on what a user sees: the ONNX detector's box mAP against the phantom
frames' true boxes must be within one point of its PyTorch reference's mAP on the same frames; the
agreement mAP is kept in the report. A reference below `MIN_TRUTH_MAP` against the truth (untrained
or weak) falls back to the agreement gate; if it displays no box on any frame, mAP is undefined and
the gate is that the ONNX displays nothing on >= 99% of the frames either.

    >>> report = check_parity(model, "plane.fp16.onnx", "fp16", frames(spec, 100))   # doctest: +SKIP
    >>> report["top1_agreement"], report["passed"]                                   # doctest: +SKIP
    (1.0, True)
"""
from __future__ import annotations

import numpy as np
import torch

from edge.core.errors import EdgekitError
from edge.core.tasks import DETECTION, MULTI_LABEL
from export.graph import run_reference

FP32_MAX_ABS = 1e-4        # per unit of max(1, max |reference logit|): see fp32_bound
MIN_AGREEMENT = 0.99
MIN_MAP = 99.0
MAX_MAP_DELTA = 1.0        # fp16/int8 detector: |mAP vs truth - reference's mAP vs truth|, points
MIN_TRUTH_MAP = 10.0       # below this the reference is no working detector: agreement gate instead


class ParityError(EdgekitError):
    """An exported graph that does not answer like its PyTorch model: the export is refused."""


def phantom_set(spec: dict, n: int, seed: int = 0, labels=None) -> tuple[list[np.ndarray], list | None]:
    """`n` phantom frames preprocessed by `spec` (CxHxW float32), rendered at the model's input size
    (or large enough to hold the spec's ROI crop, which is in source-frame pixels); with `labels`,
    also each frame's true boxes in model-input pixels as (Nx4 boxes, N 1-based label ids)."""
    from edge.core.phantom import sample
    from edge.core.preprocess import box_targets, preprocess

    h, w = (int(v) for v in spec["resize"])
    if spec.get("roi"):
        h, w = max(h, int(spec["roi"][1])), max(w, int(spec["roi"][3]))
    rendered = sample(seed, n, h, w)
    inputs = [preprocess(f.image, spec) for f in rendered]
    if labels is None:
        return inputs, None
    return inputs, [box_targets(f.boxes, f.image.shape[:2], spec, labels) for f in rendered]


def frames(spec: dict, n: int, seed: int = 0) -> list[np.ndarray]:
    """The inputs of `phantom_set` alone."""
    return phantom_set(spec, n, seed)[0]


def _as_truth(boxes, labels) -> dict:
    return {"boxes": np.asarray(boxes, np.float64).reshape(-1, 4), "labels": np.asarray(labels).reshape(-1)}


def _as_detections(boxes, scores, labels) -> dict:
    return {**_as_truth(boxes, labels), "scores": np.asarray(scores).reshape(-1)}


def box_map(reference: list, candidate: list, gt_score: float = 0.5) -> dict:
    """COCO mAP (0..100) of candidate (boxes, scores, labels) per frame against the reference's boxes.

    Ground truth = reference detections with score >= `gt_score` (what the device would display).
    If the reference displays nothing on any frame (an untrained or weak model), mAP is undefined and
    parity is the share of frames on which the candidate displays nothing either.
    """
    truth = [_as_truth(np.asarray(rb).reshape(-1, 4)[np.asarray(rs).reshape(-1) >= gt_score],
                       np.asarray(rl).reshape(-1)[np.asarray(rs).reshape(-1) >= gt_score])
             for rb, rs, rl in reference]
    dets = [_as_detections(*c) for c in candidate]
    gt_boxes = sum(len(t["labels"]) for t in truth)
    result = {"gt_score": gt_score, "gt_boxes": gt_boxes, "detections": sum(len(d["scores"]) for d in dets)}
    if not gt_boxes:
        quiet = sum(not (c[1] >= gt_score).any() for c in candidate) / max(1, len(candidate))
        return {**result, "map": None, "displayed_agreement": quiet}
    return {**result, "map": _coco_map(truth, dets)}


def _coco_map(truth: list[dict], detections: list[dict]) -> float:
    """COCO mAP@[.5:.95] (0..100) by pycocotools, through the one COCO builder (`edge.ml.training.coco`)."""
    from edge.ml.training.coco import detection_metrics

    ids = [int(v) for side in (truth, detections) for d in side for v in d["labels"]]
    names = [str(i) for i in range(1, max(ids) + 1)]      # category ids are 1-based label ids
    return round(max(0.0, detection_metrics(truth, detections, names)["mAP"] or 0.0) * 100, 3)


def truth_map(truth: list, detections: list) -> float | None:
    """COCO mAP (0..100) of detections (boxes, scores, labels) per frame against the phantom's true
    (boxes, labels); None when no frame has a true box."""
    truth = [_as_truth(*t) for t in truth]
    if not any(len(t["labels"]) for t in truth):
        return None
    return _coco_map(truth, [_as_detections(*d) for d in detections])


def fp32_bound(ref: np.ndarray) -> float:
    """The FP32 gate's bound on max |ref - onnx|: 1e-4 x max(1, max |ref|) (float rounding scales with size).

    >>> fp32_bound(np.array([[0.3, -0.8]])), fp32_bound(np.array([[250.0, -12.0]]))
    (0.0001, 0.025)
    """
    return FP32_MAX_ABS * max(1.0, float(np.abs(ref).max()))


def _classifier(kind: str, precision: str, ref: np.ndarray, got: np.ndarray) -> dict:
    diff = float(np.abs(ref - got).max())
    out = {"max_abs_diff": diff, "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean())}
    if kind == MULTI_LABEL:
        out["label_agreement"] = float(((ref > 0) == (got > 0)).mean())  # sigmoid(x) > .5 <=> x > 0
    if precision == "fp32":
        bound, mag = fp32_bound(ref), float(np.abs(ref).max())
        out.update(max_abs_ref=mag, bound=bound, metric="max_abs_diff",
                   required=f"<= {bound:.3g} (1e-4 x max(1, max|logit| {mag:.3g}))", passed=diff <= bound)
    else:
        key = "label_agreement" if kind == MULTI_LABEL else "top1_agreement"
        out.update(metric=key, required=f">= {MIN_AGREEMENT:g}", passed=out[key] >= MIN_AGREEMENT)
    return out


def _detector(precision: str, refs: list, gots: list, gt_score: float, truth: list | None) -> dict:
    """The detector gate (module docstring) on per-frame (boxes, scores, labels) of both graphs."""
    report = box_map(refs, gots, gt_score)
    ref_map = truth_map(truth, refs) if truth is not None and precision != "fp32" else None
    if ref_map is not None and ref_map >= MIN_TRUTH_MAP:
        got_map = truth_map(truth, gots)
        report.update(agreement_map=report.pop("map"), truth_map_reference=ref_map, truth_map=got_map,
                      map_delta=round(abs(got_map - ref_map), 3), metric="map_delta",
                      required=f"within {MAX_MAP_DELTA:g} point of the reference's mAP against the true boxes",
                      passed=abs(got_map - ref_map) <= MAX_MAP_DELTA)
    elif report["map"] is None:
        report.update(metric="displayed_agreement", required=f">= {MIN_AGREEMENT:g}",
                      passed=report["displayed_agreement"] >= MIN_AGREEMENT)
    else:
        report.update(metric="map", required=f">= {MIN_MAP:g}", passed=report["map"] >= MIN_MAP)
    return report


def check_parity(model, onnx_path, precision: str, inputs: list[np.ndarray], kind: str,
                 raise_on_fail: bool = True, gt_score: float = 0.5, truth: list | None = None) -> dict:
    """Run the ONNX file (ONNX Runtime, CPU) and the PyTorch model on `inputs`; gate and report.

    `truth` (the frames' true boxes, `phantom_set(..., labels=)`) lets a reduced-precision detector
    be gated on what matters: its box mAP against the truth within `MAX_MAP_DELTA` points of its
    PyTorch reference's."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    refs, gots = [], []
    for x in inputs:
        refs.append(run_reference(model, torch.from_numpy(x[None])))
        gots.append(sess.run(None, {"input": x[None]}))
    if kind == DETECTION:
        report = _detector(precision, refs, gots, gt_score, truth)
    else:
        report = _classifier(kind, precision, np.concatenate([r[0] for r in refs]),
                             np.concatenate([g[0] for g in gots]))
    report = {"precision": precision, "frames": len(inputs), "frame_source": "edge.core.phantom",
              "reference": "pytorch-qat" if precision == "int8" else "pytorch-fp32", **report}
    if raise_on_fail and not report["passed"]:
        raise ParityError(f"{onnx_path}: {precision} parity failed: {report['metric']} = "
                          f"{report[report['metric']]:.6g}, required {report['required']} on "
                          f"{len(inputs)} phantom frames; the export is refused")
    return report
