"""The `resnet_nas` family's architecture spec: what `edgekit nas` searches and a checkpoint records.

A searched net is a plain spec, not code: the stem, the number of basic blocks per stage and each
stage's width, plus the input size every zoo model takes. It travels in the checkpoint's
`model.kwargs` (`create_model("resnet_nas", task, input_size=(64, 64), **spec)`), so a found net is
rebuilt, compressed, exported and run like any zoo model::

    >>> check_spec([1, 2, 1], [32, 64, 128], "conv3")
    ((1, 2, 1), (32, 64, 128), 'conv3')
    >>> check_spec([1, 1, 1], [64, 128, 256], "imagenet") == check_spec(*RESNET8)
    True

Stems (all stride 2 in the conv; `pool` adds a 3x3/2 max-pool, so the stem divides the frame by 4):

- `imagenet`: 7x7/2 conv + max-pool, ResNet's own (ResNet8/10/18/34 use it);
- `conv3pool`: 3x3/2 conv + max-pool (a twentieth of the stem MACs at 1 channel, same resolution after);
- `conv3`: 3x3/2 conv, no pool (twice the resolution into the first stage: more accurate, slower).

The bounds are what a checkpoint may ask for (a file is data from outside): 1..6 stages, 1..8 blocks
each, widths multiples of 8 from 8 to 2048. Torch-free: the search space and the checkpoint
validation read it without building anything.
"""
from __future__ import annotations

from edge.core.errors import BadInputError

# stem name -> (conv kernel, max-pool after it)
STEMS = {"imagenet": (7, True), "conv3pool": (3, True), "conv3": (3, False)}
MAX_STAGES, MAX_BLOCKS, MAX_WIDTH, WIDTH_STEP = 6, 8, 2048, 8

# The hand-written FPUS23 nets as specs (blocks, widths, stem): the search's reference points.
RESNET8 = ((1, 1, 1), (64, 128, 256), "imagenet")
RESNET10 = ((1, 1, 1, 1), (64, 128, 256, 512), "imagenet")
RESNET34 = ((3, 4, 6, 3), (64, 128, 256, 512), "imagenet")


def _ints(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def check_spec(blocks, widths, stem) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """(blocks, widths, stem) as tuples and a name, or a one-line BadInputError saying what is wrong."""
    if not _ints(blocks) or not 1 <= len(blocks) <= MAX_STAGES or not all(1 <= b <= MAX_BLOCKS for b in blocks):
        raise BadInputError(f"resnet_nas blocks {str(blocks)[:60]} is not a list of 1..{MAX_STAGES} stages of "
                            f"1..{MAX_BLOCKS} blocks each, e.g. [1, 1, 1]")
    if not _ints(widths) or len(widths) != len(blocks) or not all(
            WIDTH_STEP <= w <= MAX_WIDTH and w % WIDTH_STEP == 0 for w in widths):
        raise BadInputError(f"resnet_nas widths {str(widths)[:60]} is not one width per stage ({len(blocks)}), "
                            f"each a multiple of {WIDTH_STEP} from {WIDTH_STEP} to {MAX_WIDTH}, e.g. [64, 128, 256]")
    if not isinstance(stem, str) or stem not in STEMS:
        raise BadInputError(f"resnet_nas stem {str(stem)[:40]!r} is not one of {', '.join(STEMS)}")
    return tuple(blocks), tuple(widths), stem
