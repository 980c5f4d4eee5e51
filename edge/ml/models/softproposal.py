"""Soft-proposal networks (Zhu et al., ICCV 2017; used for fetal anatomy by Toussaint et al., seed 000).

A soft-proposal (SP) layer after the last convolution turns the feature map U (C x h x w) into an
objectness map M without box supervision or a backward pass:

1. a graph over the h*w positions, edge weight ``W[a, b] = ||U_a - U_b|| * exp(-|a - b|^2 / (2 eps^2))``
   (feature dissimilarity times spatial closeness; ``eps = 0.15 * sqrt(h*w)``: our reading of the paper's
   0.15 N for an N x N map; the authors' code uses 0.15 * h*w, which makes the spatial term nearly flat);
2. ``T`` = W with each column normalised to sum 1 (the random walk's transition matrix);
3. ``M <- T M`` from the uniform map, renormalised to sum 1, for a fixed number of steps (20, the
   authors' cap; fixed so the ONNX graph has no data-dependent loop); M is detached, as in the
   authors' backward (gradients flow through the coupling, not the walk). The walk's fixed point is
   each position's share of the total edge weight: positions unlike their surroundings win;
4. coupling ``V = U * M`` then a spatial sum (the authors' SpatialSumOverMap) and a linear classifier.

Outputs: roles ``("logits", "cam")``; ``cam`` holds per-class maps ``fc.weight @ V`` (1 x K x h x w;
``logits == cam.sum((2, 3)) + fc.bias``). Like SonoNet, ``forward`` returns logits unless
``model.export_cam = True``, then ``(logits, cam)``::

    >>> m = create_model("resnet18_sp", task="anatomy", input_size=(96, 96), output_stride=16)
    >>> m.export_cam = True
    >>> logits, cam = m(torch.rand(1, 1, 96, 96))          # (1, 4), (1, 4, 6, 6)
    >>> proposal_box(cam[0, logits[0].argmax()], (96, 96))  # (x1, y1, x2, y2) in input pixels

Train with the multi-label soft-margin loss (seed eq. 1) on a multi_label task such as ``anatomy``.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from edge.ml.models.config import make_preprocess
from edge.ml.models.registry import register_model
from edge.ml.models.resnet import ResNet
from edge.core.tasks import MULTI_LABEL, SINGLE_LABEL


class SoftProposal(nn.Module):
    """Objectness by a random walk on the feature-position graph; returns (U * M, M of N x 1 x h x w)."""

    def __init__(self, iterations: int = 20, factor: float = 0.15):
        super().__init__()
        self.iterations, self.factor = int(iterations), float(factor)

    def spatial_kernel(self, h: int, w: int, device) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], 1).float()
        d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
        eps = self.factor * (h * w) ** 0.5
        return torch.exp(-d2 / (2 * eps * eps))

    def proposal(self, feats: torch.Tensor) -> torch.Tensor:
        n, c, h, w = feats.shape
        u = feats.detach().flatten(2).transpose(1, 2)                        # N x hw x C
        # the walk ignores a common shift and scale of the distances: centring limits float cancellation,
        # 1/sqrt(C) keeps squared norms inside FP16 range for a half-precision engine
        u = (u - u.mean(dim=1, keepdim=True)) * c ** -0.5
        sq = (u * u).sum(-1)
        dist = (sq[:, :, None] + sq[:, None, :] - 2 * u @ u.transpose(1, 2)).clamp_min(0).sqrt()
        off_diag = 1.0 - torch.eye(h * w, dtype=feats.dtype, device=feats.device)
        weights = (dist * off_diag + 1e-6) * self.spatial_kernel(h, w, feats.device)   # +1e-6: flat maps
        trans = weights / weights.sum(dim=1, keepdim=True)                   # columns sum to 1
        m = torch.full((n, h * w, 1), 1.0 / (h * w), dtype=feats.dtype, device=feats.device)
        for _ in range(self.iterations):
            m = trans @ m
            m = m / m.sum(dim=1, keepdim=True)
        return m.view(n, 1, h, w)

    def forward(self, feats: torch.Tensor):
        m = self.proposal(feats)
        return feats * m, m


def _head(model: nn.Module, coupled: torch.Tensor):
    logits = model.fc(coupled.sum(dim=(2, 3)))
    if not model.export_cam:
        return logits
    return logits, F.conv2d(coupled, model.fc.weight[:, :, None, None])     # a 1x1 conv exports anywhere


class ResNetSP(ResNet):
    """ResNet (torchvision layer names) + SP layer + spatial sum + linear; `output_stride` 32 or 16."""

    export_cam = False

    def __init__(self, blocks, widths, num_classes, in_chans=1, output_stride=32, iterations=20):
        super().__init__(blocks, widths, num_classes, in_chans)
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        if output_stride == 16:             # finer proposal maps: last stage keeps the resolution
            last = self.stages()[-1][0]
            last.conv1.stride = (1, 1)
            last.downsample[0].stride = (1, 1)
        self.sp = SoftProposal(iterations)

    def forward(self, x: torch.Tensor):
        coupled, _ = self.sp(self.forward_features(x))
        return _head(self, coupled)

    def proposal_map(self, x: torch.Tensor) -> torch.Tensor:
        """The class-agnostic objectness map M (N x 1 x h x w, sums to 1 per image)."""
        return self.sp.proposal(self.forward_features(x))


class VGGSP(nn.Module):
    """VGG16-BN features (1-channel first conv, last max-pool removed as in SPN) + SP + sum + linear."""

    export_cam = False

    def __init__(self, num_classes, in_chans=1, iterations=20):
        super().__init__()
        layers = list(make_layers(cfgs["D"], batch_norm=True).children())[:-1]   # VGG16-BN features
        layers[0] = nn.Conv2d(in_chans, 64, 3, padding=1)
        self.features = nn.Sequential(*layers)
        self.sp = SoftProposal(iterations)
        self.fc = nn.Linear(512, num_classes)
        for m in self.features:                  # torchvision VGG's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor):
        coupled, _ = self.sp(self.features(x))
        return _head(self, coupled)

    def proposal_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.sp.proposal(self.features(x))


def proposal_box(heat: torch.Tensor, frame_size, rule: str = "median") -> tuple[float, float, float, float]:
    """Box (x1, y1, x2, y2) in `frame_size` (H, W) pixels around the largest blob of a 2D map.

    The map is upsampled bilinearly to the frame and thresholded "30% above its median" (seed 000):
    ``rule="median"`` keeps ``x >= 1.3 * median`` (the paper's words; a map with negative values, e.g.
    a class map, is first shifted so its minimum is 0); ``rule="range"`` keeps
    ``x >= median + 0.3 * (max - median)``. The box encloses the largest 8-connected blob.

        >>> proposal_box(torch.tensor([[0., 0.], [0., 1.]]), (8, 8))
        (2.0, 2.0, 8.0, 8.0)
    """
    heat = heat.detach().float().cpu().reshape(1, 1, *heat.shape[-2:])
    h, w = (int(v) for v in frame_size)
    x = F.interpolate(heat, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    x = x - min(float(x.min()), 0.0)
    med, top = float(np.median(x)), float(x.max())
    thr = 1.3 * med if rule == "median" else med + 0.3 * (top - med)
    mask = (x >= min(thr, top)).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, y0, bw, bh = (int(v) for v in stats[best, :4])
    return float(x0), float(y0), float(x0 + bw), float(y0 + bh)


KINDS = (SINGLE_LABEL, MULTI_LABEL)


@register_model(family="softproposal", kinds=KINDS, default_task="anatomy")
def resnet18_sp(task, input_size, in_chans, output_stride=32, iterations=20):
    """ResNet18-SP: the best network of seed 000 (ResNet18 + soft-proposal layer)."""
    model = ResNetSP((2, 2, 2, 2), (64, 128, 256, 512), task.num_classes, in_chans, output_stride, iterations)
    return model, make_preprocess(input_size, grey=in_chans == 1), ("logits", "cam")


@register_model(family="softproposal", kinds=KINDS, default_task="anatomy")
def vgg16_sp(task, input_size, in_chans, iterations=20):
    """VGG16-SP: VGG16-BN features without the last pool + soft-proposal layer (seed 000)."""
    return VGGSP(task.num_classes, in_chans, iterations), make_preprocess(input_size, grey=in_chans == 1), \
        ("logits", "cam")
