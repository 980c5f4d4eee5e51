"""`edgekit run --serve` in a real browser: the installed `edgekit` serves a phantom sweep, headless
Chromium (Debian's `chromium` package; .ci/run installs it) loads the page twice a second apart and
once more for its DOM: the frame on the page changes between the two screenshots, and every model's
answer and confidence on the page is the one the JSONL row of that frame holds. Skipped, saying why,
where Chromium or aiohttp is missing."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from tests.conftest import edgekit_exe

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: apt-get install -y chromium"),
    pytest.mark.skipif(importlib.util.find_spec("aiohttp") is None,
                       reason="aiohttp is not installed (the serve extra: pip install -e '.[serve]')"),
]


def chromium(url: str, profile, *action: str) -> subprocess.CompletedProcess:
    """One headless Chromium load of `url`, its scripts run for 2.5 s of virtual time, then `action`."""
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                           "--window-size=1280,800", "--virtual-time-budget=2500", *action, url],
                          capture_output=True, text=True, timeout=120)


class PageAnswers(HTMLParser):
    """What the page shows: the frame index and, per model row, the label and confidence it carries."""

    def __init__(self):
        super().__init__()
        self.index, self.status, self.models = None, None, {}
        self._row, self._capture = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-model" in a:
            self._row = self.models.setdefault(a["data-model"], {})
        elif tag == "td" and self._row is not None and a.get("class") == "answer":
            self._row["label"] = a.get("data-label")
        elif tag == "td" and self._row is not None and a.get("class") == "conf":
            self._row["confidence"] = a.get("data-value")
        elif a.get("id") in ("frame-index", "status"):
            self._capture = a["id"]

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._capture == "frame-index":
            self.index = int(data)
        elif self._capture == "status":
            self.status = data
        self._capture = None


def _wait_for_url(proc, stderr_path, timeout=90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serve: live view at (http://\S+)", stderr_path.read_text())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"edgekit run --serve printed no URL:\n{stderr_path.read_text()[-2000:]}")


def test_the_live_view_in_a_browser_shows_the_frames_and_the_jsonl_answers(plane_bundle, tmp_path):
    jsonl, out_path, err_path = tmp_path / "run.jsonl", tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([edgekit_exe(), "run", str(plane_bundle), "--source", "phantom:3?width=336&height=195",
                                 "--headless", "--json-out", str(jsonl), "--enter", "0.6", "--leave", "0.4",
                                 "--serve", "127.0.0.1:0"], stdout=out, stderr=err, cwd=tmp_path)
    try:
        url = _wait_for_url(proc, err_path)
        shots = []
        for name in ("first.png", "second.png"):
            r = chromium(url, tmp_path / "profile", f"--screenshot={tmp_path / name}")
            assert r.returncode == 0, r.stderr[-2000:]
            shots.append(cv2.imread(str(tmp_path / name)))
            time.sleep(1.0)
        dom = chromium(url, tmp_path / "profile", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 143, err_path.read_text()[-2000:]

    # the frame: the image fills the left column (x 15..765, y 56..490 at 1280 wide); below the overlay text
    region = (slice(260, 470), slice(40, 720))
    first, second = (s[region].astype(np.int16) for s in shots)
    assert first.std() > 5, "no ultrasound frame on the page"
    assert np.abs(first - second).mean() > 1.0, "the frame did not change between the two screenshots"

    page = PageAnswers()
    page.feed(dom.stdout)
    assert page.status == "live"
    assert page.index is not None, dom.stdout[-3000:]
    assert page.models, dom.stdout[-3000:]
    rows = {r["index"]: r for r in map(json.loads, jsonl.read_text().splitlines()) if "models" in r}
    row = rows[page.index]["models"]                      # the frame the page shows is in the JSONL
    assert set(page.models) == set(row)
    for name, shown in page.models.items():
        assert shown["label"] == row[name]["label"], name
        assert float(shown["confidence"]) == row[name]["confidence"], name
