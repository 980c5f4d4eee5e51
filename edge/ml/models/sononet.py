"""SonoNet-16/32/64 (Baumgartner et al., seed 001, Fig. 2): real-time standard-plane classifiers.

A VGG-like feature extractor (five stages of 3x3 conv+BN+ReLU, 2,2,3,3,3 convs, widths
w x (1, 2, 4, 8, 8) for w = 16/32/64, 2x2 max-pool after the first four stages only), then two 1x1
"adaptation" convs (4w channels + BN + ReLU, then K class channels + BN) giving K class-score maps,
averaged over space into logits. BatchNorm epsilon 1e-4 as in the Lasagne original. Key names follow
the common PyTorch port, so the authors' released weights load strictly::

    >>> from edge.ml.checkpoint import load_model
    >>> model, meta = load_model("SonoNet16.pth", model="sononet16", task="standard_plane")
    >>> model.edge_config.preprocess["normalize"]
    {'mode': 'zscore', 'scale': 255.0}

Outputs and the export flag: output roles are ``("logits", "cam")``; ``cam`` is the 1 x K x h x w
class-score map before the spatial mean (localisation without a backward pass). ``forward`` returns
logits only unless ``model.export_cam = True``, then the tuple ``(logits, cam)`` - so training code and
the registry sweep see a plain tensor, and the exporter sets the flag to emit both ONNX outputs::

    >>> model.export_cam = True
    >>> logits, cam = model(x)       # (1, 14), (1, 14, 18, 14) for a 288x224 input

The preprocessing of the released captures (GE Voluson E8 975x735 screens, README) travels in the
config: crop ``roi`` [115, 734, 81, 874], grey = mean of RGB, bicubic resize to 288x224, per-frame
z-score x 255. Pass ``roi=None`` for frames without the scanner UI.
"""
from __future__ import annotations

import torch
from torch import nn

from edge.ml.models.config import make_preprocess
from edge.ml.models.registry import register_model
from edge.core.tasks import MULTI_LABEL, SINGLE_LABEL

BN_EPS = 1e-4
STAGE_CONVS = (2, 2, 3, 3, 3)
STAGE_MULT = (1, 2, 4, 8, 8)
README_ROI = (115, 734, 81, 874)          # rows 115:734, columns 81:874 of a 975x735 capture


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d without the `num_batches_tracked` buffer: the released state_dict has none, and a
    strict load must match it key for key. Momentum is fixed, so the counter is never needed."""

    def __init__(self, num_features: int):
        super().__init__(num_features, eps=BN_EPS)
        self.num_batches_tracked = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # tolerate files that carry the counter; skip _NormBase's hook, which would re-add it
        state_dict.pop(prefix + "num_batches_tracked", None)
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args, **kwargs)


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), BatchNorm(cout),
                         nn.ReLU(inplace=True))


class SonoNet(nn.Module):
    """`features.{stage}.{conv}` (conv, BN, ReLU), `pools`, `adaption` (conv, BN, ReLU, conv, BN)."""

    export_cam = False      # set True on an instance to return (logits, cam)

    def __init__(self, width: int, num_classes: int, in_chans: int = 1):
        super().__init__()
        stages, cin = [], in_chans
        for n, mult in zip(STAGE_CONVS, STAGE_MULT):
            convs = []
            for _ in range(n):
                convs.append(conv_bn_relu(cin, width * mult))
                cin = width * mult
            stages.append(nn.Sequential(*convs))
        self.features = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2, 2)
        adapt = 4 * width                         # Fig. 2: 64 / 128 / 256 for SonoNet-16 / 32 / 64
        self.adaption = nn.Sequential(
            nn.Conv2d(cin, adapt, 1, bias=False), BatchNorm(adapt), nn.ReLU(inplace=True),
            nn.Conv2d(adapt, num_classes, 1, bias=False), BatchNorm(num_classes))
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.features):
            x = stage(x)
            if i < len(self.features) - 1:
                x = self.pool(x)
        return x

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The K class-score maps F_k (N x K x h x w), before the spatial mean."""
        return self.adaption(self.forward_features(x))

    def forward(self, x: torch.Tensor):
        cam = self.class_maps(x)
        logits = cam.mean(dim=(2, 3))
        return (logits, cam) if self.export_cam else logits


KINDS = (SINGLE_LABEL, MULTI_LABEL)
DEFAULT_TASK = "standard_plane"      # what `load_model(path, model="sononet16")` assumes


def _sononet(width, task, input_size, in_chans, roi=README_ROI):
    model = SonoNet(width, task.num_classes, in_chans)
    spec = make_preprocess(input_size, grey=in_chans == 1, interpolation="cubic",
                           roi=None if roi is None else [int(v) for v in roi],
                           normalize={"mode": "zscore", "scale": 255.0})
    return model, spec, ("logits", "cam")


@register_model(family="sononet", kinds=KINDS, default_size=(288, 224), default_task=DEFAULT_TASK)
def sononet16(task, input_size, in_chans, **kw):
    """SonoNet-16: widths 16-32-64-128-128, adaptation 64; the released checkpoint's architecture."""
    return _sononet(16, task, input_size, in_chans, **kw)


@register_model(family="sononet", kinds=KINDS, default_size=(288, 224), default_task=DEFAULT_TASK)
def sononet32(task, input_size, in_chans, **kw):
    """SonoNet-32: widths 32-64-128-256-256, adaptation 128."""
    return _sononet(32, task, input_size, in_chans, **kw)


@register_model(family="sononet", kinds=KINDS, default_size=(288, 224), default_task=DEFAULT_TASK)
def sononet64(task, input_size, in_chans, **kw):
    """SonoNet-64: widths 64-128-256-512-512 (VGG16 without the last pool), adaptation 256."""
    return _sononet(64, task, input_size, in_chans, **kw)
