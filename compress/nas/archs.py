"""`edgekit nas-archs`: candidate architectures as ONNX files, for a device to time (`edgekit bench-archs`).

    >>> export_archs("archs/", count=40, space=SearchSpace(resolutions=((64, 64),)))   # doctest: +SKIP

Writes `count` random architectures of the search space (seeded, no duplicates) plus the reference
nets (ResNet8/10/34 at the reference input size), each by export's own ONNX writer at `precision`
(fp32, or fp16 for a GPU: TensorRT 10+ builds the precision the graph carries), and the index
`archs.json` in `runtime.archbench`'s format. The folder is built beside OUT and renamed into place.
The device's table then calibrates the latency model (`compress.nas.costs.LatencyModel`) and gives the
measured figure of every net it holds.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from compress.nas.space import REFERENCES, SearchSpace
from edge.core.errors import BadInputError

PRECISIONS = ("fp32", "fp16")


def export_archs(out, count: int = 40, space: SearchSpace | None = None, task: str = "plane", seed: int = 0,
                 precision: str = "fp32", references=tuple(REFERENCES), input_size=(64, 64), log=lambda msg: None) -> dict:
    """Write the ONNX files and `archs.json` to `out` (which must not exist or be empty); returns the index."""
    from edge.core.tasks import get_task
    from edge.ml.models import create_model
    from export.onnx import export_onnx
    from runtime.archbench import INDEX, INDEX_FORMAT, VERSION

    if precision not in PRECISIONS:
        raise BadInputError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if count < 0 or count + len(references) < 1:
        raise BadInputError(f"--count {count} must be 0 or more, with at least one net to write")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"{out} exists and is not empty; choose a new folder")
    space = space or SearchSpace()
    rng = np.random.default_rng(seed)
    archs, seen = [], set()
    for name in references:
        a = REFERENCES[name].at(input_size)
        archs.append((a, name))
        seen.add(a.key())
    tries = 0
    while len(archs) < count + len(references) and tries < 100 * (count + 1):
        tries += 1
        a = space.sample(rng)
        if a.key() not in seen:
            archs.append((a, None))
            seen.add(a.key())
    task_obj = get_task(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        rows = []
        for i, (arch, ref) in enumerate(archs):
            log(f"[{i + 1}/{len(archs)}] {ref or arch.key()}")
            model = create_model("resnet_nas", task_obj, input_size=arch.input_size, **arch.model_kwargs()).eval()
            name = f"{i:03d}.onnx"
            export_onnx(model, tmp / name, precision)
            rows.append({"file": name, "arch": arch.to_dict(), "reference": ref})
        index = {"format": INDEX_FORMAT, "version": VERSION, "precision": precision, "task": task,
                 "num_classes": task_obj.num_classes, "space": space.to_dict(), "seed": seed, "archs": rows}
        (tmp / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index
