"""`edgekit nas`: the search space, the `resnet_nas` zoo family, costs and the latency model, the device
latency table, the study end to end (tiny: 32x32, one proxy epoch) and its one-line refusals."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.core.errors import BadInputError, EdgekitError, FileFormatError, UnsupportedError
from tests.conftest import assert_one_error, run_main, run_without_torch


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from edge.ml.data.synth import synth

    out = tmp_path_factory.mktemp("nas") / "phantom"
    synth(out, frames=64, streams=8, size=(48, 64), seed=0)
    return out


# --- the space and the zoo family ------------------------------------------------------------------
def test_arch_is_plain_data_and_the_space_encodes_it():
    import optuna

    from compress.nas.space import REFERENCES, Arch, SearchSpace

    space = SearchSpace(resolutions=((48, 48), (64, 64)))
    r8 = REFERENCES["resnet8"].at((64, 64))
    assert r8.key() == "imagenet-b1.1.1-w64.128.256-64x64"
    assert Arch.from_dict(json.loads(json.dumps(r8.to_dict()))) == r8
    params = space.params_of(r8)
    assert space.suggest(optuna.trial.FixedTrial({**params, "b3": 1, "w3": 8})) == r8   # fixed-length encoding
    assert space.params_of(REFERENCES["resnet34"]) is None                             # 3/4/6/3 blocks: outside
    rng = np.random.default_rng(0)
    assert all(space.contains(space.sample(rng)) for _ in range(20))
    assert space.scaled(r8, 0.5).widths == (32, 64, 128)                               # the seeds
    assert space.scaled(r8, 0.3).widths == (16, 40, 80)                                # the nearest on the ladder
    assert SearchSpace(widths=(16, 64)).scaled(r8, 0.1).widths == (16, 16, 24)         # within the space's range
    small = space.smallest()
    assert (small.stem, small.blocks, small.widths, small.input_size) == ("conv3pool", (1, 1), (8, 8), (48, 48))
    with pytest.raises(BadInputError, match="stages"):
        SearchSpace(stages=(3, 9))
    with pytest.raises(BadInputError, match="stems"):
        SearchSpace(stems=("vit",))


def test_resnet_nas_is_resnet8_by_default_and_takes_a_spec():
    from edge.ml.models import create_model, get_entry, list_models

    assert "resnet_nas" in list_models()
    assert get_entry("resnet_nas").family == "resnet_nas"
    default = create_model("resnet_nas", "plane", input_size=(32, 32)).state_dict()
    r8 = create_model("resnet8", "plane", input_size=(32, 32)).state_dict()
    assert {k: v.shape for k, v in default.items()} == {k: v.shape for k, v in r8.items()}
    m = create_model("resnet_nas", "plane", input_size=(32, 32), blocks=[2, 1], widths=[16, 24], stem="conv3")
    assert m.conv1.kernel_size == (3, 3)
    assert isinstance(m.maxpool, torch.nn.Identity)
    assert m(torch.rand(2, 1, 32, 32)).shape == (2, 4)
    with pytest.raises(BadInputError, match="multiple of 8"):
        create_model("resnet_nas", "plane", widths=[12, 24, 48])


def test_a_checkpoint_records_the_spec_and_a_bad_spec_is_refused_in_one_line(tmp_path):
    from edge.ml.checkpoint import load_model, read_file, save_checkpoint, validate_checkpoint
    from edge.ml.models import create_model

    m = create_model("resnet_nas", "orientation", input_size=(32, 32), blocks=[1, 2], widths=[16, 32], stem="conv3pool")
    path = save_checkpoint(tmp_path / "n.pt", m)
    net, meta = load_model(path)
    assert meta["model"]["kwargs"] == {"input_size": [32, 32], "in_chans": 1, "blocks": [1, 2], "widths": [16, 32],
                                       "stem": "conv3pool"}
    assert torch.equal(net(torch.zeros(1, 1, 32, 32)), m.eval()(torch.zeros(1, 1, 32, 32)))
    obj = read_file(path)
    for bad, needle in (({"blocks": [0, 1]}, "blocks"), ({"widths": [7, 32]}, "widths"), ({"stem": "x"}, "stem"),
                        ({"blocks": [8] * 6, "widths": [2048] * 6}, "larger than")):
        o = copy.deepcopy(obj)
        o["model"]["kwargs"].update(bad)
        with pytest.raises(FileFormatError, match=needle) as err:
            validate_checkpoint(o, "x.pt")
        assert "\n" not in str(err.value)


# --- costs ------------------------------------------------------------------------------------------
def test_counted_layers_agree_with_the_report_and_the_latency_model_fits():
    from compress.nas.costs import LatencyModel, arch_layers, cross_validate, features, model_costs
    from compress.nas.space import SearchSpace
    from edge.ml.models import create_model

    space = SearchSpace(resolutions=((32, 32), (48, 48)))
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(12)]
    for a in archs[:4]:                     # MACs counted from the spec are the zoo model's own
        model = create_model("resnet_nas", "plane", input_size=a.input_size, **a.model_kwargs())
        assert sum(l["macs"] for l in arch_layers(a)) == model_costs(model)["macs"]
    truth = np.array([0.05, 0.01, 0.02, 0.01, 0.03, 0.2, 0.1])          # ms per feature unit
    ms = np.array([features(a) @ truth for a in archs])
    fitted = LatencyModel.fit(archs, ms, "synthetic")
    assert np.allclose([fitted.predict(a) for a in archs], ms, rtol=1e-3)
    assert cross_validate(archs, ms)["median_abs_pct"] < 1.0
    with pytest.raises(BadInputError, match="at least 3"):
        LatencyModel.fit(archs[:2], ms[:2], "too few")


def test_default_budgets_are_derived_from_the_target():
    from compress.nas.costs import default_budget
    from targets import get_target

    cpu, nano = default_budget(get_target("cpu")), default_budget(get_target("jetson-nano"))
    assert cpu["budget_ms"] == nano["budget_ms"] == pytest.approx(1000 / 30 / 4, abs=1e-3)
    assert (cpu["max_mb"], nano["max_mb"]) == (256.0, 64.0)
    assert "derived" in cpu["how"]


def test_storages_open_or_fail_in_one_line(tmp_path):
    from compress.nas.study import open_storage

    assert open_storage(f"journal:{tmp_path / 's.journal'}") is not None
    assert open_storage(f"sqlite:///{tmp_path / 's.db'}") is not None
    for url in ("sqlite:////no/such/dir/s.db", "nosuchdb://x", "not a url"):
        with pytest.raises(BadInputError, match="cannot be opened") as err:
            open_storage(url)
        assert "\n" not in str(err.value)


_TRAINER = """
import json, sys, time
from compress.nas.costs import TimingLock
lock, out, seconds = TimingLock(sys.argv[1]), [], float(sys.argv[3])
with lock.training() as between_batches:
    print("training", flush=True)
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        between_batches()
        start = time.monotonic()
        while time.monotonic() - start < 0.005:      # a 5 ms batch
            pass
        out.append((start, time.monotonic()))
open(sys.argv[2], "w").write(json.dumps(out))
"""


def test_a_timing_waits_for_no_other_worker_to_compute(tmp_path):
    """Two workers: while one times a net, the other's training stops between batches."""
    import os
    import subprocess
    import sys
    import time

    from compress.nas.costs import TimingLock
    from tests.conftest import REPO

    lock = TimingLock(tmp_path / ".timing.lock")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    trainer = subprocess.Popen([sys.executable, "-c", _TRAINER, str(lock.path), str(tmp_path / "b.json"), "1.5"],
                               stdout=subprocess.PIPE, text=True, env=env)
    assert trainer.stdout.readline().strip() == "training"
    time.sleep(0.2)
    with lock.timing():
        t0 = time.monotonic()
        time.sleep(0.4)
        t1 = time.monotonic()
    assert trainer.wait(timeout=60) == 0
    batches = json.loads((tmp_path / "b.json").read_text())
    assert any(e < t0 for s, e in batches)                                          # it trained before
    assert any(s > t1 for s, e in batches)                                          # and after
    assert not [(s, e) for s, e in batches if s < t1 and e > t0]                    # and never during
    assert not list(tmp_path.glob(".timing.lock.*"))                                # the flag is gone


def test_a_flag_left_by_a_dead_worker_is_ignored(tmp_path):
    import subprocess
    import sys

    from compress.nas.costs import TimingLock

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = TimingLock(tmp_path / ".timing.lock")
    stale = tmp_path / f".timing.lock.{int(dead.stdout)}"
    stale.touch()
    with lock.training() as between_batches:
        between_batches()                   # returns at once: that worker is gone
    assert not stale.exists()


# --- the device table ---------------------------------------------------------------------------------
def test_a_device_table_from_archs_times_without_torch_and_feeds_the_search(tmp_path):
    from compress.nas.archs import export_archs
    from compress.nas.costs import ESTIMATE, TABLE, LatencySource, load_table
    from compress.nas.space import REFERENCES, SearchSpace
    from targets import get_target

    space = SearchSpace(resolutions=((32, 32),), widths=(8, 32))
    idx = export_archs(tmp_path / "archs", count=3, space=space, references=("resnet8",), input_size=(32, 32))
    assert len(idx["archs"]) == 4
    assert idx["archs"][0]["reference"] == "resnet8"
    table_path = tmp_path / "table.json"
    args = ["bench-archs", str(tmp_path / "archs"), "--out", str(table_path), "--backend", "onnxruntime", "--rounds", "2"]
    proc = run_without_torch(f"from edge.app.cli import main; sys.exit(main({args!r}))")      # the device verb: no torch
    assert proc.returncode == 0, proc.stderr
    table = load_table(table_path)
    assert table["backend"] == "onnxruntime"
    assert len(table["entries"]) == 4
    source = LatencySource(get_target("jetson-orin-nano"), table)
    r8 = REFERENCES["resnet8"].at((32, 32))
    assert source.ms(r8) == (table["entries"][r8.key()]["median_ms"], TABLE)
    ms, how = source.ms(space.smallest().at((24, 24)))
    assert how == ESTIMATE
    assert ms > 0
    assert "device table" in source.label
    # a hostile index: a file outside the folder is refused in one line
    index = json.loads((tmp_path / "archs" / "archs.json").read_text())
    index["archs"][0]["file"] = "../table.json"
    (tmp_path / "archs" / "archs.json").write_text(json.dumps(index))
    from runtime.archbench import read_index

    with pytest.raises(FileFormatError, match="outside the folder"):
        read_index(tmp_path / "archs")


def test_without_a_table_a_device_latency_is_a_labelled_estimate():
    from compress.nas.costs import ESTIMATE, LatencySource
    from compress.nas.space import REFERENCES
    from targets import get_target

    source = LatencySource(get_target("jetson"), None)
    assert source.mode == ESTIMATE
    assert "not measured" in source.label
    ms, how = source.ms(REFERENCES["resnet8"])
    assert how == ESTIMATE
    assert ms > 0


def test_a_budget_ratio_on_a_device_without_a_table_halves_the_estimate(tmp_path):
    from compress.nas.costs import LatencySource
    from compress.nas.space import REFERENCES
    from compress.nas.study import resolve_budget
    from targets import get_target

    budget = resolve_budget(_settings(tmp_path, tmp_path / "o", target="jetson", budget_ratio=0.5))
    ms, _ = LatencySource(get_target("jetson"), None, num_classes=2).ms(REFERENCES["resnet8"].at((32, 32)))
    assert budget["budget_ms"] == pytest.approx(0.5 * ms, abs=1e-4)
    assert "estimate" in budget["how"]


def test_folds_cut_the_streams_outside_test_and_never_touch_test(tiny_data):
    from compress.nas.objective import ProxyData

    data = ProxyData(tiny_data, "orientation", preload=False)
    pool = {s.group for s in data.train + data.val}
    test = {s.group for s in data.test}
    folds, _ = data.folds(3)
    assert len(folds) == 3
    vals = [{s.group for s in val} for _, val in folds]
    assert set().union(*vals) == pool
    assert sum(map(len, vals)) == len(pool)
    for (train, _val), groups in zip(folds, vals):
        assert {s.group for s in train} == pool - groups                          # trained on the others
        assert not ({s.group for s in train} | groups) & test
    one, _ = data.folds(len(pool) + 1)                                            # too few streams: train's split
    assert len(one) == 1
    assert one[0] == (data.train, data.val)


# --- the search -----------------------------------------------------------------------------------------
def _settings(data, out, **changes):
    from compress.nas.objective import ProxySettings
    from compress.nas.space import SearchSpace
    from compress.nas.study import NasSettings

    base = dict(task="orientation", data=str(data), out=str(out), target="cpu", input_size=(32, 32),
                space=SearchSpace(stages=(2, 3), resolutions=((32, 32),), widths=(8, 256)), trials=3,
                proxy=ProxySettings(epochs=1, batch_size=16), references=("resnet8",), latency_rounds=2,
                final_epochs=1, finalists=2, scales=(0.5, 0.25), progress=False)
    return NasSettings(**{**base, **changes})


def test_search_writes_the_front_and_a_checkpoint_export_takes(tiny_data, tmp_path):
    from compress.nas.study import search
    from edge.ml.checkpoint import load_model

    out = tmp_path / "nas"
    report = search(_settings(tiny_data, out))
    assert report["study"]["trials"] == 3
    assert report["latency"]["mode"] == "measured"
    assert report["references"]["resnet8"]["arch"]["key"] == "imagenet-b1.1.1-w64.128.256-32x32"
    assert report["trials"][0].get("reference") == "resnet8"            # enqueued first, trained like the rest
    assert report["trials"][1].get("seed") == "resnet8 x0.5 at 32x32"   # then ResNet8 at half its widths
    assert report["trials"][1]["arch"]["key"] == "imagenet-b1.1.1-w32.64.128-32x32"
    assert "seed" not in report["trials"][2]                            # at most half the trials are queued
    assert report["front"]
    assert report["best"]["fits"]
    assert all(r["latency_how"] == "measured" and r["latency_ms"] > 0 for r in report["trials"])
    # each candidate timed beside the anchor and scaled by the anchor's quiet latency at the start
    anchor = report["latency"]["anchor"]
    assert (anchor["net"], anchor["input_size"]) == ("resnet8", [32, 32])
    for r in (r for r in report["trials"] if "duplicate_of" not in r):
        assert r["latency_ms"] == pytest.approx(r["latency_raw_ms"] / r["anchor_now_ms"] * anchor["ms"], rel=1e-3, abs=1e-4)
    assert "relative to resnet8 at 32x32 timed in the same rounds" in report["latency"]["label"]
    on_disk = json.loads((out / "nas.json").read_text())
    assert on_disk["best"]["arch"] == report["best"]["arch"]
    assert "## Pareto front" in (out / "nas.md").read_text()
    assert (out / "nas.png").read_bytes()[:4] == b"\x89PNG"
    # the finalists: the best under budget by proxy, each trained on every fold; the best mean is kept
    finalists = report["finalists"]
    assert len(finalists) == 2
    assert [f["proxy"] for f in finalists] == sorted((f["proxy"] for f in finalists), reverse=True)
    how = report["selection"]
    assert how["folds"] == 3
    assert len(how["val_streams"]) == 3
    assert sum(how["val_streams"]) >= 3
    assert all(len(f["folds"]) == 3 and f["cv"] == pytest.approx(sum(f["folds"]) / 3, abs=1e-6) for f in finalists)
    assert report["final"]["cv"] == max(f["cv"] for f in finalists)
    assert report["final"]["val"] >= 0
    assert "macro_f1" in report["final"]["test"]
    assert report["final"]["checkpoint"] == str(out / "orientation.nas.pt")
    assert Path(report["final"]["trained_as"]).read_bytes() == (out / "orientation.nas.pt").read_bytes()
    assert report["best"]["arch"] == report["final"]["arch"]
    assert "## Finalists" in (out / "nas.md").read_text()
    net, meta = load_model(report["final"]["checkpoint"])
    assert meta["model"]["name"] == "resnet_nas"
    assert meta["model"]["kwargs"]["widths"] == report["best"]["arch"]["widths"]
    assert list(meta["config"]["input_size"]) == report["best"]["arch"]["input_size"]
    from export.bundle import export_bundle                    # export takes it unchanged (parity checked)

    manifest = export_bundle([report["final"]["checkpoint"]], "cpu", "fp32", tmp_path / "bundle", parity_frames=4)
    assert manifest["models"][0]["architecture"] == "resnet_nas"
    # the same --out resumes the study: it holds its trials already, so nothing is trained again
    again = search(_settings(tiny_data, out, final_epochs=0))
    assert again["study"]["trials"] == 3
    assert again["final"] is None
    # another search into the same study is refused by name
    with pytest.raises(BadInputError, match="another search"):
        search(_settings(tiny_data, out, budget_ms=1.0))


def test_two_worker_processes_share_the_study_and_train_the_finalists(tiny_data, tmp_path):
    from compress.nas.study import search

    out = tmp_path / "two"
    report = search(_settings(tiny_data, out, trials=4, workers=2, references=("resnet8", "resnet34"), budget_ratio=2.0))
    assert report["study"]["trials"] == 4
    # the budget is twice ResNet8's latency, got as the candidates' are: the anchor's quiet latency
    assert report["budget"]["budget_ms"] == pytest.approx(2 * report["latency"]["anchor"]["ms"], abs=1e-4)
    assert "2 x resnet8 at 32x32" in report["budget"]["how"]
    assert {r["worker"] for r in report["trials"]} <= {0, 1}
    assert report["references"]["resnet34"]["arch"]["key"].startswith("imagenet-b3.4.6.3-")   # outside the space
    assert len(report["finalists"]) == 2                        # their folds trained in the two processes
    assert all(len(f["folds"]) == 3 and all(0 <= v <= 1 for v in f["folds"]) for f in report["finalists"])
    assert (out / "orientation.nas.pt").is_file()
    assert list((out / "finalists").iterdir()) == [Path(report["final"]["trained_as"])]   # only the chosen one


def test_nothing_fits_is_one_line_with_the_smallest_latency(tiny_data, tmp_path, capsys):
    out = tmp_path / "none"
    proc = run_main(capsys, "nas", "--task", "orientation", "--data", tiny_data, "--out", out, "--input", "32x32",
                    "--resolutions", "32", "--budget-ms", "0.0001", "--references", "none")
    line = assert_one_error(proc, "nothing in the search space fits 0.0001 ms")
    assert "the smallest net" in line
    assert " ms (measured)" in line
    assert not out.exists()                              # refused before anything was written


@pytest.mark.parametrize("args,needle", [
    (("--target", "jetson-orin-nanoo"), "unknown target"),
    (("--budget-ms", "0"), "--budget-ms 0.0 must be a positive number"),
    (("--max-mb", "-5"), "--max-mb -5.0 must be a positive number"),
    (("--storage", "sqlite:////no/such/dir/study.db"), "cannot be opened"),
    (("--task", "detection"), "searches classifiers"),
    (("--latency-table", "/no/such/table.json"), "latency table not found"),
    (("--finalists", "0"), "--finalists 0 and --folds 3 must be at least 1"),
    (("--folds", "0"), "--finalists 5 and --folds 0 must be at least 1"),
    (("--budget-ratio", "0"), "--budget-ratio 0.0 must be a positive number"),
    (("--budget-ratio", "0.5", "--budget-ms", "1"), "give one of them"),
    (("--scales", "0.5,x"), "--scales '0.5,x': expected numbers"),
])
def test_bad_requests_are_one_line(tiny_data, tmp_path, capsys, args, needle):
    args = (*args, "--task", "plane") if "--task" not in args else args
    proc = run_main(capsys, "nas", "--data", tiny_data, "--out", tmp_path / "o", "--references", "none", *args)
    assert_one_error(proc, needle)
    assert not (tmp_path / "o").exists()


def test_the_checks_need_no_torch():
    proc = run_without_torch("from compress.nas import check_request\n"
                             "try:\n    check_request('plane', 'cpu', budget_ms=-1)\n"
                             "except Exception as e:\n    print(type(e).__name__, e)")
    assert proc.returncode == 0, proc.stderr
    assert "BadInputError --budget-ms -1 must be a positive number" in proc.stdout


def test_missing_data_and_an_impossible_memory_budget(tiny_data, tmp_path):
    from compress.nas.study import search

    with pytest.raises(EdgekitError):
        search(_settings(tmp_path / "missing", tmp_path / "o"))
    with pytest.raises(UnsupportedError, match="nothing in the search space fits"):
        search(_settings(tiny_data, tmp_path / "o2", max_mb=0.0001))


def test_the_front_the_best_under_budget_and_reused_nets():
    import optuna

    from compress.nas.report import pareto_front, top_under_budget
    from compress.nas.study import _evaluated

    def rec(n, acc, ms, mb, **extra):
        return {"number": n, "accuracy": acc, "latency_ms": ms, "memory_mb": mb, "arch": {"key": f"k{n}"}, **extra}

    records = [rec(0, 0.9, 2.0, 5.0), rec(1, 0.8, 0.5, 1.0), rec(2, 0.7, 0.6, 1.5), rec(3, None, 0.1, 0.1),
               rec(4, 0.95, 0.5, 1.0, duplicate_of=1)]
    twin = {**rec(5, 0.99, 0.5, 1.0), "arch": {"key": "k1"}}     # trained beside trial 1 by another worker
    assert [r["number"] for r in pareto_front(records)] == [1, 0]           # 2 is beaten by 1; 3 untrained; 4 a copy
    assert [r["number"] for r in top_under_budget(records, {"budget_ms": 1.0, "max_mb": 2.0}, 3)] == [1, 2]
    assert [r["number"] for r in top_under_budget([twin, *records], {"budget_ms": 1.0, "max_mb": 2.0}, 3)] == [1, 2]
    assert top_under_budget(records, {"budget_ms": 0.2, "max_mb": 2.0}, 3) == []
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.8, 0.5, 1.0], user_attrs={"record": records[1]}))
    assert _evaluated(study, "k1")["number"] == 1
    assert _evaluated(study, "k9") is None


def test_models_lists_the_nas_family(capsys):
    proc = run_main(capsys, "models", "resnet_nas")
    assert proc.returncode == 0
    assert proc.stdout.split()[:2] == ["resnet_nas", "resnet_nas"]
