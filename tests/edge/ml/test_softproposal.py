"""Soft-proposal layer (Zhu et al.): the random walk, the coupling, the export flag and the box rule."""
import pytest
import torch
from torch import nn

from edge.ml.models import create_model
from edge.ml.models.softproposal import SoftProposal, proposal_box


def test_walk_is_a_distribution_detached_and_reaches_the_degree_fixed_point():
    torch.manual_seed(0)
    feats = torch.rand(2, 8, 5, 6, requires_grad=True)
    sp = SoftProposal(iterations=200)
    coupled, m = sp(feats)
    assert m.shape == (2, 1, 5, 6)
    assert not m.requires_grad
    torch.testing.assert_close(m.sum(dim=(2, 3)), torch.ones(2, 1))
    torch.testing.assert_close(coupled, feats * m)
    # a random walk on a symmetric graph settles on each node's share of the total edge weight
    u = feats.detach()[0].flatten(1).T
    w = (torch.cdist(u, u) + 1e-6) * sp.spatial_kernel(5, 6, "cpu")
    degree = w.sum(1) / w.sum()
    torch.testing.assert_close(m[0].flatten(), degree, atol=1e-5, rtol=1e-3)


def test_a_distinct_patch_draws_the_proposal_and_the_box():
    torch.manual_seed(0)
    feats = 0.2 * torch.rand(1, 4, 8, 8)
    feats[0, :, 2:4, 5:7] += 1.0                      # the one thing unlike its surroundings
    _, m = SoftProposal()(feats)
    assert divmod(int(m.flatten().argmax()), 8) in {(2, 5), (2, 6), (3, 5), (3, 6)}
    x1, y1, x2, y2 = proposal_box(m[0, 0], (64, 64))  # the patch is x 40..56, y 16..32 at 64x64
    assert x1 <= 40
    assert x2 >= 56
    assert y1 <= 16
    assert y2 >= 32
    assert (x2 - x1) * (y2 - y1) < 64 * 64 / 2


def test_box_rules_and_largest_component():
    heat = torch.zeros(8, 8)
    heat[0:2, 0:2] = 1.0                              # small blob
    heat[4:8, 3:8] = 1.0                              # large blob wins
    assert proposal_box(heat, (8, 8), rule="range") == (3.0, 4.0, 8.0, 8.0)
    assert proposal_box(torch.full((3, 3), 2.0), (12, 12)) == (0.0, 0.0, 12.0, 12.0)   # flat map
    assert proposal_box(-heat, (8, 8))[2] == 8.0     # negative maps are shifted, still a box


@pytest.mark.parametrize("name,kw,grid", [("resnet18_sp", {}, 2), ("resnet18_sp", {"output_stride": 16}, 4)])
def test_export_flag_and_class_maps_sum_to_the_logits(name, kw, grid):
    m = create_model(name, task="anatomy", input_size=(64, 64), **kw).eval()
    assert m.edge_config.outputs == ("logits", "cam")
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        logits = m(x)
        m.export_cam = True
        out, cam = m(x)
    assert cam.shape == (2, 4, grid, grid)
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(cam.sum(dim=(2, 3)) + m.fc.bias, logits, atol=1e-5, rtol=1e-4)


def test_trains_with_the_multi_label_soft_margin_loss():
    torch.manual_seed(0)
    m = create_model("resnet18_sp", task="anatomy", input_size=(32, 32))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.8, nesterov=True)
    loss = nn.MultiLabelSoftMarginLoss()(m(torch.rand(4, 1, 32, 32)), torch.tensor([[1.0, 0, 0, 1]] * 4))
    loss.backward()
    assert m.conv1.weight.grad is not None
    assert torch.isfinite(m.conv1.weight.grad).all()
    opt.step()
