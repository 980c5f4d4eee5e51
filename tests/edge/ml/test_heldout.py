"""Evaluation that cannot flatter (issue 12): whole streams held out so that val and test hold every
class, a test set missing a class flagged, confidence intervals from a bootstrap over streams, `eval`
reading QAT checkpoints, and the plane model's sweep metrics (plane_retrieval, frame_metrics)."""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch

from edge.core.errors import BadInputError
from edge.core.tasks import get_task
from edge.ml.data import classes_of, label_for_task, split_streams
from edge.ml.data.fpus23 import samples_from_frames
from edge.ml.data.records import Sample
from edge.ml.training.evaluate import evaluate, format_metrics, stream_report
from edge.ml.training.metrics import frame_metrics, plane_retrieval, single_label_metrics
from tests.conftest import run_edgekit


def _sweeps(first_seed: int, frames: int, task: str, n: int = 16):
    from edge.core.phantom import sweep

    out = []
    for k in range(first_seed, first_seed + n):
        out += list(sweep(k, frames, 32, 40))
    return label_for_task(samples_from_frames(out), task)[0]


def _classes(part, task):
    return set().union(*(classes_of(s, get_task(task)) for s in part))


@pytest.mark.parametrize("task,first_seed,frames", [("orientation", 0, 40), ("plane", 32, 150), ("anatomy", 0, 40)])
def test_split_holds_every_class_in_val_and_test_on_16_phantom_streams(task, first_seed, frames):
    samples = _sweeps(first_seed, frames, task)
    shown_by = defaultdict(set)
    for s in samples:
        for c in classes_of(s, get_task(task)):
            shown_by[c].add(s.group)
    assert len({s.group for s in samples}) == 16
    assert min(map(len, shown_by.values())) >= 3, {c: len(g) for c, g in shown_by.items()}   # the data allows it
    split = split_streams(samples, task, (0.8, 0.1, 0.1), seed=0)
    train, val, test = split.parts
    assert split.warnings == []
    assert split.missing == {}
    for part in (train, val, test):
        assert _classes(part, task) == set(shown_by), task
    groups = [{s.group for s in p} for p in split.parts]
    assert not (groups[0] & groups[1])
    assert not (groups[0] & groups[2])
    assert not (groups[1] & groups[2])
    assert sum(map(len, split.parts)) == len(samples)
    assert len(train) > len(val)
    assert len(train) > len(test)
    again = split_streams(samples, task, (0.8, 0.1, 0.1), seed=0)
    assert [[s.group for s in p] for p in again.parts] == [[s.group for s in p] for p in split.parts]
    rec = split.record()
    assert rec["test"]["groups"] == sorted(groups[2])
    assert rec["warnings"] == []


def _handmade(streams: dict[str, list[str]]) -> list[Sample]:
    return [Sample(None, g, label=lbl) for g, labels in streams.items() for lbl in labels]


def test_a_class_too_rare_to_reach_every_split_is_said_loudly():
    streams = {f"s{k}": ["no plane"] * 10 + ["AC"] * 2 for k in range(8)}
    streams["s_fl"] = ["no plane"] * 10 + ["FL"] * 3           # FL in one stream: train gets it, test cannot
    streams["s_bpd1"] = ["no plane"] * 10 + ["BPD"] * 3        # BPD in two: train and test, not val
    streams["s_bpd2"] = ["no plane"] * 10 + ["BPD"] * 3
    split = split_streams(_handmade(streams), "plane", (0.8, 0.1, 0.1), seed=3)
    assert split.missing == {"val": ["BPD", "FL"], "test": ["FL"]}
    assert "FL" in _classes(split["train"], "plane")
    assert "BPD" in _classes(split["test"], "plane")
    text = " ".join(split.warnings)
    assert "test split holds no frame of 'FL'" in text
    assert "val split holds no frame of 'BPD', 'FL'" in text
    with pytest.raises(BadInputError, match="cannot fill 3"):
        split_streams(_handmade({"a": ["AC"], "b": ["FL"]}), "plane")


def test_a_single_class_test_set_is_flagged():
    task = get_task("orientation")
    targets, preds = [0] * 30, [0] * 25 + [1] * 5
    pooled = single_label_metrics(targets, preds, task.labels)
    rep = stream_report(task, preds, targets, ["stream_a"] * 30, pooled)
    text = " ".join(rep["warnings"])
    assert "test split holds no frame of 'hdvf', 'huvb', 'huvf'" in text
    assert "1 stream" in text
    assert rep["ci"] is None
    lines = format_metrics({**pooled, **rep, "task": "orientation", "kind": "single_label", "split": "test"})
    assert [ln for ln in lines.splitlines() if ln.startswith("warning: test split holds no frame")]


def _streams(n_streams: int, seed: int = 0, frames: int = 40):
    """Streams of a 4-class task whose per-stream accuracy varies between 0.5 and 0.95."""
    rng = np.random.default_rng(seed)
    targets, preds, groups = [], [], []
    for g in range(n_streams):
        t = rng.integers(0, 4, frames)
        right = rng.random(frames) < rng.uniform(0.5, 0.95)
        targets += list(t)
        preds += list(np.where(right, t, (t + 1) % 4))
        groups += [f"s{g:03d}"] * frames
    return targets, preds, groups


def test_bootstrap_ci_brackets_the_point_estimate_and_narrows_with_more_streams():
    task = get_task("plane")
    widths = []
    for n in (4, 16, 64):
        t, p, g = _streams(n)
        pooled = single_label_metrics(t, p, task.labels)
        rep = stream_report(task, p, t, g, pooled)
        ci = rep["ci"]
        assert ci["streams"] == n
        assert ci["resamples"] == 1000
        assert ci["by"] == "stream"
        for key in ("accuracy", "macro_f1"):
            assert ci[key][0] <= pooled[key] <= ci[key][1], (n, key, ci[key], pooled[key])
        for lbl in task.labels:
            assert ci["recall"][lbl][0] <= pooled["per_class"][lbl]["recall"] <= ci["recall"][lbl][1]
        assert [r["group"] for r in rep["per_stream"]] == sorted(set(g))
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
        assert stream_report(task, p, t, g, pooled)["ci"] == ci                      # seeded
    assert widths[0] > widths[1] > widths[2], widths
    assert widths[0] > 0.05


@pytest.fixture(scope="module")
def synth16(tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout") / "ds"
    proc = run_edgekit("data", "synth", out, "--frames", "160", "--streams", "16", "--size", "32x40")
    assert proc.returncode == 0, proc.stderr
    return out


def _checkpoint(path, data, quantize=False, test_groups=None):
    """An untrained resnet8 (orientation, 32x32) with a split recorded as `edgekit train` does."""
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data import load_samples
    from edge.ml.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet8", task="orientation", input_size=(32, 32)).eval()
    samples, _ = load_samples(data, "orientation")
    split = split_streams(samples, "orientation", seed=0)
    rec = split.record()
    if test_groups is not None:
        rec["test"]["groups"] = test_groups
    quant = None
    if quantize:
        import modelopt.torch.quantization as mtq

        from edge.ml.data.dataset import TaskDataset
        from edge.ml.quantization import quantization_meta, quiet

        ds = TaskDataset(split["train"][:16], model.edge_config.task, model.edge_config.preprocess)
        xs = torch.stack([ds[i][0] for i in range(len(ds))])
        with quiet():
            mtq.quantize(model, mtq.INT8_DEFAULT_CFG, lambda m: m(xs))
        quant = quantization_meta(model)
    return save_checkpoint(path, model, provenance={"split": rec}, quantization=quant), split


def test_eval_reads_a_qat_checkpoint(synth16, tmp_path):
    from edge.ml.quantization import is_quantized, load_quantized

    ckpt, split = _checkpoint(tmp_path / "o.int8.pt", synth16, quantize=True)
    model, _ = load_quantized(ckpt)
    assert is_quantized(model)
    m = evaluate(ckpt, synth16, resamples=200)
    assert m["n"] == len(split["test"])
    assert m["streams"] == len({s.group for s in split["test"]})
    assert m["ci"]["resamples"] == 200
    assert m["accuracy"] == pytest.approx(sum(r["accuracy"] * r["n"] for r in m["per_stream"]) / m["n"])
    val = evaluate(ckpt, synth16, split="val", resamples=50)
    assert val["n"] == len(split["val"])


def test_cli_eval_prints_per_stream_lines_cis_and_warnings(synth16, tmp_path):
    ckpt, split = _checkpoint(tmp_path / "o.pt", synth16)
    proc = run_edgekit("eval", ckpt, "--data", synth16, "--resamples", "300")
    assert proc.returncode == 0, proc.stderr
    test_groups = sorted({s.group for s in split["test"]})
    for g in test_groups:
        assert any(ln.strip().startswith(f"stream {g}  n=") for ln in proc.stdout.splitlines()), proc.stdout
    assert f"95% CI: bootstrap over {len(test_groups)} streams (300 resamples" in proc.stdout
    assert [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("accuracy") and "[" in ln]
    # a checkpoint whose recorded test set is one stream, one orientation: flagged on both outputs
    one, _ = _checkpoint(tmp_path / "one.pt", synth16, test_groups=test_groups[:1])
    proc = run_edgekit("eval", one, "--data", synth16, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ci"] is None
    assert result["streams"] == 1
    assert any("holds no frame of" in w for w in result["warnings"])
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: test split holds no frame of")]
    text = run_edgekit("eval", one, "--data", synth16)
    assert [ln for ln in text.stdout.splitlines() if ln.startswith("warning: ")], text.stdout


def test_plane_retrieval_on_hand_made_sweeps():
    bg = "no plane"
    truth = [bg] * 5 + ["AC"] * 4 + [bg] * 8 + ["FL"] * 3 + [bg] * 5 + ["AC"] * 2 + [bg] * 3
    assert len(truth) == 30
    perfect = plane_retrieval(truth, [None if t == bg else t for t in truth])
    assert (perfect["crossings"], perfect["found"], perfect["recall"], perfect["precision"]) == (3, 3, 1.0, 1.0)
    assert perfect["per_class"]["AC"]["crossings"] == 2
    assert perfect["tolerance"] == 3
    # one flag per crossing, each just outside the run but inside the tolerance: all found, all right
    late = [None] * 30
    late[11], late[22], late[29] = "AC", "FL", "AC"        # runs end at 8, 19, 26: 3 frames late each
    r = plane_retrieval(truth, late, tolerance=3)
    assert (r["found"], r["recall"], r["flagged_frames"], r["precision"]) == (3, 1.0, 3, 1.0)
    r1 = plane_retrieval(truth, late, tolerance=2)          # too late for a tolerance of 2
    assert (r1["found"], r1["precision"]) == (0, 0.0)
    # the FL crossing missed, and two false flags (a wrong plane, a flag far from any crossing)
    pred = [None] * 30
    pred[6], pred[24] = "AC", "AC"
    pred[7], pred[13] = "BPD", "FL"
    r = plane_retrieval(truth, pred, tolerance=1)
    assert (r["crossings"], r["found"], r["recall"]) == (3, 2, pytest.approx(2 / 3))
    assert (r["flagged_frames"], r["precision"]) == (4, 0.5)
    assert r["per_class"]["FL"] == {"crossings": 1, "found": 0, "recall": 0.0, "flagged_frames": 1, "precision": 0.0}
    assert r["per_class"]["BPD"]["recall"] is None
    assert r["per_class"]["BPD"]["precision"] == 0.0
    # background predictions are not flags; an empty sweep has nothing to count
    assert plane_retrieval(truth, [bg] * 30)["flagged_frames"] == 0
    assert plane_retrieval(truth, [bg] * 30)["precision"] is None
    assert plane_retrieval([bg] * 4, [None] * 4)["recall"] is None
    with pytest.raises(BadInputError, match="frames"):
        plane_retrieval(truth, pred[:-1])
    with pytest.raises(BadInputError, match="tolerance"):
        plane_retrieval(truth, pred, tolerance=-1)


def test_frame_metrics_match_the_classifier_metrics():
    labels = ("AC", "BPD", "FL", "no plane")
    truth = ["AC", "AC", "no plane", "no plane", "FL", "FL"]
    pred = ["AC", None, "no plane", "AC", "FL", "no plane"]
    m = frame_metrics(truth, pred, labels)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["unflagged"] == 1
    assert m["recall"] == {"AC": 0.5, "BPD": None, "FL": 0.5, "no plane": 0.5}
    idx = {lbl: k for k, lbl in enumerate(labels)}
    ref = single_label_metrics([idx[t] for t in truth], [idx[p or "BPD"] for p in pred], labels)
    assert m["per_class"]["FL"] == ref["per_class"]["FL"]          # None costs its frame, helps no class
    assert m["per_class"]["AC"]["precision"] == 0.5
    with pytest.raises(BadInputError, match="not among"):
        frame_metrics(["AC"], ["XX"], labels)
