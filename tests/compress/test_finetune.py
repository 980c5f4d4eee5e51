"""Compression fine-tuning uses the training recipe: augmented, class-balanced when skewed, and the
epoch kept is the best on the baseline's recorded val streams."""
from __future__ import annotations

import pytest
import torch

from compress.data import finetune, split_datasets, val_dataset
from compress.sweep import _finetune_record
from edge.ml.data import load_samples, split_by_group
from edge.ml.data.synth import synth
from edge.ml.models import create_model
from edge.ml.training.evaluate import evaluate_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft") / "data"
    synth(root, frames=64, seed=1, size=(48, 64), streams=8)
    return root


def test_finetune_keeps_the_best_epoch_on_the_recorded_val_streams(folder):
    torch.manual_seed(0)
    model = create_model("resnet8", task="orientation", input_size=(32, 32))
    samples, _ = load_samples(folder, "orientation")
    train, val, test = split_by_group(samples, (0.6, 0.2, 0.2), seed=0)
    groups = lambda part: sorted({s.group for s in part})
    meta = {"provenance": {"split": {"train": {"groups": groups(train)}, "val": {"groups": groups(val)},
                                     "test": {"groups": groups(test)}}}}
    train_set, _ = split_datasets(folder, model, meta)
    assert train_set.augment is not None                               # the training augmentations
    val_set = val_dataset(folder, model, meta)
    assert len(val_set) == len(val)
    assert val_set.augment is None
    assert {s.group for s in val_set.samples} == set(groups(val))
    assert val_dataset((train_set, train_set), model, meta) is None    # a ready pair has no val
    assert val_dataset(folder, model, {}) is None                      # nor a checkpoint without one

    history = finetune(model, train_set, epochs=3, lr=1e-3, batch_size=8, progress=False, val_set=val_set)
    assert history["selected_by"] == "macro_f1"
    assert len(history["val"]) == 3
    assert history["best"] == max(v["macro_f1"] for v in history["val"])
    assert evaluate_model(model, val_set)["macro_f1"] == pytest.approx(history["best"])
    record = _finetune_record(3, 1e-3, history)
    assert record["best_epoch"] == history["best_epoch"]
    assert record["selected_by"] == "macro_f1"
    assert finetune(model, train_set, epochs=0, lr=1e-3, batch_size=8, progress=False) is None
