"""Pruning methods: the weight fraction each removes, the patterns they leave, and pruned checkpoints."""
from __future__ import annotations

import pytest
import torch

from compress.layers import count_nonzero, count_weights, prunable_layers
from edge.core.errors import BadInputError


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_structured_removes_the_requested_weight_fraction(plane_model, ratio):
    from compress.structured import prune_structured

    pruned, info = prune_structured(plane_model, ratio)
    measured = 1 - count_weights(pruned) / count_weights(plane_model)
    assert abs(measured - ratio) <= 0.05
    assert info["achieved"] == pytest.approx(measured, abs=1e-4)
    # channels, not weights: the channel ratio is well under the weight ratio (params ~ its square)
    assert info["channel_ratio"] < ratio
    assert pruned.fc.out_features == 4
    assert pruned(torch.rand(2, 1, 32, 32)).shape == (2, 4)
    assert plane_model.layer3[0].conv2.out_channels == 256          # the input model is untouched


def test_structured_keeps_residual_groups_consistent(plane_model):
    from compress.structured import prune_structured

    pruned, _ = prune_structured(plane_model, 0.5)
    block = pruned.layer2[0]
    # the residual add: the block's output channels equal its shortcut's
    assert block.conv2.out_channels == block.downsample[0].out_channels == pruned.layer3[0].conv1.in_channels


def test_unstructured_is_exact_and_masks_survive_finetuning(plane_model, plane_sets):
    from compress.unstructured import make_permanent, prune_unstructured
    from edge.ml.training.fit import fit

    pruned, info = prune_unstructured(plane_model, 0.5)
    total = count_weights(pruned)
    assert info["achieved"] == pytest.approx(0.5, abs=1 / total)
    fit(pruned, plane_sets[0], epochs=1, batch_size=8, progress=False)
    make_permanent(pruned)
    assert not any(k.endswith(("_orig", "_mask")) for k in pruned.state_dict())
    assert 1 - count_nonzero(pruned) / total == pytest.approx(0.5, abs=1 / total)


def test_two_four_pattern_holds_in_every_group_after_finetuning(plane_model, plane_sets):
    from compress.semistructured import eligible, follows_2_4, prune_2_4
    from compress.unstructured import make_permanent
    from edge.ml.training.fit import fit

    pruned, info = prune_2_4(plane_model)
    assert info["skipped"] == ["conv1"]
    assert "TensorRT" in info["note"]
    fit(pruned, plane_sets[0], epochs=1, batch_size=8, progress=False)
    make_permanent(pruned)
    layers = prunable_layers(pruned)
    for name, layer in layers.items():
        if name == "conv1":
            continue
        w = layer.weight.detach()
        groups = (w.permute(0, 2, 3, 1) if w.dim() == 4 else w).reshape(-1, 4)
        assert eligible(layer), f"{name}: not eligible for 2:4"
        assert follows_2_4(w), f"{name}: weights do not follow 2:4"
        assert int((groups != 0).sum(1).max()) <= 2, f"{name}: a group of 4 has more than 2 non-zeros"
    assert not follows_2_4(torch.ones(1, 4))


def test_keep_zeros_holds_through_qat(plane_model, plane_sets):
    from compress.data import calibration_batches
    from compress.quant import quantize_int8
    from compress.unstructured import keep_zeros, make_permanent, prune_unstructured
    from edge.ml.training.fit import fit

    pruned, _ = prune_unstructured(plane_model, 0.7)
    make_permanent(pruned)
    zeros = count_weights(pruned) - count_nonzero(pruned)
    quantize_int8(pruned, calibration_batches(pruned, plane_sets[0], n=8))
    with keep_zeros(pruned):
        fit(pruned, plane_sets[0], epochs=1, batch_size=8, lr=1e-2, progress=False)
    assert count_weights(pruned) - count_nonzero(pruned) == zeros


def test_pruned_checkpoint_round_trips_with_identical_outputs(plane_model, tmp_path):
    from compress.structured import prune_structured
    from edge.ml.checkpoint import load_model, read_file, save_checkpoint

    pruned, info = prune_structured(plane_model, 0.5)
    path = save_checkpoint(tmp_path / "p.pt", pruned, compression=[info])
    raw = read_file(path)
    assert raw["model"]["shapes"]["layer3.0.conv2.weight"] != [256, 256, 3, 3]
    back, meta = load_model(path)
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(back(x), pruned.eval()(x))
    assert meta["compression"][0]["method"] == "structured"


def test_another_family_prunes_too():
    from compress.structured import prune_structured
    from edge.ml.models import create_model

    torch.manual_seed(0)
    m = create_model("resnet10", task="orientation", input_size=(32, 32)).eval()
    pruned, info = prune_structured(m, 0.5)
    assert 0.45 <= info["achieved"] <= 0.55
    assert pruned(torch.rand(1, 1, 32, 32)).shape == (1, 4)


@pytest.mark.parametrize("ratio", [1.2, 0.0, -0.1, "half"])
def test_bad_ratio_is_refused(plane_model, ratio):
    from compress.structured import prune_structured
    from compress.unstructured import prune_unstructured

    for fn in (prune_structured, prune_unstructured):
        with pytest.raises(BadInputError, match="between 0 and 1"):
            fn(plane_model, ratio)
