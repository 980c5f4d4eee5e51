"""The floor a CNN must beat: logistic regression on downsampled raw pixels.

If a linear model on a 32x32 thumbnail already solved the phantom, a benchmark on it would say nothing
about the networks; the simulator is built (position, scale, gain and speckle jitter; landmarks that
are small; orientation as a mirror relation) so that this baseline stays well below a small CNN::

    >>> from edge.core.phantom import sample
    >>> r = logistic_regression_baseline(sample(0, 400, 64, 64), sample(1, 200, 64, 64), "plane")
    >>> sorted(r)
    ['accuracy', 'macro_f1', 'n_test', 'n_train', 'size', 'task']

Needs scikit-learn (a host-side tool, not imported by the runtime).
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.core.errors import BadInputError, UnsupportedError

_TASKS = ("plane", "orientation", "anatomy")


def pixels(frames, size: int = 32) -> np.ndarray:
    """Frames -> N x size*size float32 in 0..1 (area-averaged thumbnails)."""
    return np.stack([cv2.resize(f.image, (size, size), interpolation=cv2.INTER_AREA).ravel()
                     for f in frames]).astype(np.float32) / 255.0


def _targets(frames, task: str):
    if task == "plane":
        return np.array([f.plane for f in frames])
    if task == "orientation":
        return np.array([f.orientation for f in frames])
    from edge.core.phantom.scene import PARTS
    return np.array([[p in f.anatomy for p in PARTS] for f in frames], dtype=np.int64)


def logistic_regression_baseline(train_frames, test_frames, task: str, size: int = 32) -> dict:
    """Fit on `train_frames`, score on `test_frames`; accuracy/macro-F1 (plane, orientation) or
    exact-match and per-label accuracy (anatomy)."""
    if task not in _TASKS:
        raise BadInputError(f"baseline task {task!r} is not one of {', '.join(_TASKS)}")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise UnsupportedError("the pixel baseline needs scikit-learn; pip install scikit-learn") from None
    scaler = StandardScaler().fit(pixels(train_frames, size))
    x_train, x_test = scaler.transform(pixels(train_frames, size)), scaler.transform(pixels(test_frames, size))
    y_train, y_test = _targets(train_frames, task), _targets(test_frames, task)
    out = {"task": task, "size": size, "n_train": len(train_frames), "n_test": len(test_frames)}

    def fit_predict(y):
        if len(np.unique(y)) < 2:              # a label never (or always) seen: predict the constant
            return np.full(len(x_test), y[0])
        return LogisticRegression(C=0.05, max_iter=2000).fit(x_train, y).predict(x_test)

    if task == "anatomy":
        pred = np.stack([fit_predict(y_train[:, j]) for j in range(y_train.shape[1])], axis=1)
        out["exact_match"] = float((pred == y_test).all(axis=1).mean())
        out["label_accuracy"] = float((pred == y_test).mean())
        return out
    pred = fit_predict(y_train)
    out["accuracy"] = float((pred == y_test).mean())
    out["macro_f1"] = float(f1_score(y_test, pred, average="macro"))
    return out
