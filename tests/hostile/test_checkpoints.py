"""Bad checkpoint files (issue 10): each is refused in one `error:` line naming the file, with no
traceback and nothing written at --out; the good paths still work.

Every case runs through the CLI's `main` in this process (a subprocess per case costs a torch import:
22 cases took 400 s on 2 cores); a representative few, and every raw-file case, run through the
installed `edgekit` in a subprocess, as a user meets them."""
from __future__ import annotations

import copy
import zipfile

import pytest

from tests.conftest import assert_one_error, run_edgekit, run_main


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    import torch

    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.models import create_model

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("good")
    model = create_model("resnet8", task="plane", input_size=(32, 32)).eval()
    torch.save(create_model("sononet16", task="standard_plane", input_size=(64, 64)).state_dict(),
               d / "SonoNet16.pth")
    return save_checkpoint(d / "plane.pt", model), d / "SonoNet16.pth"


def _mutated(good_path, tmp_path, name, change):
    import torch

    obj = copy.deepcopy(torch.load(good_path, weights_only=True))
    change(obj)
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _kwargs(**kw):
    return lambda o: o["model"]["kwargs"].update(kw)


def _shapes(shapes):
    return lambda o: o["model"].update(shapes=shapes)


MUTATIONS = {
    "unknown-kwarg": (_kwargs(no_such_option=3), "no_such_option"),
    "kwarg-wrong-type": (_kwargs(input_size="big"), "model.kwargs['input_size']"),
    "kwarg-nan": (_kwargs(mean=float("nan")), "model.kwargs['mean']"),
    "kwarg-enormous-input": (_kwargs(input_size=[10**9, 10**9]), "model.kwargs['input_size']"),
    "kwarg-enormous-chans": (_kwargs(in_chans=10**6), "model.kwargs['in_chans']"),
    "kwargs-not-a-dict": (lambda o: o["model"].update(kwargs=["a"]), "model.kwargs is a list"),
    "negative-shapes": (_shapes({"fc.weight": [-1, 3]}), "model.shapes['fc.weight']"),
    "enormous-shapes": (_shapes({"fc.weight": [10**9, 10**9]}), "more than 1,000,000,000 weights"),
    "shapes-wrong-rank": (_shapes({"fc.weight": [4]}), "does not fit"),
    "shapes-not-ints": (_shapes({"fc.weight": ["4", 256]}), "model.shapes['fc.weight']"),
    "unknown-task": (lambda o: o["task"].update(name="gestational_age"), "unknown task 'gestational_age'; expected one of plane"),
    "task-kind-mismatch": (lambda o: o["task"].update(kind="detection"), "single_label task"),
    "task-not-a-dict": (lambda o: o.update(task="plane"), "expected {name, kind, labels}"),
    "missing-state-dict": (lambda o: o.pop("state_dict"), "has no state_dict"),
    "state-dict-not-tensors": (lambda o: o.update(state_dict={"fc.weight": "x"}), "is not a tensor"),
    "wrong-format": (lambda o: o.update(format="onnx.model"), "format 'onnx.model' is not 'edgekit.checkpoint'"),
    "wrong-format-type": (lambda o: o.update(format=7), "format '7' is not"),
    "version-not-int": (lambda o: o.update(version="1"), "version '1' is not a positive integer"),
    "version-newer": (lambda o: o.update(version=99), "upgrade edgekit"),
    "unknown-model": (lambda o: o["model"].update(name="resnet9"), "unknown model 'resnet9'"),
    "model-not-a-dict": (lambda o: o.update(model=None), "model.name is missing"),
    "compression-not-a-list": (lambda o: o.update(compression="pruned"), "compression is a str"),
}


def _raw_files(tmp_path) -> dict:
    files = {"empty": (b"", "empty file (0 bytes)"),
             "text": (b"this is a text file, not a checkpoint\n" * 4, "not a readable PyTorch file"),
             "binary-garbage": (b"\x80\x02garbage\x00\xff" * 10, "not a readable PyTorch file")}
    out = {}
    for name, (data, needle) in files.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
        out[name] = (tmp_path / f"{name}.pt", needle)
    z = tmp_path / "zip.pt"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("notes.txt", "a zip that is not a torch file")
    out["zip-not-torch"] = (z, "not a readable PyTorch file")
    return out


EXPORT = ("export", "{ckpt}", "--target", "cpu", "--precision", "fp32", "--out", "{out}", "--parity-frames", "2")


def _export(ckpt, out, *extra, run=run_edgekit):
    return run(*[a.format(ckpt=ckpt, out=out) for a in EXPORT], *extra)


def _refused_by_export(good, tmp_path, case, run):
    change, needle = MUTATIONS[case]
    path = _mutated(good[0], tmp_path, f"{case}.pt", change)
    line = assert_one_error(_export(path, tmp_path / "b", run=run), needle)
    assert str(path) in line, line
    assert not (tmp_path / "b").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_export_refuses_a_bad_checkpoint_in_one_line(good, tmp_path, case, capsys):
    _refused_by_export(good, tmp_path, case, run=lambda *a: run_main(capsys, *a))


@pytest.mark.parametrize("case", ["unknown-task", "enormous-shapes", "kwarg-wrong-type", "missing-state-dict"])
def test_the_installed_edgekit_refuses_a_bad_checkpoint_in_one_line(good, tmp_path, case):
    _refused_by_export(good, tmp_path, case, run=run_edgekit)


@pytest.mark.parametrize("case", ["empty", "text", "binary-garbage", "zip-not-torch"])
def test_export_refuses_a_file_that_is_no_checkpoint_in_one_line(tmp_path, case):
    path, needle = _raw_files(tmp_path)[case]
    line = assert_one_error(_export(path, tmp_path / "b"), needle)
    assert str(path) in line
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("case", ["empty", "text", "zip-not-torch"])
def test_export_with_model_refuses_a_file_that_is_no_checkpoint(tmp_path, case):
    path, needle = _raw_files(tmp_path)[case]
    assert_one_error(_export(path, tmp_path / "b", "--model", "sononet16"), needle)


@pytest.mark.parametrize("case", ["unknown-task", "enormous-shapes", "unknown-kwarg", "missing-state-dict"])
def test_report_refuses_a_bad_checkpoint_in_one_line(good, tmp_path, case, capsys):
    change, needle = MUTATIONS[case]
    path = _mutated(good[0], tmp_path, f"{case}.pt", change)
    assert_one_error(run_main(capsys, "report", path), needle)


@pytest.mark.parametrize("case", ["empty", "text"])
def test_report_refuses_a_file_that_is_no_checkpoint(tmp_path, case):
    path, needle = _raw_files(tmp_path)[case]
    assert_one_error(run_edgekit("report", path), needle)


def test_eval_refuses_a_bad_checkpoint_in_one_line(good, tmp_path):
    data = tmp_path / "data"
    proc = run_edgekit("data", "synth", data, "--frames", "4", "--size", "32x32")
    assert proc.returncode == 0, proc.stderr
    path = _mutated(good[0], tmp_path, "task.pt", MUTATIONS["unknown-task"][0])
    assert_one_error(run_edgekit("eval", path, "--data", data), "unknown task 'gestational_age'")
    empty, _ = _raw_files(tmp_path)["empty"]
    assert_one_error(run_edgekit("eval", empty, "--data", data), "empty file")


def test_a_third_party_state_dict_with_model_still_exports_and_reports(good, tmp_path):
    _, sononet = good
    proc = _export(sononet, tmp_path / "b", "--model", "sononet16")
    # SonoNet's weights do not depend on the input size: the file loads as the zoo's sononet16 (288x224)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b" / "manifest.json").exists()
    rep = run_edgekit("report", sononet, "--model", "sononet16", "--json")
    assert rep.returncode == 0, rep.stderr
    assert_one_error(run_edgekit("report", sononet), "--model NAME")


def test_the_good_checkpoint_still_exports(good, tmp_path):
    proc = _export(good[0], tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b" / "manifest.json").exists()
