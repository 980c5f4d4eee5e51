"""Metrics on hand-made predictions: perfect is 1.0, a known confusion matrix gives known figures,
a detection of known IoU gives a known COCO AP (pycocotools' own numbers), and the CLI's `eval` path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edge.core.errors import BadInputError
from edge.ml.training.evaluate import evaluate, evaluate_model, format_metrics, headline
from edge.ml.models.config import ModelConfig
from edge.core.preprocess import default_spec
from edge.core.tasks import get_task
from edge.ml.training.coco import coco_ground_truth, detection_metrics, resampled_metrics
from edge.ml.training.metrics import multi_label_metrics, single_label_metrics

LABELS = ("AC", "BPD", "FL", "no plane")


def test_single_label_perfect_and_known_confusion():
    perfect = single_label_metrics([0, 1, 2, 3, 3], [0, 1, 2, 3, 3], LABELS)
    assert perfect["accuracy"] == 1.0
    assert perfect["macro_f1"] == 1.0
    m = single_label_metrics([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 1, 1, 2, 0, 3, 3], LABELS)
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 2]]
    assert m["accuracy"] == 6 / 8
    assert m["per_class"]["BPD"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"]["FL"]["precision"] == 1.0
    assert m["per_class"]["FL"]["recall"] == 0.5


def test_classifier_metrics_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = single_label_metrics(t, p, LABELS)
    assert m["macro_f1"] == pytest.approx(sk.f1_score(t, p, average="macro"))
    assert [r["recall"] for r in m["per_class"].values()] == pytest.approx(sk.recall_score(t, p, average=None))
    tm, pm = rng.integers(0, 2, (200, 4)), rng.integers(0, 2, (200, 4))
    mm = multi_label_metrics(tm, pm, ("head", "arms", "legs", "abdomen"))
    assert mm["exact_match"] == pytest.approx(sk.accuracy_score(tm, pm))
    assert mm["macro_f1"] == pytest.approx(sk.f1_score(tm, pm, average="macro"))
    assert mm["label_accuracy"] == pytest.approx((tm == pm).mean())


def test_multi_label_exact_match_counts_whole_rows():
    t = [[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 1, 1]]
    assert multi_label_metrics(t, t, ("head", "arms", "legs", "abdomen"))["exact_match"] == 1.0
    m = multi_label_metrics(t, [[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 1]], ("head", "arms", "legs", "abdomen"))
    assert m["exact_match"] == pytest.approx(2 / 3)
    assert m["label_accuracy"] == pytest.approx(11 / 12)
    assert m["per_class"]["legs"]["recall"] == 0.5


def _det(boxes, labels, scores=None):
    d = {"boxes": np.array(boxes, dtype=float).reshape(-1, 4), "labels": np.array(labels)}
    if scores is not None:
        d["scores"] = np.array(scores, dtype=float)
    return d


def test_detection_ap_follows_iou_thresholds():
    gt = [_det([[10, 10, 60, 60]], [1]), _det([[0, 0, 20, 40]], [3])]
    perfect = detection_metrics(gt, [_det(g["boxes"], g["labels"], [0.9]) for g in gt], ("head", "arms", "legs"))
    assert perfect["mAP"] == pytest.approx(1.0)
    assert perfect["mAR"] == pytest.approx(1.0)
    assert perfect["per_class_AP"]["arms"] is None          # no ground truth: not scored, not zero
    # shift the 50x50 box by 8 px in x: IoU = 42*50 / (2*2500 - 42*50) = 0.7241 -> matched at .50..70
    shifted = [_det([[18, 10, 68, 60]], [1], [0.9]), _det([[0, 0, 20, 40]], [3], [0.8])]
    m = detection_metrics(gt, shifted, ("head", "arms", "legs"))
    assert m["per_class_AP"]["head"] == pytest.approx(0.5)
    assert m["per_class_AP"]["legs"] == pytest.approx(1.0)
    assert m["mAP"] == pytest.approx(0.75)
    assert m["mAP50"] == pytest.approx(1.0)
    assert m["mAR"] == pytest.approx(0.75)
    wrong_class = detection_metrics(gt[:1], [_det([[10, 10, 60, 60]], [2], [0.9])], ("head", "arms"))
    assert wrong_class["mAP"] == 0.0
    nothing = detection_metrics(gt, [_det([], [], []), _det([], [], [])], ("head", "arms", "legs"))
    assert nothing["mAP"] == 0.0
    assert nothing["detections"] == 0


def _random_detections(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    gt, dt = [], []
    for _ in range(n):
        k, m = rng.integers(0, 4), rng.integers(0, 6)
        xy = rng.uniform(0, 100, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (k, 2))], 1)
        gt.append(_det(boxes.tolist(), rng.integers(1, 4, k).tolist()))
        near = boxes[rng.integers(0, k, m)] + rng.normal(0, 4, (m, 4)) if k else rng.uniform(0, 100, (m, 4))
        near[:, 2:] = np.maximum(near[:, 2:], near[:, :2] + 1)
        dt.append(_det(near.tolist(), rng.integers(1, 4, m).tolist(), rng.uniform(0, 1, m).round(2).tolist()))
    return gt, dt


def _coco_summary(gt, dt, labels) -> list:
    """pycocotools end to end on its own: evaluate, accumulate, summarize."""
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    from edge.ml.training.coco import _detections

    coco = coco_ground_truth(gt, labels)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(_detections(dt)), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [ev.stats[i] for i in (0, 1, 2, 8)]


def test_resampled_metrics_equal_scoring_each_draw_as_its_own_dataset():
    labels = ("head", "arms", "legs")
    gt, dt = _random_detections(120)
    rng = np.random.default_rng(1)
    draws = [rng.integers(0, 120, 120).tolist() for _ in range(4)] + [[5, 5, 5, 7], list(range(120))]
    for draw, m in zip(draws, resampled_metrics(gt, dt, labels, draws)):
        sub_gt, sub_dt = [gt[i] for i in draw], [dt[i] for i in draw]
        assert [m[k] for k in ("mAP", "mAP50", "mAP75", "mAR")] == _coco_summary(sub_gt, sub_dt, labels)
        assert m["per_class_AP"] == detection_metrics(sub_gt, sub_dt, labels)["per_class_AP"]
        assert m["n"] == len(draw)
    # nothing detected anywhere: every draw with ground truth scores 0, one without has no score
    empty = [_det([], [], [])] * 3
    gt3 = [_det([[0, 0, 10, 10]], [1]), _det([], []), _det([], [])]
    assert [m["mAP"] for m in resampled_metrics(gt3, empty, labels, [[0, 1], [1, 2]])] == [0.0, None]


class _Oracle(nn.Module):
    """Reads the answer written into the pixels: logits are the first row of the frame."""

    def __init__(self, task_name):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        task = get_task(task_name)
        self.edge_config = ModelConfig("oracle", task, (8, 8), preprocess=default_spec((8, 8)))

    def forward(self, x):
        return self.w * x[:, 0, 0, :4]


def _frames(rows):
    return [(torch.tensor(r, dtype=torch.float32).repeat(8, 2)[None], y) for r, y in rows]


def test_evaluate_model_on_a_dataset_with_known_answers():
    single = [([5, 0, 0, 0], torch.tensor(0)), ([0, 5, 0, 0], torch.tensor(1)), ([0, 0, 0, 5], torch.tensor(2))]
    m = evaluate_model(_Oracle("plane"), _frames(single), batch_size=2)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"][2] == [0, 0, 0, 1]
    multi = [([5, -5, 5, -5], torch.tensor([1.0, 0, 1, 0])), ([5, 5, 5, 5], torch.tensor([1.0, 1, 1, 0]))]
    mm = evaluate_model(_Oracle("anatomy"), _frames(multi))
    assert mm["exact_match"] == 0.5
    assert mm["label_accuracy"] == 7 / 8
    assert set(headline(mm)) == {"exact_match", "label_accuracy", "macro_f1"}
    text = format_metrics(m)
    assert "accuracy" in text
    assert "confusion" in text
    assert "no plane" in text


def test_evaluate_refuses_a_bad_split(tmp_path):
    with pytest.raises(BadInputError, match="--split"):
        evaluate(tmp_path / "x.pt", tmp_path, split="train")
