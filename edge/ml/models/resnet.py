"""ResNet classifiers for 1-channel ultrasound: the FPUS23 baseline and the NAS-found small nets.

One generic net with torchvision's BasicBlock and torchvision's layer names (conv1, bn1, layer1..,
fc), so torchvision state_dicts and torchvision's detection helpers fit it unchanged:

- resnet34: blocks 3,4,6,3 (the FPUS23 baseline, first conv adapted to 1 channel, head sized to the task)
- resnet18: blocks 2,2,2,2
- resnet10: stem + four stages of one basic block (64/128/256/512)
- resnet8:  stem + three stages of one basic block (64/128/256), final linear 256 -> classes
  (the NAS-found classifier of the FPUS23 paper: 1 stem conv + 3 x 2 block convs + 1 linear = 8 layers)
- resnet_nas: any stem / blocks / widths spec (`edge.ml.models.resnet_nas`), what `edgekit nas` finds
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

from edge.ml.models.config import make_preprocess
from edge.ml.models.registry import register_model
from edge.ml.models.resnet_nas import RESNET8, STEMS, check_spec
from edge.core.tasks import MULTI_LABEL, SINGLE_LABEL


class ResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), `len(blocks)` stages of BasicBlocks, pool, linear.

    `stem` picks another stem of `resnet_nas.STEMS` (a 3x3/2 conv, with or without the max-pool).
    """

    def __init__(self, blocks, widths, num_classes: int, in_chans: int = 1, stem: str = "imagenet"):
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(f"blocks {blocks} and widths {widths} differ in length")
        self.inplanes = widths[0]
        kernel, pool = STEMS[stem]
        self.conv1 = nn.Conv2d(in_chans, widths[0], kernel_size=kernel, stride=2, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if pool else nn.Identity()
        self.num_stages = len(blocks)
        for i, (n, w) in enumerate(zip(blocks, widths)):
            setattr(self, f"layer{i + 1}", self._make_layer(w, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes)
        self.out_channels = widths[-1]
        self._init_weights()

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> list[nn.Module]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


ARCHS = {
    "resnet8": ((1, 1, 1), (64, 128, 256)),
    "resnet10": ((1, 1, 1, 1), (64, 128, 256, 512)),
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "resnet34": ((3, 4, 6, 3), (64, 128, 256, 512)),
}
CLASSIFIER_KINDS = (SINGLE_LABEL, MULTI_LABEL)


def _classifier(arch: str, task, input_size, in_chans, mean=0.5, std=0.25):
    blocks, widths = ARCHS[arch]
    model = ResNet(blocks, widths, task.num_classes, in_chans)
    return model, make_preprocess(input_size, mean, std, grey=in_chans == 1), ("logits",)


@register_model(family="resnet", kinds=CLASSIFIER_KINDS)
def resnet8(task, input_size, in_chans, **kw):
    """ResNet8: the NAS-found FPUS23 classifier, three one-block stages 64/128/256."""
    return _classifier("resnet8", task, input_size, in_chans, **kw)


@register_model(family="resnet", kinds=CLASSIFIER_KINDS)
def resnet10(task, input_size, in_chans, **kw):
    """ResNet10: stem + four one-block stages 64/128/256/512."""
    return _classifier("resnet10", task, input_size, in_chans, **kw)


@register_model(family="resnet", kinds=CLASSIFIER_KINDS)
def resnet18(task, input_size, in_chans, **kw):
    """ResNet18 with a 1-channel stem."""
    return _classifier("resnet18", task, input_size, in_chans, **kw)


@register_model(family="resnet", kinds=CLASSIFIER_KINDS)
def resnet34(task, input_size, in_chans, **kw):
    """ResNet34: the FPUS23 baseline, 1-channel stem and a task-sized head."""
    return _classifier("resnet34", task, input_size, in_chans, **kw)


@register_model(family="resnet_nas", kinds=CLASSIFIER_KINDS)
def resnet_nas(task, input_size, in_chans, blocks=RESNET8[0], widths=RESNET8[1], stem=RESNET8[2], mean=0.5, std=0.25):
    """ResNet-NAS: a searched net (`edgekit nas`), stem/blocks/widths per stage as model kwargs."""
    blocks, widths, stem = check_spec(blocks, widths, stem)
    model = ResNet(blocks, widths, task.num_classes, in_chans, stem=stem)
    return model, make_preprocess(input_size, mean, std, grey=in_chans == 1), ("logits",)
