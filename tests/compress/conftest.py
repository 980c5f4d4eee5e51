"""Tiny models and phantom sets shared by the compress tests (CPU-cheap: resnet8 at 32x32)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def plane_model():
    from edge.ml.models import create_model

    torch.manual_seed(0)
    return create_model("resnet8", task="plane", input_size=(32, 32)).eval()


@pytest.fixture(scope="session")
def plane_sets(plane_model):
    """(train, test) in-memory phantom sets for the plane task at the model's preprocessing."""
    from edge.ml.data.dataset import PhantomDataset

    spec = plane_model.edge_config.preprocess
    return (PhantomDataset("plane", spec, seed=0, n=16, size=(48, 48), augment=True),
            PhantomDataset("plane", spec, seed=1, n=8, size=(48, 48)))


@pytest.fixture(scope="session")
def plane_ckpt(plane_model, tmp_path_factory):
    from edge.ml.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "plane.pt", plane_model)


@pytest.fixture(scope="session")
def detector():
    from edge.ml.models import create_model

    torch.manual_seed(0)
    return create_model("fasterrcnn_resnet10", task="detection", input_size=(64, 64), fpn_channels=32).eval()

