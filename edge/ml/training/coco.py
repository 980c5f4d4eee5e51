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


def _evaluated(targets, predictions, labels):
    """(summary without scores, COCOeval with each image matched) for one entry per image on each side;
    the COCOeval is None when there is nothing to match (no detection or no ground truth)."""
    from pycocotools.cocoeval import COCOeval

    gt, dts = coco_ground_truth(targets, labels), _detections(predictions)
    n_gt = len(gt.dataset["annotations"])
    out = {"n": len(targets), "boxes": n_gt, "detections": len(dts), "labels": list(labels)}
    if not dts or not n_gt:   # loadRes cannot take an empty list; nothing found scores 0
        zero = 0.0 if n_gt else None
        return {**out, "mAP": zero, "mAP50": zero, "mAP75": zero, "mAR": zero,
                "per_class_AP": {n: zero for n in labels}}, None
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dts), iouType="bbox")
        ev.evaluate()
    return out, ev


def _scores(ev, out: dict, labels) -> dict:
    """accumulate() on `ev`'s images, read as COCOeval.summarize() reads it for area 'all' and 100
    detections: mAP (.50:.95), mAP50, mAP75, mAR and AP per class (-1, no ground truth, is None)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    p = ev.params
    a, m = p.areaRngLbl.index("all"), p.maxDets.index(100)
    # precision: [iou thresholds, recall points, categories, area ranges, max dets]; recall without points
    prec, rec = ev.eval["precision"][..., a, m], ev.eval["recall"][..., a, m]
    at = {iou: int(np.argmin(np.abs(p.iouThrs - iou))) for iou in (0.5, 0.75)}
    per_class = {name: _mean(prec[:, :, k]) for k, name in enumerate(labels)}
    return {**out, "mAP": _mean(prec), "mAP50": _mean(prec[at[0.5]]), "mAP75": _mean(prec[at[0.75]]),
            "mAR": _mean(rec), "per_class_AP": per_class}


def _mean(x) -> float | None:
    """COCO's mean over the scored cells (-1 marks a cell with no ground truth); None when none is."""
    x = x[x > -1]
    return float(x.mean()) if x.size else None


def detection_metrics(targets, predictions, labels) -> dict:
    """mAP (.50:.95), mAP50, mAP75, mAR (AR@100) and AP per class, one entry per image on each side."""
    out, ev = _evaluated(targets, predictions, labels)
    return out if ev is None else _scores(ev, out, labels)


def resampled_metrics(targets, predictions, labels, draws):
    """`detection_metrics` of each draw (a list of image indices, repeats allowed), one draw at a time.

    pycocotools matches every image once (`evaluate`, the slow part); each draw then re-runs only
    `accumulate` over its images, an image drawn twice counting twice, exactly as if the draw's
    images had been scored as a dataset of their own. A bootstrap over streams costs one matching
    instead of one per resample.
    """
    import copy

    _, ev = _evaluated(targets, predictions, labels)
    if ev is not None:
        n_img, n_area = len(ev.params.imgIds), len(ev.params.areaRng)
        a = ev.params.areaRngLbl.index("all")
        all_area = ev.params.areaRng[a]
        start = [(k * n_area + a) * n_img for k in range(len(ev.params.catIds))]   # evalImgs: [cat][area][image]
        per_cat = [ev.evalImgs[j:j + n_img] for j in start]
    for draw in draws:
        draw = list(draw)
        if ev is None:          # nothing to match anywhere: each draw's empty answer, scored as it is
            yield detection_metrics([targets[i] for i in draw], [predictions[i] for i in draw], labels)
            continue
        e = copy.copy(ev)
        e.params, e._paramsEval = copy.copy(ev.params), copy.copy(ev._paramsEval)
        for q in (e.params, e._paramsEval):   # only area 'all' at 100 detections is read: accumulate no other
            q.imgIds, q.areaRng, q.areaRngLbl, q.maxDets = list(range(len(draw))), [all_area], ["all"], [100]
        e.evalImgs = [imgs[i] for imgs in per_cat for i in draw]
        yield _scores(e, {"n": len(draw), "labels": list(labels)}, labels)

