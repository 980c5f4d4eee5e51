"""edgekit's own layer under the stages, in three folders named for their jobs:

- `edge.core`: the device-safe core: errors, tasks and label sets, preprocessing, the phantom
  simulator, timestamps. Torch-free; the on-device `runtime` imports only this part of `edge`.
- `edge.ml`: the host-side ML: the model zoo, datasets, training and evaluation, checkpoints,
  FLOP/memory reports. Torch-backed (imported lazily where a module is listed as torch-free).
- `edge.app`: the application: the `edgekit` CLI and the `edgekit demo` chain, which compose every
  stage (`compress`, `export`, `runtime`, `targets`) and are imported by none.

Importing `edge` is cheap and torch-free. docs/ARCHITECTURE.md has the layers; pyproject.toml's
import-linter contracts enforce them.
"""
__version__ = "0.1.0"
