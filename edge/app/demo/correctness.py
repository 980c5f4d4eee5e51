"""Was the loop right? Each model's answers on the demo's probe sweep scored against the phantom's truth.

The phantom source puts every frame's truth in its `info` (`runtime.sources.phantom.frame_truth`);
`runtime.outputs.Collect` keeps the loop's results, infos and events. Scores per model, by task:

- plane (a tracked single-label model): per-frame accuracy and macro-F1 of the raw answer (argmax) and
  of the hysteresis state (`runtime.temporal`), and plane retrieval on the state by
  `edge.ml.training.metrics.plane_retrieval` (recall: true crossings the state holds within
  `TOLERANCE` frames; precision: state frames in a plane that is truly shown within `TOLERANCE`);
- orientation (single label): per-frame accuracy and macro-F1 (`frame_metrics`);
- anatomy (multi label): exact match (the set of labels over threshold equals the set in view);
- detection: COCO mAP and mAP@.5 (`edge.ml.training.coco.detection_metrics`) of the boxes the loop
  kept (over the manifest's threshold, so lower than a full-ranking mAP), and box recall@IoU 0.5:
  the fraction of true boxes that a kept box of the same label overlaps with IoU >= 0.5 (each kept
  box matches at most one true box, highest score first).

Frames are the ones the loop processed, in order: a paced run that dropped frames scores fewer
frames, and retrieval's tolerance counts processed frames.
"""
from __future__ import annotations

import numpy as np

BACKGROUND = "no plane"
TOLERANCE = 3     # frames: how far a found crossing may start or end from the true one
IOU = 0.5


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_recall(truth_boxes: list[list[dict]], predicted: list[list[dict]], iou: float = IOU) -> dict:
    """Per frame, greedy matching of predicted boxes (by score) to unmatched true boxes of the same
    label at IoU >= `iou`: {"boxes", "detections", "matched", "recall", "precision"}."""
    n_true = n_pred = matched = 0
    for truth, pred in zip(truth_boxes, predicted):
        n_true, n_pred = n_true + len(truth), n_pred + len(pred)
        free = list(truth)
        for p in sorted(pred, key=lambda d: -d["score"]):
            scores = [_iou(p["box"], t["box"]) if t["label"] == p["label"] else 0.0 for t in free]
            if scores and max(scores) >= iou:
                free.pop(int(np.argmax(scores)))
                matched += 1
    return {"boxes": n_true, "detections": n_pred, "matched": matched,
            "recall": matched / n_true if n_true else None, "precision": matched / n_pred if n_pred else None}


def _single_label(task: str, labels, truth, predicted, state=None) -> dict:
    from edge.ml.training.metrics import frame_metrics

    fm = frame_metrics(truth, predicted, list(labels))
    out = {"accuracy": fm["accuracy"], "macro_f1": fm["macro_f1"]}
    if state is not None:
        from edge.ml.training.metrics import plane_retrieval

        sm = frame_metrics(truth, state, list(labels))
        background = BACKGROUND if BACKGROUND in labels else None
        r = plane_retrieval(truth, state, background=background, tolerance=TOLERANCE)
        out.update(state_accuracy=sm["accuracy"], state_macro_f1=sm["macro_f1"],
                   retrieval_recall=r["recall"], retrieval_precision=r["precision"],
                   crossings=r["crossings"], found=r["found"], tolerance=r["tolerance"])
    return out


def _detection(labels, truth, outputs) -> dict:
    from edge.ml.training.coco import detection_metrics

    index = {n: i + 1 for i, n in enumerate(labels)}
    targets = [{"boxes": np.array([b["box"] for b in t], np.float64).reshape(-1, 4),
                "labels": np.array([index[b["label"]] for b in t], np.int64)} for t in truth]
    preds = [{"boxes": np.array([d["box"] for d in o.boxes], np.float64).reshape(-1, 4),
              "scores": np.array([d["score"] for d in o.boxes], np.float64),
              "labels": np.array([index.get(d["label"], 0) for d in o.boxes], np.int64)} for o in outputs]
    coco = detection_metrics(targets, preds, list(labels))
    recall = box_recall(truth, [o.boxes for o in outputs])
    return {"mAP": coco["mAP"], "mAP50": coco["mAP50"], "box_recall_iou50": recall["recall"],
            "box_precision_iou50": recall["precision"], "boxes": recall["boxes"],
            "detections": recall["detections"]}


def score_run(bundle, results, infos, events=()) -> dict:
    """{"frames", "scored_frames", "events", "models": {name: {"task", "kind", "frames", ...scores}}}
    for the loop's `results` (with their frames' `infos`) on a phantom sweep; models whose task the
    phantom has no truth for are listed with "scored": False."""
    from runtime.bundle import load_bundle

    entries = load_bundle(bundle, verify=False).models
    scored = [(r, i["truth"]) for r, i in zip(results, infos) if isinstance(i, dict) and i.get("truth")]
    report = {"frames": len(results), "scored_frames": len(scored), "events": len(list(events)),
              "tolerance_frames": TOLERANCE, "iou": IOU, "models": {}}
    for e in entries:
        rows = [(r.outputs[e.name], t) for r, t in scored if e.name in r.outputs]
        entry = {"task": e.task, "kind": e.kind, "frames": len(rows), "scored": bool(rows)}
        if rows and e.task in ("plane", "orientation"):
            truth = [t[e.task] for _, t in rows]
            tracked = all(o.tracked for o, _ in rows)
            state = [o.state if o.state is not None else BACKGROUND for o, _ in rows] if tracked else None
            entry.update(_single_label(e.task, e.labels, truth, [o.label for o, _ in rows], state))
        elif rows and e.task == "anatomy":
            entry["exact_match"] = float(np.mean([set(o.labels) == set(t["anatomy"]) for o, t in rows]))
        elif rows and e.task == "detection":
            entry.update(_detection(e.labels, [t["boxes"] for _, t in rows], [o for o, _ in rows]))
        else:
            entry["scored"] = False
        report["models"][e.name] = entry
    return report


# (key, what the table calls it), in table order; a model shows the ones it has
MEASURES = (("accuracy", "per-frame accuracy (argmax)"), ("macro_f1", "per-frame macro-F1 (argmax)"),
            ("state_accuracy", "per-frame accuracy (hysteresis state)"),
            ("state_macro_f1", "per-frame macro-F1 (hysteresis state)"),
            ("retrieval_recall", "plane retrieval recall (state)"),
            ("retrieval_precision", "plane retrieval precision (state)"),
            ("exact_match", "exact match (labels in view)"), ("mAP", "box mAP .50:.95 (kept boxes)"),
            ("mAP50", "box mAP@.5 (kept boxes)"), ("box_recall_iou50", "box recall@IoU0.5"),
            ("box_precision_iou50", "box precision@IoU0.5"))


def table(correctness: dict, run: dict | None = None) -> list[str]:
    """The correctness table (Markdown), one row per model and measure, with the model's loop latency."""
    models_ms = (run or {}).get("models_ms", {})
    lines = ["| model | task | frames | measure | value | loop p50 ms |", "|---|---|---|---|---|---|"]
    for name, m in correctness["models"].items():
        p50 = models_ms.get(name, {}).get("total", {}).get("p50")
        ms = "-" if p50 is None else f"{p50:.1f}"
        shown = [(label, m[key]) for key, label in MEASURES if key in m]
        if not shown:
            lines.append(f"| {name} | {m['task']} | {m['frames']} | not scored (no truth for this task) | - | {ms} |")
        for label, value in shown:
            lines.append(f"| {name} | {m['task']} | {m['frames']} | {label} | "
                         f"{'-' if value is None else f'{value:.3f}'} | {ms} |")
    found = [f"{name}: {m['found']} of {m['crossings']} true plane crossings found" for name, m in
             correctness["models"].items() if "crossings" in m]
    return lines + ([""] + ["; ".join(found) + f" (within {correctness['tolerance_frames']} frames), "
                           f"{correctness['events']} plane_found events"] if found else [])
