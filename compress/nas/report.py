"""The search report: `nas.json` is the truth; `nas.md` (tables) and `nas.png` (the front) render it.

The Pareto front is over the trained candidates and three objectives: the val figure (higher is
better), latency and memory (lower is better). The plot puts accuracy against latency, each point
coloured by memory, the front joined, the latency budget as a vertical line and ResNet8 / ResNet10 /
ResNet34 marked (measured and proxy-trained the same way); its axis says where latency came from
(measured, a device table, or an estimate).
"""
from __future__ import annotations

import json
from pathlib import Path

from runtime.atomic import write_bytes_atomic


def _trained(records) -> list[dict]:
    """Trained candidates, each net once: a trial that reused an earlier trial's net is left out, and so
    is one that trained a net another worker was training at the same time (the earlier trial stays)."""
    seen, out = set(), []
    for r in sorted((r for r in records if r.get("accuracy") is not None and "duplicate_of" not in r),
                    key=lambda r: r.get("number", 0)):
        if r["arch"]["key"] not in seen:
            seen.add(r["arch"]["key"])
            out.append(r)
    return out


def _dominates(a: dict, b: dict) -> bool:
    ge = a["accuracy"] >= b["accuracy"] and a["latency_ms"] <= b["latency_ms"] and a["memory_mb"] <= b["memory_mb"]
    gt = a["accuracy"] > b["accuracy"] or a["latency_ms"] < b["latency_ms"] or a["memory_mb"] < b["memory_mb"]
    return ge and gt


def pareto_front(records) -> list[dict]:
    """The trained candidates no other trained candidate beats on all three objectives, by latency."""
    rows = _trained(records)
    front = [r for r in rows if not any(_dominates(o, r) for o in rows if o is not r)]
    return sorted(front, key=lambda r: (r["latency_ms"], -r["accuracy"]))


def top_under_budget(records, budget: dict, n: int = 1) -> list[dict]:
    """The `n` most accurate trained candidates within the latency and memory budget (ties: the fastest)."""
    fits = [r for r in _trained(records)
            if r["latency_ms"] <= budget["budget_ms"] and r["memory_mb"] <= budget["max_mb"]]
    return sorted(fits, key=lambda r: (-r["accuracy"], r["latency_ms"]))[:n]


def _fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def _row(r: dict, tag: str = "") -> str:
    a = r["arch"]
    status = r["status"] + (f" (net of trial {r['duplicate_of']})" if "duplicate_of" in r else "")
    return (f"| {tag or r.get('number', '-')} | {a['stem']} | {'/'.join(map(str, a['blocks']))} | "
            f"{'/'.join(map(str, a['widths']))} | {a['input_size'][0]}x{a['input_size'][1]} | "
            f"{_fmt(r.get('accuracy'))} | {_fmt(r['latency_ms'], '.3g')} ({r['latency_how']}) | "
            f"{_fmt(r['memory_mb'], '.3g')} | {r['params'] / 1e6:.3f} | {r['macs'] / 1e6:.1f} | {status} |")


HEADER = ("| trial | stem | blocks | widths | input | {metric} | latency ms | memory MB | params M | MACs M | status |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def to_markdown(report: dict, every_trial: bool = True) -> str:
    b, lat = report["budget"], report["latency"]
    metric = next((r["metric"] for r in report["trials"] if r.get("metric")), "accuracy")
    err = lat.get("model_error") or {}
    lines = [
        f"# edgekit nas: {report['task']} on {report['target']}",
        "",
        f"- budget: {b['budget_ms']:g} ms, {b['max_mb']:g} MB ({b['how']})",
        f"- latency: {lat['label']}",
        f"- latency model error: median {_fmt(err.get('median_abs_pct'), '.1f')}% over {err.get('n', 0)} nets"
        f" ({err.get('method') or err.get('note') or '-'})",
        f"- study: {report['study']['name']} ({report['study']['trials']} trials, NSGA-II population "
        f"{report['study']['population']}, {report['study']['workers']} worker(s), {report['study']['storage']})",
        f"- proxy: {report['proxy']['epochs']} epoch(s) on the train streams, scored ({metric}) on the val streams",
        f"- search time: {report['search_seconds']} s",
        "",
    ]
    best = report.get("best")
    if best:
        lines += ["## Best under budget", "", HEADER.format(metric=metric), _row(best), ""]
    else:
        lines += ["## Best under budget", "", "No trained candidate fits the budget.", ""]
    final = report.get("final")
    if final:
        test = ", ".join(f"{k} {v:.4f}" for k, v in final["test"].items() if isinstance(v, (int, float)))
        lines += [f"Trained {final['epochs']} epochs: `{final['checkpoint']}`; test streams: {test}", ""]
    if report.get("finalists") and len(report["finalists"]) > 1:
        how = report["selection"]
        lines += [f"## Finalists (the best {len(report['finalists'])} under budget by proxy; each trained "
                  f"{how['epochs']} epochs on each of {how['folds']} folds of the streams outside test; the best "
                  f"mean is kept)", "",
                  f"| trial | net | proxy {metric} | fold {metric} | mean | latency ms | kept |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {f['number']} | {f['arch']['key']} | {f['proxy']:.3f} | {' '.join(f'{v:.3f}' for v in f['folds'])} | "
                  f"{f['cv']:.3f} | {f['latency_ms']:.3g} | "
                  f"{'yes' if final and f['arch']['key'] == final['arch']['key'] else ''} |" for f in report["finalists"]]
        lines += [""] + [f"Note: {w}." for w in how["warnings"]] + ([""] if how["warnings"] else [])
    lines += ["## Pareto front (trained candidates)", "", HEADER.format(metric=metric)]
    by_number = {r["number"]: r for r in report["trials"]}
    lines += [_row(by_number[n]) for n in report["front"]] + [""]
    if report["references"]:
        lines += ["## References (measured and proxy-trained the same way)", "", HEADER.format(metric=metric)]
        lines += [_row(r, name) for name, r in report["references"].items()] + [""]
    if every_trial:
        lines += ["## Every trial", "", HEADER.format(metric=metric)]
        lines += [_row(r) for r in report["trials"]] + [""]
    return "\n".join(lines)


def plot(report: dict) -> bytes:
    """The front as a PNG: accuracy against latency (log scale), memory as colour, the references
    starred, the best under budget and the budget line marked."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _trained(report["trials"])
    metric = next((r["metric"] for r in rows if r.get("metric")), "accuracy")
    fig, ax = plt.subplots(figsize=(8, 5))
    if rows:
        sc = ax.scatter([r["latency_ms"] for r in rows], [r["accuracy"] for r in rows],
                        c=[r["memory_mb"] for r in rows], cmap="viridis", s=22, alpha=0.8, label="trials")
        fig.colorbar(sc, ax=ax, label="memory (MB: FP32 weights + peak activations)")
    by_number = {r["number"]: r for r in report["trials"]}
    front = [by_number[n] for n in report["front"]]
    if front:
        ax.plot([r["latency_ms"] for r in front], [r["accuracy"] for r in front], "-o", color="tab:red",
                markerfacecolor="none", ms=9, lw=1, label="Pareto front")
    for name, r in report["references"].items():
        if r.get("accuracy") is not None:
            ax.scatter([r["latency_ms"]], [r["accuracy"]], marker="*", s=160, color="black", zorder=5)
            ax.annotate(name, (r["latency_ms"], r["accuracy"]), fontsize=8, xytext=(5, -10), textcoords="offset points")
        else:
            ax.axvline(r["latency_ms"], color="grey", ls=":", lw=1)
            ax.annotate(f"{name} (not trained)", (r["latency_ms"], ax.get_ylim()[0]), fontsize=7, rotation=90)
    best = report.get("best")
    if best:
        ax.scatter([best["latency_ms"]], [best["accuracy"]], marker="D", s=70, color="tab:orange", zorder=6,
                   label="best under budget")
    ax.axvline(report["budget"]["budget_ms"], color="tab:red", ls="--", lw=1.2,
               label=f"budget {report['budget']['budget_ms']:g} ms")
    ax.set_xscale("log")
    mode = report["latency"]["mode"]
    ax.set_xlabel(f"latency, ms ({'ESTIMATE, ' if mode == 'estimate' else ''}{mode}; log scale)")
    ax.set_ylabel(f"{metric} on the val streams (proxy training)")
    ax.set_title(f"edgekit nas: {report['task']} on {report['target']}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    return png.getvalue()


def write_report(report: dict, out) -> dict[str, Path]:
    """nas.json, nas.md and nas.png in `out` (each written whole or not at all)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "nas.json", "md": out / "nas.md", "png": out / "nas.png"}
    write_bytes_atomic(paths["json"], (json.dumps(report, indent=2, default=str) + "\n").encode())
    write_bytes_atomic(paths["md"], to_markdown(report).encode())
    write_bytes_atomic(paths["png"], plot(report))
    return paths
