"""edgekit's model side: model zoo, tasks, datasets, training, checkpoints and reports.

Importing `edge` is cheap and torch-free; the torch-backed modules (`edge.models`, `edge.train`, ...)
load only when used. The torch-free modules (`edge.errors`, `edge.tasks`, `edge.phantom`) are the only
ones the on-device runtime may import.
"""
__version__ = "0.1.0"
