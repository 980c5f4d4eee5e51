"""Training, in one package: `fit` (the loop: any edgekit model on any task dataset, used by training
and by compression fine-tuning) and `train` (a data folder -> a trained, tested checkpoint), with their
pieces: losses per task kind and batching (`batches`), prediction (`predict`), metrics (`metrics`,
`coco`) and a progress bar (`progress`). `edge.ml.training.evaluate` scores a model with the same pieces.

    >>> from edge.ml.training.fit import fit          # doctest: +SKIP
    >>> from edge.ml.training.train import train      # doctest: +SKIP

Needs torch.
"""
