"""The demo report as Markdown: what `edgekit demo` prints and writes to demo.md (demo.json is the truth)."""
from __future__ import annotations


def _f(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def render(report: dict) -> str:
    d = report["data"]
    lines = ["# edgekit demo", "",
             f"Phantom frames {d['frame'][0]}x{d['frame'][1]}: {d['train_frames']} for training ("
             + (f"{d['iid_frames']} i.i.d. of seed {d['train_seed']}, {d['sweep_frames']} from {d['train_sweeps']} "
                f"sweeps of other fetuses" if "iid_frames" in d else f"seed {d['train_seed']}")
             + f"), {d['test_frames']} i.i.d. frames held out (seed {d['test_seed']}) for the scores of 1-2; "
             f"the loop in 5 runs on a sweep of a fetus no model saw."
             + (" Quick run: the figures only show that the chain works." if report.get("quick") else ""), ""]
    lines += _trained(report["train"]) + _compressed(report) + _bundles(report["bundles"]) + _run(report)
    s = report["seconds"]
    lines += ["## Time", "", ", ".join(f"{k} {v:.0f} s" for k, v in s.items()), "",
              f"Everything is under {report['out']}: checkpoints/, compress/<task>/ (variants, sweep.json/.md/.png), "
              f"bundle-cpu-fp32/, bundle-jetson-int8/, run.jsonl (every frame's answers), demo.json."]
    return "\n".join(lines)


def _trained(train: dict) -> list[str]:
    lines = ["## 1. Trained", "", "| task | model | input | frames x epochs | metric | held-out | chance | s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, t in train.items():
        lines.append(f"| {name} | {t['model']} | {t['input'][0]}x{t['input'][1]} | {t['train_frames']} x "
                     f"{t['epochs']} | {t['metric']} | {_f(t['score'])} | {_f(t['chance'], '.2f')} | "
                     f"{t['seconds']:.0f} |")
    return lines + [""]


def _compressed(report: dict) -> list[str]:
    ratio = report["plan"]["ratio"]
    lines = [f"## 2. Compressed: structured pruning {ratio:.0%} of prunable weights, then INT8 QAT", ""]
    for name, s in report["compress"].items():
        md = s["markdown"].splitlines()
        lines += ["### " + md[0].lstrip("# "), *md[1:]]
        if not s["int8"]:
            lines.append("INT8 skipped for the detector in this plan: it is pruned only.")
        elif name == "detection" and not report["plan"].get("detector_qat_epochs"):
            lines.append("The detector's INT8 is calibration only (post-training quantisation, no QAT epochs).")
        lines.append("")
    return lines


def _bundles(bundles: dict) -> list[str]:
    lines = ["## 3. Bundles and parity (ONNX Runtime against PyTorch, on phantom frames)", "",
             "| bundle | target | model | precision | ONNX | parity | required | passed |",
             "|---|---|---|---|---|---|---|---|"]
    for key, b in bundles.items():
        for m in b["models"]:
            p = m["parity"]
            required = str(p.get("required", "-")).replace("|", r"\|")     # a Markdown cell
            lines.append(f"| {key} | {b['target']} | {m['name']} | {m['precision']} | {m['onnx']} | "
                         f"{p.get('metric', '-')} = {_f(p.get('value'), '.4g')} | {required} | "
                         f"{'yes' if p.get('passed') else 'NO'} |")
    lines.append("")
    for key, b in bundles.items():
        if b["left_out"]:
            lines.append(f"{key}: left out {', '.join(b['left_out'])} (no INT8 checkpoint).")
        lines += [f"{key}: {w}" for w in b["warnings"]]
    return lines + [""]


def _run(report: dict) -> list[str]:
    from runtime.stats import format_summary

    run = report["run"]
    lines = [f"## 4. Runtime loop: {run.get('bundle', '')} on {run.get('source', 'phantom')}, backend "
             f"{run.get('backend', '?')}", "", "```", format_summary(run), "```",
             "Memory is the demo process's, torch included; `edgekit run BUNDLE` on a device loads no torch.", ""]
    c = report.get("correctness")
    if c:
        from edge.app.demo.correctness import table

        lines += [f"### Correctness against the phantom's truth ({c['scored_frames']} of {c['frames']} frames)", "",
                  *table(c, run), "",
                  "Retrieval (`edge.ml.training.metrics.plane_retrieval` on the hysteresis state): a true "
                  "crossing of a plane is found when the state holds that plane within "
                  f"{c['tolerance_frames']} frames of it (recall); a state frame in a plane is right when a frame "
                  f"within {c['tolerance_frames']} truly shows that plane (precision).", ""]
    return lines
