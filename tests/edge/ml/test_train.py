"""Training: the loss of each task kind goes down on a fixed batch, `fit` is deterministic and takes
an optimizer override (the compress stage's fine-tuning), and `edgekit train` + `edgekit eval` turn a
dataset written by `edgekit data synth` into a checkpoint with provenance."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from edge.ml.checkpoint import load_model, save_checkpoint
from edge.ml.data.dataset import PhantomDataset
from edge.core.errors import BadInputError
from edge.ml.training.evaluate import evaluate
from edge.ml.models import create_model
from edge.ml.models.config import ModelConfig
from edge.core.preprocess import default_spec
from edge.core.tasks import get_task
from edge.ml.training.fit import fit
from tests.conftest import run_cli


@pytest.mark.parametrize("task,model,size,n", [
    ("plane", "resnet8", (32, 32), 8),
    ("anatomy", "resnet8", (32, 32), 8),
    ("detection", "fasterrcnn_resnet10", (64, 64), 4),
])
def test_loss_goes_down_on_a_fixed_batch(task, model, size, n):
    torch.manual_seed(0)
    # a detector: fewer proposals and sampled ROIs, the same losses, a CPU-sized step
    small = dict(rpn_pre_nms_top_n_train=64, rpn_pre_nms_top_n_test=64, rpn_post_nms_top_n_train=64,
                 rpn_post_nms_top_n_test=64, box_batch_size_per_image=32) if task == "detection" else {}
    net = create_model(model, task=task, input_size=size, **small)
    ds = PhantomDataset(task, net.edge_config.preprocess, seed=3, n=n, size=(64, 64))
    history = fit(net, ds, epochs=6, batch_size=n, progress=False)      # one batch per epoch
    assert history["steps"] == 6
    assert not net.training
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]


def test_fit_is_deterministic_for_a_seed():
    def run():
        torch.manual_seed(1)
        net = create_model("resnet8", task="orientation", input_size=(32, 32))
        ds = PhantomDataset("orientation", net.edge_config.preprocess, n=8, size=(48, 48), augment=True)
        return net, fit(net, ds, epochs=2, batch_size=4, seed=7, progress=False)

    (a, ha), (b, hb) = run(), run()
    assert ha["loss"] == hb["loss"]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


class _Tiny(nn.Module):
    """Any module with an `edge_config` trains, not only zoo models (pruned/QAT models are not)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 4))
        self.edge_config = ModelConfig("tiny", get_task("plane"), (16, 16), preprocess=default_spec((16, 16)))

    def forward(self, x):
        return self.net(x)


def test_fit_takes_an_optimizer_and_a_step_budget():
    net = _Tiny()
    ds = PhantomDataset("plane", net.edge_config.preprocess, n=16, size=(32, 32))
    sgd = torch.optim.SGD(net.parameters(), lr=0.05)
    history = fit(net, ds, epochs=5, batch_size=4, optimizer=sgd, step_size=1, gamma=0.5,
                  max_steps=6, progress=False)
    assert history["steps"] == 6
    assert history["epochs"] == 2
    assert history["lr"] == [0.05, 0.025]
    with pytest.raises(BadInputError, match="empty"):
        fit(net, [], epochs=1, progress=False)


def test_progress_is_quiet_off_a_terminal(capfd):
    net = _Tiny()
    fit(net, PhantomDataset("plane", net.edge_config.preprocess, n=8, size=(32, 32)), epochs=1, batch_size=8)
    assert capfd.readouterr() == ("", "")


def test_val_set_is_scored_every_epoch():
    net = create_model("resnet8", task="anatomy", input_size=(32, 32))
    spec = net.edge_config.preprocess
    ds, val = PhantomDataset("anatomy", spec, n=8, size=(48, 48)), PhantomDataset("anatomy", spec, seed=5, n=4, size=(48, 48))
    history = fit(net, ds, epochs=2, batch_size=8, val_set=val, progress=False)
    assert len(history["val"]) == 2
    assert 0.0 <= history["val"][-1]["exact_match"] <= 1.0


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "ds"
    proc = run_cli("data", "synth", out, "--frames", "120", "--size", "48x64", "--streams", "6", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    return out


def test_cli_train_then_eval_round_trip(synth_data, tmp_path):
    ckpt = tmp_path / "orientation.pt"
    proc = run_cli("train", "--task", "orientation", "--model", "resnet8", "--data", synth_data, "--epochs", "2",
                   "--input", "32x32", "--batch-size", "16", "--out", ckpt)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout
    assert f"saved {ckpt}" in proc.stdout
    model, meta = load_model(ckpt)
    prov = meta["provenance"]
    assert model.edge_config.input_size == (32, 32)
    assert prov["epochs"] == 2
    assert prov["seed"] == 0
    split = prov["split"]
    assert split["train"]["frames"] + split["val"]["frames"] + split["test"]["frames"] == 120
    assert not set(split["train"]["groups"]) & set(split["test"]["groups"])
    assert len(prov["history"]["loss"]) == 2
    assert prov["elapsed_s"] > 0
    ev = run_cli("eval", ckpt, "--data", synth_data, "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["split"] == "test"
    assert result["n"] == split["test"]["frames"]
    assert result["accuracy"] == pytest.approx(prov["metrics"]["accuracy"])
    assert result["confusion_matrix"] == prov["metrics"]["confusion_matrix"]


def test_eval_of_a_checkpoint_without_a_test_split_asks_for_all(synth_data, tmp_path):
    ckpt = save_checkpoint(tmp_path / "bare.pt", create_model("resnet8", task="anatomy", input_size=(32, 32)))
    with pytest.raises(BadInputError, match="--split all"):
        evaluate(ckpt, synth_data)
    m = evaluate(ckpt, synth_data, split="all")
    assert m["n"] == 120
    assert m["split"] == "all"
    assert 0.0 <= m["exact_match"] <= 1.0


@pytest.mark.parametrize("args,needle", [
    (("train", "--task", "plane", "--model", "resnet8", "--data", "no/such/dir", "--out", "x.pt"), "not found"),
    (("train", "--task", "plane", "--model", "resnet8", "--data", ".", "--out", "x.pt", "--epochs", "0"), "--epochs"),
    (("eval", "no/such.pt", "--data", "."), "checkpoint not found"),
])
def test_cli_user_errors_are_one_line(args, needle):
    proc = run_cli(*args)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, proc.stderr
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_balance_draws_rare_classes_by_the_square_root_of_their_count():
    import numpy as np

    from edge.ml.data.dataset import TaskDataset
    from edge.ml.data.records import Sample
    from edge.ml.training.batches import make_loader

    img = np.zeros((16, 16), np.uint8)
    samples = [Sample(path=None, group="s", label="no plane", image=img) for _ in range(90)]
    samples += [Sample(path=None, group="s", label="AC", image=img) for _ in range(10)]
    ds = TaskDataset(samples, get_task("plane"), default_spec((16, 16)))
    drawn = lambda balance: torch.cat([y for _, y in make_loader(ds, "single_label", 25, shuffle=True,
                                                                  seed=3, balance=balance)])
    ac = get_task("plane").labels.index("AC")
    assert (drawn(False) == ac).sum() == 10                         # an epoch is the data, once each
    share = float((drawn(True) == ac).float().mean())
    assert 0.17 <= share <= 0.33, share              # 10% of the data; sqrt(10) / (sqrt(10) + sqrt(90)) = 0.25
    assert torch.equal(drawn(True), drawn(True))                     # seeded
    with pytest.raises(BadInputError, match="single-label"):
        make_loader(ds, "multi_label", 25, shuffle=True, balance=True)


def test_cli_balance_is_refused_for_a_detection_task(tmp_path):
    r = run_cli("train", "--task", "detection", "--model", "fasterrcnn_resnet10", "--balance",
                "--data", str(tmp_path), "--out", str(tmp_path / "d.pt"))
    assert r.returncode == 1
    assert "--balance is for single-label tasks" in r.stderr
    assert not (tmp_path / "d.pt").exists()


def _striped(seed: int, n: int, noise: float = 0.0):
    """16x16 frames whose class is the bright stripe's position; `noise` of the labels redrawn at random."""
    import numpy as np

    from edge.ml.data.records import Sample

    rng, labels = np.random.default_rng(seed), get_task("plane").labels
    out = []
    for i in range(n):
        img = rng.integers(0, 60, (16, 16)).astype(np.uint8)
        img[:, 4 * (i % 4):4 * (i % 4) + 4] += 150
        label = labels[rng.integers(4)] if rng.random() < noise else labels[i % 4]
        out.append(Sample(path=None, group=f"s{seed}", label=label, image=img))
    return out


def test_fit_restores_the_epoch_that_scored_best_on_val():
    from edge.ml.data.dataset import TaskDataset
    from edge.ml.training.evaluate import evaluate_model

    torch.manual_seed(0)
    net = _Tiny()
    spec, task = net.edge_config.preprocess, get_task("plane")
    # half the training labels are noise and the rate is far too high: the val figure swings
    ds, val = TaskDataset(_striped(1, 32, noise=0.5), task, spec), TaskDataset(_striped(2, 16), task, spec)
    history = fit(net, ds, epochs=6, batch_size=8, lr=1.0, val_set=val, progress=False, balance=False)
    f1 = [v["macro_f1"] for v in history["val"]]
    best = history["best_epoch"]
    assert history["selected_by"] == "macro_f1"
    assert history["epochs"] == 6
    assert best < 6, f1
    assert min(f1[best:]) < f1[best - 1], f1                               # a later epoch was worse
    assert f1[best - 1] == max(f1) == history["best"]
    assert evaluate_model(net, val)["macro_f1"] == pytest.approx(max(f1))  # and its weights came back
    assert not net.training

    torch.manual_seed(0)
    early = _Tiny()
    h = fit(early, ds, epochs=6, batch_size=8, lr=1.0, val_set=val, progress=False, balance=False, patience=1)
    assert h["epochs"] == h["best_epoch"] + 1 < 6                          # stopped one epoch after a best
    assert h["val"] == history["val"][:h["epochs"]]
    with pytest.raises(BadInputError, match="patience"):
        fit(early, ds, epochs=1, progress=False, patience=0)


def test_balancing_is_on_by_default_only_for_imbalanced_classes():
    from edge.ml.data.dataset import TaskDataset
    from edge.ml.training.batches import wants_balance

    task, spec = get_task("plane"), default_spec((16, 16))
    even = _striped(3, 16)
    skewed = even + [s for s in _striped(4, 40) if s.label == "no plane"]     # 14 no plane vs 4 of each
    assert not wants_balance(TaskDataset(even, task, spec), "single_label")
    assert wants_balance(TaskDataset(skewed, task, spec), "single_label")
    assert not wants_balance(TaskDataset(skewed, task, spec), "multi_label")
    for data, balance, used in ((even, None, False), (skewed, None, True), (skewed, False, False)):
        h = fit(_Tiny(), TaskDataset(data, task, spec), epochs=1, batch_size=8, progress=False, balance=balance)
        assert h["balance"] is used
        assert h["best_epoch"] is None
        assert h["selected_by"] is None


def test_train_records_the_recipe_and_no_balance_overrides(synth_data, tmp_path):
    from edge.ml.training.train import train

    path, _ = train("plane", "resnet8", synth_data, epochs=2, out=tmp_path / "p.pt", input_size=(32, 32),
                    batch_size=16, progress=False)
    recipe = load_model(path)[1]["provenance"]["recipe"]
    counts = recipe["balance"]["classes"]
    assert max(counts.values()) > 1.5 * min(counts.values())                # the phantom sweeps are skewed
    assert recipe["sampling"] == "class-balanced"
    assert recipe["balance"] == {**recipe["balance"], "asked": "auto", "used": True}
    assert recipe["augment"]["speckle"] > 0
    assert recipe["augment"]["flip"] == 0.5
    assert recipe["selection"]["by"] == "macro_f1"
    assert recipe["selection"]["epoch"] in (1, 2)
    assert recipe["scheduler"]["step_size"] == 1                             # the last epoch at lr/10
    ckpt = tmp_path / "u.pt"
    proc = run_cli("train", "--task", "plane", "--model", "resnet8", "--data", synth_data, "--epochs", "1",
                   "--input", "32x32", "--batch-size", "16", "--no-balance", "--out", ckpt)
    assert proc.returncode == 0, proc.stderr
    recipe = load_model(ckpt)[1]["provenance"]["recipe"]
    assert recipe["sampling"] == "uniform"
    assert recipe["balance"]["asked"] is False
