"""Classifier metrics from a confusion matrix, in numpy (the same definitions as scikit-learn's
`precision_recall_fscore_support`, with 0 where a ratio is 0/0; the tests check them against it).
As in scikit-learn, macro-F1 averages over the classes present in the truth or the predictions: a
class a test split never shows and the model never says neither helps nor hurts.

    >>> m = single_label_metrics([0, 1, 1, 2], [0, 1, 2, 2], ("a", "b", "c"))
    >>> m["accuracy"], m["confusion_matrix"]
    (0.75, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])

Confidence intervals resample whole streams (patients), never frames: the frames of one sweep are
near-duplicates, so a frame bootstrap would report the precision of 1 000 frames where the evidence is
a handful of sweeps (`bootstrap_counts`, `stream_intervals`). The sweep metrics of the plane model's
real job, finding each plane crossing of a sweep, are `plane_retrieval` and `frame_metrics`.
Pure numpy, no torch: the demo and the runtime side call them.
"""
from __future__ import annotations

import numpy as np

from edge.core.errors import BadInputError

CI_LEVEL, RESAMPLES = 0.95, 1000


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


# ---- bootstrap over streams ---------------------------------------------------------------------


def resample_counts(n_groups: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n_groups) counts: how often each group is drawn when `n_groups` groups are drawn
    with replacement, once per resample (seeded)."""
    if n_groups < 1 or resamples < 1:
        raise BadInputError(f"a bootstrap needs at least one group and one resample, got {n_groups} and {resamples}")
    idx = np.random.default_rng(seed).integers(0, n_groups, size=(resamples, n_groups))
    return np.stack([np.bincount(row, minlength=n_groups) for row in idx])


def interval(values, level: float = CI_LEVEL) -> list[float] | None:
    """The percentile interval of bootstrap values (NaN: the statistic was undefined in that resample);
    None when it never was defined."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def bootstrap_counts(per_group: np.ndarray, summarise, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """`summarise` applied to `resamples` stream-bootstrap sums of `per_group` (groups x ...: counts that
    add up, e.g. per-stream confusion matrices); returns {name: array with a leading resample axis}."""
    per_group = np.asarray(per_group, dtype=float)
    w = resample_counts(len(per_group), resamples, seed)
    return summarise(np.tensordot(w, per_group, axes=(1, 0)))


def single_label_summary(cm: np.ndarray) -> dict:
    """Accuracy, macro-F1 (over the classes present, as `per_class_table`) and per-class recall (NaN
    where a class has no frame) of a stack of confusion matrices (... x C x C)."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support, said = cm.sum(-1), cm.sum(-2)
    return _f1_summary(tp, said - tp, support - tp) | {"accuracy": _div(tp.sum(-1), cm.sum((-2, -1)))}


def multi_label_summary(stats: np.ndarray) -> dict:
    """Exact match, label accuracy, macro-F1 and per-label recall from stacked rows of
    [tp (C), fp (C), fn (C), exact rows, rows] (see `multi_label_counts`)."""
    stats = np.asarray(stats, dtype=float)
    c = (stats.shape[-1] - 2) // 3
    tp, fp, fn = stats[..., :c], stats[..., c:2 * c], stats[..., 2 * c:3 * c]
    exact, n = stats[..., 3 * c], stats[..., 3 * c + 1]
    wrong = (fp + fn).sum(-1)
    return _f1_summary(tp, fp, fn) | {"exact_match": _div(exact, n), "label_accuracy": 1 - _div(wrong, n * c)}


def multi_label_counts(y_true, y_pred) -> np.ndarray:
    """One row of `multi_label_summary`'s statistics for multi-hot arrays (N x C)."""
    t, p = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    return np.concatenate([(t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0),
                           [(t == p).all(axis=1).sum() if len(t) else 0, len(t)]]).astype(float)


def _div(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b > 0)


def _f1_summary(tp, fp, fn) -> dict:
    precision, recall = np.nan_to_num(_div(tp, tp + fp)), _div(tp, tp + fn)
    r0 = np.nan_to_num(recall)
    f1 = np.nan_to_num(_div(2 * precision * r0, precision + r0))
    present = (tp + fp + fn) > 0
    macro = _div((f1 * present).sum(-1), present.sum(-1))
    return {"macro_f1": macro, "recall": recall}


def stream_intervals(summary: dict, labels, level: float = CI_LEVEL) -> dict:
    """{metric: [lo, hi]} (and {"recall": {label: [lo, hi] | None}}) from bootstrap summaries."""
    out = {}
    for key, values in summary.items():
        if key == "recall":
            out["recall"] = {lbl: interval(values[:, k], level) for k, lbl in enumerate(labels)}
        else:
            out[key] = interval(values, level)
    return out


# ---- the plane model's job on a sweep -------------------------------------------------------------


def _sequences(truth, predicted) -> tuple[list, list]:
    truth, predicted = list(truth), list(predicted)
    if len(truth) != len(predicted):
        raise BadInputError(f"truth has {len(truth)} frames and predicted {len(predicted)}; score one sweep "
                            f"with one prediction (or None) per frame")
    return truth, predicted


def crossings(truth, background="no plane") -> list[tuple[str, int, int]]:
    """(label, first frame, last frame) of every maximal run of one non-background truth label."""
    runs, start = [], None
    for i, lbl in enumerate(list(truth) + [None]):
        if start is not None and lbl != truth[start]:
            runs.append((truth[start], start, i - 1))
            start = None
        if start is None and lbl is not None and lbl != background:
            start = i
    return runs


def plane_retrieval(truth, predicted, background="no plane", tolerance=3) -> dict:
    """How well one sweep's flags find its plane crossings.

    `truth` and `predicted` hold one label per frame of the sweep; `predicted` may hold None ("nothing
    flagged"). A crossing is a maximal run of equal non-`background` truth labels; it is found when a
    frame within [start - tolerance, end + tolerance] is flagged with its label. A flagged frame (not
    None, not background) is right when some frame within +-tolerance of it truly shows the flagged
    label; precision is right flags over all flags. Recall or precision is None when there is nothing
    to count (no crossing, no flag).

    Following SonoNet (Baumgartner et al., IEEE TMI 36(11), 2017; seed 001): its retrospective
    retrieval (Sec. II-E, III-B, Table VI) keeps, per class, the frame of highest confidence over a
    whole video and counts it right when two experts accept it as that standard plane: the unit is a
    plane found in a recording, and a frame next to the sonographer's freeze frame counts as long as
    it shows the plane ("equivalent quality"); its real-time detection (Sec. III-A, Table III) is
    frame-level precision/recall averaged over classes without weighting by frame count, so the
    background class cannot dominate. Here a live flag replaces the per-video argmax (a sweep can
    cross a plane several times, so each crossing is a unit of recall), the tolerance stands in for the
    experts' acceptance of neighbouring frames, and every flag is scored (precision), since a false
    flag on a live screen costs the operator a look.

        >>> truth = ["no plane"] * 3 + ["AC"] * 3 + ["no plane"] * 6 + ["FL"] * 2
        >>> pred = [None] * 6 + ["AC", None, None, "BPD"] + [None] * 4    # AC one frame late: found
        >>> r = plane_retrieval(truth, pred, tolerance=1)
        >>> r["crossings"], r["found"], r["recall"], r["flagged_frames"], r["precision"]
        (2, 1, 0.5, 2, 0.5)
    """
    truth, predicted = _sequences(truth, predicted)
    if not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise BadInputError(f"tolerance {tolerance!r} must be a whole number of frames, 0 or more")
    n = len(truth)
    runs = crossings(truth, background)
    per: dict = {}

    def row(lbl):
        return per.setdefault(lbl, {"crossings": 0, "found": 0, "flagged": 0, "right": 0})

    for lbl, a, b in runs:
        r = row(lbl)
        r["crossings"] += 1
        r["found"] += any(predicted[i] == lbl for i in range(max(0, a - tolerance), min(n, b + tolerance + 1)))
    flags = [i for i, p in enumerate(predicted) if p is not None and p != background]
    for i in flags:
        r = row(predicted[i])
        r["flagged"] += 1
        r["right"] += any(truth[k] == predicted[i] for k in range(max(0, i - tolerance), min(n, i + tolerance + 1)))
    per_class = {lbl: {"crossings": r["crossings"], "found": r["found"], "recall": _ratio1(r["found"], r["crossings"]),
                       "flagged_frames": r["flagged"], "precision": _ratio1(r["right"], r["flagged"])}
                 for lbl, r in sorted(per.items(), key=lambda kv: str(kv[0]))}
    found, right = sum(r["found"] for r in per.values()), sum(r["right"] for r in per.values())
    return {"crossings": len(runs), "found": found, "recall": _ratio1(found, len(runs)),
            "flagged_frames": len(flags), "precision": _ratio1(right, len(flags)), "per_class": per_class,
            "tolerance": int(tolerance)}


def _ratio1(num: int, den: int) -> float | None:
    return None if den == 0 else float(num / den)


def frame_metrics(truth, predicted, labels) -> dict:
    """Per-frame accuracy, macro-F1 and per-class recall of one sweep (or several, concatenated).

    `labels` are the classes (background included, e.g. the plane task's four); a None prediction
    ("nothing flagged") is a wrong answer for its frame and no class's prediction. `recall` is None
    for a class no frame shows.

        >>> m = frame_metrics(["AC", "AC", "no plane"], ["AC", None, "no plane"], ("AC", "no plane"))
        >>> m["accuracy"], m["recall"]
        (0.6666666666666666, {'AC': 0.5, 'no plane': 1.0})
    """
    truth, predicted = _sequences(truth, predicted)
    labels = list(labels)
    index = {lbl: k for k, lbl in enumerate(labels)}
    unknown = sorted({str(x) for x in truth if x not in index} | {str(x) for x in predicted
                                                                  if x is not None and x not in index})
    if unknown:
        raise BadInputError(f"labels {unknown} are not among {labels}")
    c = len(labels)
    cm = confusion_matrix([index[t] for t in truth], [c if p is None else index[p] for p in predicted], c + 1)
    tp = np.diag(cm)[:c]
    table, macro_f1 = per_class_table(tp, cm[:, :c].sum(0) - tp, cm[:c].sum(1) - tp, labels)
    n = len(truth)
    return {"n": n, "accuracy": float(tp.sum() / n) if n else 0.0, "macro_f1": macro_f1,
            "recall": {lbl: (r["recall"] if r["support"] else None) for lbl, r in table.items()},
            "per_class": table, "unflagged": sum(p is None for p in predicted), "labels": labels}
