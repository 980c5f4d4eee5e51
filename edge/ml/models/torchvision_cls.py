"""torchvision classifiers for FETAL_PLANES_DB (Burgos-Artizzu et al., seed 003), 1-channel, task-sized head.

The seed compares ImageNet CNNs on six maternal-fetal planes (DenseNet-169 best); its recipe: first conv
adapted to one channel by averaging the three RGB filters, the last fully-connected layer resized to the
task, 224x224 inputs scaled from [0, 255] to [-1, 1]. Built from torchvision constructors with
``weights=None`` (nothing is downloaded); module names stay torchvision's, so a torchvision state_dict
fits every layer but the stem and the head::

    >>> m = create_model("densenet169", task="fetal_planes")
    >>> m.features.conv0.in_channels, m.classifier.out_features
    (1, 6)

Variants: tv_resnet18, tv_resnet50 (``tv_`` keeps them apart from the FPUS23 ``resnet*`` family),
densenet121, densenet169, mobilenet_v2, mobilenet_v3_small. All serve single- and multi-label tasks.
"""
from __future__ import annotations

import torch
import torchvision.models as tvm
from torch import nn

from edge.ml.models.config import make_preprocess
from edge.ml.models.registry import register_model
from edge.core.tasks import MULTI_LABEL, SINGLE_LABEL

KINDS = (SINGLE_LABEL, MULTI_LABEL)

# where each architecture keeps its stem conv and its final linear layer (dotted module paths)
LAYOUT = {
    "resnet18": ("conv1", "fc"),
    "resnet50": ("conv1", "fc"),
    "densenet121": ("features.conv0", "classifier"),
    "densenet169": ("features.conv0", "classifier"),
    "mobilenet_v2": ("features.0.0", "classifier.1"),
    "mobilenet_v3_small": ("features.0.0", "classifier.3"),
}


def grey_stem(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    """A copy of an RGB stem conv taking `in_chans` channels, each filter the mean of the RGB ones
    (the seed's adaptation; with ImageNet weights a grey image then gives the RGB response)."""
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _swap(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def build(arch: str, num_classes: int, in_chans: int = 1) -> nn.Module:
    """torchvision `arch` (random weights) with a grey stem and a `num_classes` head."""
    model = getattr(tvm, arch)(weights=None)
    stem, head = LAYOUT[arch]
    if in_chans != 3:
        _swap(model, stem, grey_stem(model.get_submodule(stem), in_chans))
    old = model.get_submodule(head)
    new = nn.Linear(old.in_features, num_classes)
    nn.init.normal_(new.weight, 0, 0.01)
    nn.init.zeros_(new.bias)
    _swap(model, head, new)
    return model


def _classifier(arch, task, input_size, in_chans):
    spec = make_preprocess(input_size, mean=0.5, std=0.5, grey=in_chans == 1)   # [0, 255] -> [-1, 1]
    return build(arch, task.num_classes, in_chans), spec, ("logits",)


@register_model(family="torchvision", kinds=KINDS, default_task="fetal_planes")
def tv_resnet18(task, input_size, in_chans):
    """torchvision ResNet-18, 1-channel stem (FETAL_PLANES_DB)."""
    return _classifier("resnet18", task, input_size, in_chans)


@register_model(family="torchvision", kinds=KINDS, default_task="fetal_planes")
def tv_resnet50(task, input_size, in_chans):
    """torchvision ResNet-50, 1-channel stem (FETAL_PLANES_DB)."""
    return _classifier("resnet50", task, input_size, in_chans)


@register_model(family="torchvision", kinds=KINDS, default_task="fetal_planes")
def densenet121(task, input_size, in_chans):
    """torchvision DenseNet-121, 1-channel stem (FETAL_PLANES_DB)."""
    return _classifier("densenet121", task, input_size, in_chans)


@register_model(family="torchvision", kinds=KINDS, default_task="fetal_planes")
def densenet169(task, input_size, in_chans):
    """torchvision DenseNet-169, 1-channel stem: the seed's best plane classifier."""
    return _classifier("densenet169", task, input_size, in_chans)


@register_model(family="torchvision", kinds=KINDS, default_task="fetal_planes")
def mobilenet_v2(task, input_size, in_chans):
    """torchvision MobileNetV2, 1-channel stem (FETAL_PLANES_DB's fast option)."""
    return _classifier("mobilenet_v2", task, input_size, in_chans)


@register_model(family="torchvision", kinds=KINDS, default_task="fetal_planes")
def mobilenet_v3_small(task, input_size, in_chans):
    """torchvision MobileNetV3-Small, 1-channel stem: the smallest of the family for Jetson Nano."""
    return _classifier("mobilenet_v3_small", task, input_size, in_chans)
