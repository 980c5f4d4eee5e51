"""The model zoo: `create_model(name, task=..., **overrides)` and `list_models(pattern)`.

One module per family; importing this package registers them all. Needs torch.
"""
from edge.ml.models.config import ModelConfig
from edge.ml.models.registry import create_model, get_entry, list_models, register_model

# Families register on import; keep this list explicit so the zoo is visible in one place.
from edge.ml.models import resnet, detection, sononet, softproposal, torchvision_cls  # noqa: F401  (registration side effects)

__all__ = ["ModelConfig", "create_model", "get_entry", "list_models", "register_model"]
