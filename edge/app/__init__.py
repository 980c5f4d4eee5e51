"""The application layer: the `edgekit` CLI (`cli`, one module per verb) and the demo chain (`demo`).

The composition roots: they import every stage (compress, export, runtime, targets) inside their
functions, and no package imports them.
"""
