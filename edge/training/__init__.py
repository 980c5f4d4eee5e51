"""The parts behind `edge.train.fit` and `edge.evaluate`: losses per task kind, batching, prediction,
metrics (numpy for the classifiers, pycocotools for boxes) and a progress bar.

Public entry points live one level up (`edge.train`, `edge.evaluate`); these modules are small,
separately testable pieces. Needs torch.
"""
