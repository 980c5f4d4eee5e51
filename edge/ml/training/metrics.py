"""Classifier metrics from a confusion matrix, in numpy (the same definitions as scikit-learn's
`precision_recall_fscore_support`, with 0 where a ratio is 0/0; the tests check them against it).
As in scikit-learn, macro-F1 averages over the classes present in the truth or the predictions: a
class a test split never shows and the model never says neither helps nor hurts.

    >>> m = single_label_metrics([0, 1, 1, 2], [0, 1, 2, 2], ("a", "b", "c"))
    >>> m["accuracy"], m["confusion_matrix"]
    (0.75, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
"""
from __future__ import annotations

import numpy as np


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num), dtype=float), where=den > 0)


def per_class_table(tp, fp, fn, labels) -> tuple[dict, float]:
    """{label: {precision, recall, f1, support}} and the macro-F1 (mean over the classes present)."""
    tp, fp, fn = (np.asarray(a, dtype=float) for a in (tp, fp, fn))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    table = {lbl: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
             for lbl, p, r, f, s in zip(labels, precision, recall, f1, tp + fn)}
    present = (tp + fn + fp) > 0
    return table, float(f1[present].mean()) if present.any() else 0.0


def confusion_matrix(y_true, y_pred, n: int) -> np.ndarray:
    """Rows: the true class, columns: the predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def single_label_metrics(y_true, y_pred, labels) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (class indices in)."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm)
    table, macro_f1 = per_class_table(tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp, labels)
    n = int(cm.sum())
    return {"n": n, "accuracy": float(tp.sum() / n) if n else 0.0, "macro_f1": macro_f1,
            "per_class": table, "labels": list(labels), "confusion_matrix": cm.tolist()}


def multi_label_metrics(y_true, y_pred, labels) -> dict:
    """Exact-match accuracy (every label right), per-label accuracy, per-class and macro-F1
    (multi-hot 0/1 arrays in, N x classes)."""
    t, p = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    n = len(t)
    table, macro_f1 = per_class_table((t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0), labels)
    return {"n": n, "exact_match": float((t == p).all(axis=1).mean()) if n else 0.0,
            "label_accuracy": float((t == p).mean()) if n else 0.0, "macro_f1": macro_f1,
            "per_class": table, "labels": list(labels)}
