"""The host-side ML of edgekit: model zoo (`models`), datasets (`data`), training and evaluation
(`training`, `evaluate`), checkpoints, FLOP/memory reports (`report`), the pixel baseline.

Torch-backed; needs the `train` extra. Imports `edge.core` only, never a stage package.
"""
