"""The device-safe core of edgekit: errors, tasks, preprocessing, the phantom, timestamps.

Torch-free, and importing nothing above it: `runtime/` and `targets/` build on this package alone.
"""
