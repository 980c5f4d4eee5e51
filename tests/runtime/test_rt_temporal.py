"""Hysteresis on the plane model (runtime.temporal): a stable state, one event per crossing with its
best frame, the manifest's bounds, event rows in the JSONL, and the phantom's truth in frame info."""
from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from edge.core.errors import BadInputError, EdgekitError, FileFormatError
from runtime.bundle import load_bundle
from runtime.sources import open_source
from runtime.temporal import Hysteresis, check_settings, settings_for

LABELS = ["AC", "BPD", "FL", "no plane"]


def probs(ac: float, rest: str = "no plane") -> np.ndarray:
    """AC at `ac`, the remainder on `rest`."""
    p = np.zeros(4)
    p[0] = ac
    p[LABELS.index(rest)] += 1.0 - ac
    return p


def play(h: Hysteresis, seq) -> tuple[list, list]:
    states, events = [], []
    for i, p in enumerate(seq):
        state, _, ev = h.update(p, i, 0.1 * i, {"source": "test", "index": i})
        states.append(state)
        events += ev
    return states, events + h.finish()


def test_a_noisy_crossing_gives_one_stable_state_and_one_event_with_its_best_frame():
    rng = np.random.default_rng(0)
    ac = np.concatenate([rng.uniform(0.05, 0.35, 15),     # before: no plane
                         rng.uniform(0.45, 0.85, 30),     # the crossing: AC wavers about 0.6
                         rng.uniform(0.05, 0.35, 15)])    # after
    ac[30] = 0.97                                         # the crossing's clear best frame
    seq = [probs(a, "no plane" if i % 2 else "FL") for i, a in enumerate(ac)]
    raw = [LABELS[int(np.argmax(p))] for p in seq]
    assert sum(a != b for a, b in zip(raw, raw[1:])) > 10          # the raw answer flickers
    states, events = play(Hysteresis(LABELS, enter=0.6, leave=0.4, min_frames=2, model="plane"), seq)
    changes = [i for i in range(1, len(states)) if states[i] != states[i - 1]]
    assert len(changes) == 2, states                                 # in once, out once
    assert set(states[changes[0]:changes[1]]) == {"AC"}
    assert 15 <= changes[0] <= 20
    assert 44 <= changes[1] <= 46
    assert len(events) == 1
    e = events[0]
    assert (e["event"], e["model"], e["label"], e["closed_by"]) == ("plane_found", "plane", "AC", "left")
    assert e["start"] < changes[0]
    assert e["end"] == changes[1] - 1
    assert e["best"]["index"] == 30
    assert e["best"]["confidence"] == pytest.approx(0.97)
    assert e["best"]["t"] == pytest.approx(3.0)
    assert e["best"]["frame"] == {"source": "test", "index": 30}


def test_enter_and_leave_thresholds_are_respected():
    h = Hysteresis(LABELS, enter=0.6, leave=0.4, min_frames=2)
    states, events = play(h, [probs(0.599)] * 6)
    assert set(states) == {"no plane"}
    assert events == []
    seq = [probs(v) for v in (0.6, 0.6, 0.41, 0.40, 0.399, 0.9)]
    states, events = play(h, seq)
    assert states == ["no plane", "AC", "AC", "AC", "no plane", "no plane"]
    assert [(e["start"], e["end"], e["closed_by"]) for e in events] == [(0, 3, "left")]
    assert events[0]["best"]["index"] == 0                           # first of the equal best


def test_min_frames_must_be_consecutive():
    flicker = [probs(v) for v in (0.7, 0.2, 0.7, 0.2, 0.7, 0.2)]
    states, events = play(Hysteresis(LABELS, enter=0.6, leave=0.4, min_frames=2), flicker)
    assert set(states) == {"no plane"}
    assert events == []
    states, events = play(Hysteresis(LABELS, enter=0.6, leave=0.4, min_frames=1), flicker)
    assert states == ["AC", "no plane"] * 3
    assert len(events) == 3
    states, events = play(Hysteresis(LABELS, enter=0.6, leave=0.4, min_frames=3), [probs(0.7)] * 3)
    assert states == ["no plane", "no plane", "AC"]
    assert [(e["start"], e["end"], e["closed_by"]) for e in events] == [(0, 2, "end of run")]


def test_smoothing_and_a_switch_between_planes():
    # smoothing: one odd frame does not reach enter
    states, _ = play(Hysteresis(LABELS, enter=0.6, leave=0.4, min_frames=1, smooth=0.8),
                     [probs(0.1)] * 3 + [probs(0.9)] + [probs(0.1)] * 3)
    assert set(states) == {"no plane"}
    # in AC, BPD meets the entry rule while AC stays above leave: AC ends, BPD begins
    h = Hysteresis(LABELS, enter=0.5, leave=0.2, min_frames=2)
    seq = [np.array([0.8, 0.1, 0.0, 0.1])] * 3 + [np.array([0.25, 0.7, 0.0, 0.05])] * 3
    states, events = play(h, seq)
    assert states == ["no plane", "AC", "AC", "AC", "BPD", "BPD"]
    assert [(e["label"], e["start"], e["end"], e["closed_by"]) for e in events] == [
        ("AC", 0, 3, "left"), ("BPD", 3, 5, "end of run")]


@pytest.mark.parametrize("enter, leave, min_frames, smooth", [
    (0.4, 0.6, 2, 0.0), (1.2, 0.4, 2, 0.0), (0.6, -0.1, 2, 0.0), (float("nan"), 0.4, 2, 0.0),
    (0.6, 0.4, 0, 0.0), (0.6, 0.4, 101, 0.0), (0.6, 0.4, 2.0, 0.0), (0.6, 0.4, 2, 1.0)])
def test_impossible_settings_are_one_line_errors(enter, leave, min_frames, smooth):
    with pytest.raises(BadInputError) as exc:
        check_settings(enter, leave, min_frames, smooth)
    assert "\n" not in str(exc.value)


def _with_hysteresis(root, block) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["models"][0]["postprocess"]["hysteresis"] = block
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("block, text", [
    ({"enter": 0.4, "leave": 0.6, "min_frames": 2}, "leave"),
    ({"enter": 1.5, "leave": 0.4, "min_frames": 2}, "enter"),
    ({"enter": 0.6, "leave": 0.4, "min_frames": 0}, "min_frames"),
    ({"enter": 0.6, "leave": 0.4, "min_frames": 101}, "min_frames"),
    ({"enter": 0.6, "leave": 0.4, "min_frames": True}, "min_frames"),
    ({"enter": 0.6, "leave": 0.4}, "min_frames"),
    ({"enter": 0.6, "leave": 0.4, "min_frames": 2, "smooth": 1.0}, "smooth"),
    ({"enter": 0.6, "leave": 0.4, "min_frames": 2, "colour": "red"}, "colour"),
    ([0.6, 0.4, 2], "hysteresis"),
])
@pytest.mark.parametrize("with_jsonschema", [True, False])
def test_manifest_hysteresis_bounds_are_refused_in_one_line(fresh_bundle, monkeypatch, block, text, with_jsonschema):
    if not with_jsonschema:
        monkeypatch.setitem(sys.modules, "jsonschema", None)
    _with_hysteresis(fresh_bundle, block)
    with pytest.raises(FileFormatError) as exc:
        load_bundle(fresh_bundle, verify=False)
    message = str(exc.value)
    assert "hysteresis" in message
    assert text in message
    assert "\n" not in message


def test_settings_come_from_the_manifest_and_overrides(fresh_bundle):
    plain = load_bundle(fresh_bundle, verify=False)
    assert settings_for(plain.model("plane")) is None                   # no block: not tracked
    assert settings_for(plain.model("plane"), {"enter": 0.7})["enter"] == 0.7  # --enter switches it on
    assert settings_for(plain.model("anatomy"), {"enter": 0.7}) is None  # not a plane model
    _with_hysteresis(fresh_bundle, {"enter": 0.7, "leave": 0.3, "min_frames": 3})
    plane = load_bundle(fresh_bundle, verify=False).model("plane")
    assert settings_for(plane) == {"enter": 0.7, "leave": 0.3, "min_frames": 3, "smooth": 0.0}
    assert settings_for(plane, {"leave": 0.5, "enter": None})["leave"] == 0.5
    with pytest.raises(BadInputError, match="leave"):
        settings_for(plane, {"leave": 0.8})


def _grey_folder(tmp_path, values):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, v in enumerate(values):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), np.full((32, 32), v, np.uint8))
    return folder


def test_run_writes_event_rows_state_and_summary(plane_bundle, tmp_path, capsys):
    import runtime

    # tiny classifier (tests/runtime/rt_models.py): white -> AC 0.66, black -> BPD 0.66, mid grey -> 0.25 each
    folder = _grey_folder(tmp_path, [128] * 3 + [255] * 4 + [128] * 3 + [0] * 3)
    out = tmp_path / "run.jsonl"
    summary = runtime.run(plane_bundle, source=str(folder), headless=True, json_out=out, enter=0.6, leave=0.4,
                          log=lambda m: None)
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
            for line in out.read_text().splitlines()]
    frames = [r for r in rows if "index" in r and "models" in r]
    events = [r for r in rows if "event" in r]
    assert len(frames) == 13
    assert "summary" in rows[-1]
    assert len(rows) == 13 + 2 + 1
    assert [r["models"]["plane"]["state"] for r in frames] == (
        ["no plane"] * 4 + ["AC"] * 3 + ["no plane"] * 4 + ["BPD"] * 2)
    assert frames[0]["models"]["plane"]["label"] == "AC"                 # raw answers unchanged
    assert [(e["label"], e["start"], e["end"], e["closed_by"]) for e in events] == [
        ("AC", 3, 6, "left"), ("BPD", 10, 12, "end of run")]
    assert rows.index(events[0]) == rows.index(frames[7]) + 1            # right after the frame that closed it
    assert events[0]["best"]["frame"]["file"] == "f003.png"
    assert events[0]["best"]["index"] == 3
    assert summary["events"]["count"] == 2
    assert summary["events"]["list"] == events
    assert rows[-1]["summary"]["events"]["count"] == 2
    from runtime.stats import format_summary

    assert "events: 2 plane found" in format_summary(summary)
    assert "plane_found: plane AC: frames 3-6" in capsys.readouterr().out   # the console line


def test_a_bundle_without_hysteresis_keeps_its_rows(plane_bundle, tmp_path):
    import runtime

    out = tmp_path / "run.jsonl"
    summary = runtime.run(plane_bundle, source=str(_grey_folder(tmp_path, [255] * 4)), headless=True,
                          json_out=out, log=lambda m: None)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    assert not any("event" in r for r in rows)
    assert "state" not in rows[0]["models"]["plane"]
    assert summary["events"]["count"] == 0


def test_bad_enter_leave_is_refused_before_the_run(plane_bundle, tmp_path):
    import runtime

    with pytest.raises(EdgekitError, match="leave") as exc:
        runtime.run(plane_bundle, source="phantom?realtime=0&frames=1", headless=True, enter=0.3, leave=0.5)
    assert "\n" not in str(exc.value)


def test_overlay_draws_the_state_and_the_last_event(plane_bundle):
    from runtime.overlay import draw_overlay
    from runtime.pipeline import Pipeline
    from runtime.sources import Frame

    bundle = load_bundle(plane_bundle)
    with Pipeline(bundle, backend="onnxruntime", hysteresis={"enter": 0.6}) as pipe:
        results = [pipe.process(Frame(np.full((32, 32), v, np.uint8), 0.0, i)) for i, v in enumerate([255] * 3)]
    assert results[-1].outputs["plane"].state == "AC"
    event = {"event": "plane_found", "model": "plane", "label": "AC", "start": 0, "end": 2,
             "best": {"index": 1, "t": 0.0, "confidence": 0.66, "frame": {}}, "closed_by": "left"}
    image = np.zeros((200, 320), np.uint8)
    plain, marked = draw_overlay(image, results[-1]), draw_overlay(image, results[-1], last_event=event)
    assert (plain != marked).any()                    # the event line is drawn
    assert (plain[50:80] != 0).any()                  # the state line below the label


def test_phantom_frames_carry_their_truth():
    from edge.core.phantom import sweep

    frames = list(_read(open_source("phantom:3?realtime=0&frames=40&width=160&height=96")))
    truth = list(sweep(seed=3, frames=40, height=96, width=160))
    for f, t in zip(frames, truth):
        info = f.info["truth"]
        assert (info["plane"], info["orientation"], info["anatomy"]) == (t.plane, t.orientation, list(t.anatomy))
        assert [b["label"] for b in info["boxes"]] == [b[0] for b in t.boxes]
        assert all(len(b["box"]) == 4 for b in info["boxes"])
        json.loads(json.dumps(f.info, allow_nan=False))
    assert any(f.info["truth"]["boxes"] for f in frames)
    assert "truth" not in next(_read(open_source("phantom:3?realtime=0&frames=1&truth=0"))).info


def _read(src):
    with src:
        while (f := src.read()) is not None:
            yield f
