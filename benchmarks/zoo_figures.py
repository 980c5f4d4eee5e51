"""The zoo's cost figures at 224x224, batch 1, beside the FPUS23 paper's (Table 1 and 4); writes JSON.

    python benchmarks/zoo_figures.py --out runs/zoo_figures.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.ml.models import create_model
from edge.ml.report import model_report

# The paper's figures (MACs in G, memory in MB), unpruned rows of Tables 1/4.
PAPER = {
    "resnet34": {"task": "plane", "macs_g": 3.67, "fp32_mb": 157.57, "int8_mb": 39.39},
    "resnet8": {"task": "plane", "macs_g": 1.42, "fp32_mb": 41.26, "int8_mb": 10.31},
    "resnet10": {"task": "plane", "macs_g": None, "fp32_mb": None, "int8_mb": None},
    "fasterrcnn_resnet34": {"task": "detection", "macs_g": 64.4, "fp32_mb": 357.2, "int8_mb": 239.0},
    "fasterrcnn_resnet10": {"task": "detection", "macs_g": 28.2, "fp32_mb": 290.8, "int8_mb": 194.6},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=Path("runs/zoo_figures.json"))
    args = ap.parse_args()
    rows = []
    for name, paper in PAPER.items():
        rep = model_report(create_model(name, task=paper["task"], input_size=(args.size, args.size)))
        rows.append({"model": name, "params": rep["params"], "macs_g": rep["macs"] / 1e9,
                     "fp32_mb": rep["weights_bytes"]["fp32"] / 2**20, "int8_mb": rep["weights_bytes"]["int8"] / 2**20,
                     "activation_mb": rep["activation_bytes"] / 2**20, "paper": paper})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"input": [1, 1, args.size, args.size], "rows": rows}, indent=2))
    for r in rows:
        print(f"{r['model']:<22} {r['params'] / 1e6:7.2f} M  {r['macs_g']:7.3f} G MACs  "
              f"{r['fp32_mb']:8.2f} MB fp32  {r['int8_mb']:7.2f} MB int8   paper: {r['paper']}")


if __name__ == "__main__":
    main()
