"""The sweep report: `sweep.json` is the truth; `sweep.md` (a table) and `sweep.png` (a plot) render it.

One row per variant: how much was pruned (asked and achieved), params, MACs, weight memory at FP32
and INT8 (`edge.ml.report` on the float structure; for INT8 variants also counted from the quantizers,
scales included), sparse-format sizes where zeros could be skipped, measured ONNX Runtime CPU latency,
the task's two metrics (accuracy and macro F1, or mAP and mAR) and their change against the baseline
in points. The plot puts the primary metric against MACs and against latency::

    >>> write_report(build_report(variants, latency, ckpt="plane.pt", method="structured"), "out/")  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from edge.core.clock import utc_now

MB = 1024 ** 2


def _stats(v: dict) -> dict:
    from compress.layers import count_nonzero, count_weights, scope_name
    from edge.ml.report import model_report

    r = model_report(v["float"])
    scope = scope_name(v["float"])
    scope_macs = r["macs"] if scope == "model" else \
        sum(layer["macs"] for layer in r["layers"] if layer["name"].startswith(scope + "."))
    row = {"params": r["params"], "macs": r["macs"], "scope_macs": scope_macs,
           "weights_bytes": {k: r["weights_bytes"][k] for k in ("fp32", "int8")},
           "prunable_weights": count_weights(v["float"]), "nonzero_weights": count_nonzero(v["float"])}
    if v["precision"] == "int8":
        from edge.ml.quantization import int8_weight_bytes

        row["int8_bytes_with_scales"] = int8_weight_bytes(v["model"])
    if v["method"] == "unstructured":
        from compress.unstructured import sparse_bytes

        row["sparse_bytes"] = sparse_bytes(v["float"])
    elif v["method"] == "2:4":
        from compress.semistructured import compressed_bytes

        row["sparse_bytes"] = compressed_bytes(v["float"])
    return row


def _points(a, b):
    return None if a is None or b is None else round(100.0 * (a - b), 3)


def build_report(variants: list[dict], latency: dict, ckpt: str, method: str, settings: dict | None = None) -> dict:
    """The report dict from the sweep's variants (models + scores) and the latency run."""
    import onnxruntime
    import torch

    rows = []
    for v in variants:
        s = v["score"]
        row = {"name": v["name"], "precision": v["precision"], "method": v["method"], "ratio": v["ratio"],
               "achieved": v["achieved"], "checkpoint": v["checkpoint"], **_stats(v),
               "latency_ms": latency[v["name"]], "metric": s["primary"], "value": s["value"],
               "metric2": s["secondary"], "value2": s["value2"], "metrics": s["metrics"],
               "ci": s.get("ci"), "streams": s.get("streams"), "warnings": s.get("warnings", [])}
        if v.get("prune"):
            row["prune"] = v["prune"]
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["delta_points"] = _points(row["value"], base["value"])
        row["delta2_points"] = _points(row["value2"], base["value2"])
        row["macs_ratio"] = round(row["macs"] / base["macs"], 4) if base["macs"] else None
        row["speedup"] = round(base["latency_ms"]["median_ms"] / row["latency_ms"]["median_ms"], 3)
    return {
        "format": "edgekit.compress.sweep", "version": 1,
        "created": utc_now(),
        "checkpoint": ckpt, "method": method, "settings": settings or {},
        "latency": {"runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider", "batch": 1,
                    "statistic": "median of interleaved rounds", "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "notes": _notes(method),
        "warnings": list(dict.fromkeys(w for r in rows for w in r["warnings"])),   # each once, in order
        "variants": rows,
    }


def _notes(method: str) -> list[str]:
    notes = ["ratio = fraction of prunable weights (conv/linear in the pruning scope) removed; achieved is measured",
             "INT8 MB = weights at 1 byte (edge.ml.report); int8_bytes_with_scales adds FP32 scales, biases and BN"]
    notes.append("scope_macs = MACs inside the pruning scope: the whole model, a detector's FPN, RPN conv and "
                 "ROI box head included (its per-anchor and box-predictor outputs keep their size)")
    if method == "unstructured":
        notes.append("a dense engine stores the zeros: dense MB and latency do not drop; sparse_bytes gives CSR "
                     "(values + int32 column indices + int32 row pointers) and bitmask (values + 1 bit/element) sizes")
    if method == "2:4":
        from compress.semistructured import SPEEDUP_NOTE

        notes.append(SPEEDUP_NOTE + "; sparse_bytes gives the compressed 2:4 form (half the values + 2-bit indices)")
    return notes


def _fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def to_markdown(report: dict) -> str:
    rows = report["variants"]
    m1, m2 = rows[0]["metric"], rows[0]["metric2"]
    head = (f"| variant | precision | pruned | params (M) | MACs (M) | FP32 MB | INT8 MB | sparse MB | "
            f"latency ms | speed-up | {m1} | Δ pts | {m2} | Δ pts |")
    lines = [f"# Compression sweep: {Path(report['checkpoint']).name} ({report['method']})", "",
             f"Latency: {report['latency']['runtime']}, batch 1, {report['latency']['statistic']}.", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        sparse = r.get("sparse_bytes", {})
        sp = sparse.get("csr", sparse.get("2:4", {})).get("fp32") if sparse else None
        lines.append(
            f"| {r['name']} | {r['precision']} | {_fmt(r['achieved'] * 100, '.1f')}% | {r['params'] / 1e6:.3f} | "
            f"{r['macs'] / 1e6:.1f} | {r['weights_bytes']['fp32'] / MB:.2f} | {r['weights_bytes']['int8'] / MB:.2f} | "
            f"{_fmt(sp / MB if sp else None)} | {r['latency_ms']['median_ms']:.3f} | {r['speedup']:.2f}x | "
            f"{_fmt(r['value'], '.4f')} | {_fmt(r['delta_points'], '+.2f')} | {_fmt(r['value2'], '.4f')} | "
            f"{_fmt(r['delta2_points'], '+.2f')} |")
    cis = [r for r in rows if r.get("ci")]
    if cis:
        lines += ["", f"{round(100 * (cis[0]['ci']['level'] or 0.95))}% CI, bootstrap over the "
                      f"{cis[0]['streams']} held-out streams:", ""]
        lines += [f"- {r['name']}: {m1} {_interval(r['ci'].get(m1))}, {m2} {_interval(r['ci'].get(m2))}" for r in cis]
    lines += [""] + [f"- {n}" for n in report["notes"]]
    lines += [f"- warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(lines) + "\n"


def _interval(x) -> str:
    return "-" if not x else f"[{x[0]:.4f}, {x[1]:.4f}]"


def plot(report: dict, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["variants"] if r["value"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "macs", "MACs (M, batch 1)"), (axes[1], "latency", "ORT CPU latency (ms, median)")):
        for prec, marker in (("fp32", "o"), ("int8", "^")):
            sel = [r for r in rows if r["precision"] == prec]
            xs = [r["macs"] / 1e6 if key == "macs" else r["latency_ms"]["median_ms"] for r in sel]
            ax.scatter(xs, [r["value"] for r in sel], marker=marker, label=prec.upper())
            for x, r in zip(xs, sel):
                ax.annotate(r["name"], (x, r["value"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel(rows[0]["metric"] if rows else "metric")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{Path(report['checkpoint']).name}: {report['method']} pruning and INT8")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def write_report(report: dict, out) -> dict[str, Path]:
    """sweep.json, sweep.md and sweep.png in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "md": out / "sweep.md", "png": out / "sweep.png"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(to_markdown(report))
    plot(report, paths["png"])
    return paths
