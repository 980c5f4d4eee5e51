"""Box metrics by pycocotools itself: COCO ground truth and detections built in memory, never on disk.

mAP is COCO's AP averaged over IoU .50:.05:.95 (the FPUS23 paper's figure), with AP@.5, AP@.75 and
AR@100 (mAR) beside it, and AP per class. Boxes are x1, y1, x2, y2 in one pixel frame for both sides;
labels are 1-based (0 is background, as in torchvision). pycocotools prints as it works; that goes
to a buffer.

    >>> gt = [{"boxes": [[0, 0, 10, 10]], "labels": [1]}]
    >>> dt = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}]
    >>> round(detection_metrics(gt, dt, ("head",))["mAP"], 6)
    1.0
"""
from __future__ import annotations

import contextlib
import io

import numpy as np


def _xywh(box) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_ground_truth(targets, labels):
    """A pycocotools COCO object from per-image {"boxes", "labels"} (annotation ids start at 1:
    pycocotools reads id 0 as 'unmatched')."""
    from pycocotools.coco import COCO

    anns = []
    for img_id, t in enumerate(targets):
        for box, lbl in zip(np.asarray(t["boxes"]).reshape(-1, 4), np.asarray(t["labels"]).reshape(-1)):
            xywh = _xywh(box)
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(lbl), "bbox": xywh,
                         "area": xywh[2] * xywh[3], "iscrowd": 0})
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in range(len(targets))], "annotations": anns,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(labels)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _detections(predictions) -> list[dict]:
    return [{"image_id": img_id, "category_id": int(lbl), "bbox": _xywh(box), "score": float(s)}
            for img_id, p in enumerate(predictions)
            for box, s, lbl in zip(np.asarray(p["boxes"]).reshape(-1, 4), np.asarray(p["scores"]).reshape(-1),
                                   np.asarray(p["labels"]).reshape(-1))]


def _value(v) -> float | None:
    """COCO marks 'no ground truth to score' as -1; say None instead of a fake number."""
    return None if v is None or v < 0 else float(v)


def detection_metrics(targets, predictions, labels) -> dict:
    """mAP (.50:.95), mAP50, mAP75, mAR (AR@100) and AP per class, one entry per image on each side."""
    from pycocotools.cocoeval import COCOeval

    gt, dts = coco_ground_truth(targets, labels), _detections(predictions)
    n_gt = len(gt.dataset["annotations"])
    out = {"n": len(targets), "boxes": n_gt, "detections": len(dts), "labels": list(labels)}
    if not dts or not n_gt:   # loadRes cannot take an empty list; nothing found scores 0
        zero = 0.0 if n_gt else None
        return {**out, "mAP": zero, "mAP50": zero, "mAP75": zero, "mAR": zero,
                "per_class_AP": {n: zero for n in labels}}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dts), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # precision: [iou thresholds, recall points, categories, area ranges, max dets]; area 'all', 100 dets
    per_class = {}
    for k, name in enumerate(labels):
        p = ev.eval["precision"][:, :, k, 0, -1]
        per_class[name] = _value(float(p[p > -1].mean()) if (p > -1).any() else -1)
    s = ev.stats
    return {**out, "mAP": _value(s[0]), "mAP50": _value(s[1]), "mAP75": _value(s[2]), "mAR": _value(s[8]),
            "per_class_AP": per_class}
