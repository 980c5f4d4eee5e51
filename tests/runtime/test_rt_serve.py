"""`--serve` (`runtime.serve`): the page and its data match what the loop wrote, safe by default (a
loopback address that answers to localhost only; elsewhere a token on every request; read-only; no
path from a request), events with thumbnails of their best frames, a stalled client never slows the
loop and a fifth stream gets 503; a bad `--serve` is a usage error, a busy port or a foreign address
one line, and an install without aiohttp says what to install. The browser test is
test_rt_serve_browser.py."""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import time

import cv2
import numpy as np
import pytest

from runtime.pipeline import Result
from runtime.postprocess import ModelOutput
from runtime.serve import ServeOutput, parse_address
from runtime.sources import Frame
from tests.conftest import assert_one_error, assert_usage_error, edgekit_exe, run_main

needs_aiohttp = pytest.mark.skipif(importlib.util.find_spec("aiohttp") is None,
                                   reason="aiohttp is not installed (the serve extra: pip install -e '.[serve]')")


@pytest.mark.parametrize("text, expected", [
    (None, ("127.0.0.1", 8080)), ("", ("127.0.0.1", 8080)), ("9000", ("127.0.0.1", 9000)),
    (":0", ("127.0.0.1", 0)), ("0.0.0.0:8080", ("0.0.0.0", 8080)), ("jetson.local:80", ("jetson.local", 80)),
    ("localhost:", ("localhost", 8080)), ("[::1]:8081", ("::1", 8081)), ("[::]", ("::", 8080)),
])
def test_serve_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["65536", "host:99999", "a b:80", "::1:80", "[::1", "[zz]:80", "[::1]x", "host",
                                  "host:-1", "-x:80", "h/x:80"])
def test_malformed_serve_addresses_are_refused(text):
    from edge.core.errors import BadInputError

    with pytest.raises(BadInputError, match=r"is not \[HOST:\]PORT"):
        parse_address(text)


def fake(index: int, state: str = "no plane", conf: float = 0.8, width: int = 160):
    """A result and frame as the loop hands them over: a plane model tracked with hysteresis."""
    t = time.monotonic()
    image = np.zeros((90, width, 3), np.uint8)
    image[:, (index * 7) % width] = 255
    out = ModelOutput("plane", "single_label", label="AC", confidence=conf,
                      confidences={"AC": conf, "no plane": round(1 - conf, 5)}, tracked=True, state=state,
                      state_confidence=conf)
    return Result(index, t, t, done=t + 0.002, outputs={"plane": out}), Frame(image, t, index, {"source": "test"})


def get(out: ServeOutput, path: str, headers=None, method="GET", timeout=10.0):
    """(status, headers, body) of one request to the running server."""
    conn = http.client.HTTPConnection("127.0.0.1", out.port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


@pytest.fixture
def served():
    outs = []

    def make(*args, **kwargs) -> ServeOutput:
        out = ServeOutput(*args, log=lambda m: None, **kwargs).start()
        outs.append(out)
        return out

    yield make
    for out in outs:
        out.close()


@needs_aiohttp
def test_loopback_page_frame_and_state_answer_localhost_only(served):
    out = served("127.0.0.1:0")
    assert out.token is None
    assert out.url == f"http://127.0.0.1:{out.port}/"
    status, headers, body = get(out, "/")
    assert status == 200
    assert b"app.js" in body
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert get(out, "/frame.jpg")[0] == 503                       # no frame yet
    for i in range(1, 6):
        result, frame = fake(i, conf=0.5 + i / 20)
        out.write(result, frame)
    status, _, body = get(out, "/state.json")
    state = json.loads(body)
    assert state["frame"]["index"] == 5
    assert state["frames"] == 5
    assert state["models"] == result.to_dict()["models"]        # the JSONL row's own answers
    assert state["window"]["frames"] == 5
    assert state["power"] is None
    status, headers, body = get(out, "/frame.jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Frame-Index"] == "5"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (90, 160, 3)
    assert get(out, "/", headers={"Host": f"evil.example:{out.port}"})[0] == 403   # DNS rebinding
    with socket.create_connection(("127.0.0.1", out.port), timeout=10) as raw:   # HTTP/1.0, no Host header
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert raw.recv(64).split(b"\r\n")[0].endswith(b" 403 Forbidden")
    assert get(out, "/state.json", method="POST")[0] == 405
    assert get(out, "/stream.mjpg", method="HEAD")[0] == 200                      # answers, holds no stream
    for path in ("/../../etc/passwd", "/event/1.jpg", "/event/x.jpg", "/static/../manifest.json", "/app.js/.."):
        assert get(out, path)[0] == 404, path


@needs_aiohttp
def test_a_token_is_checked_on_every_request(served):
    token = "test-token-0123456789"
    out = served("127.0.0.1:0", token=token)
    assert out.url.endswith(f"/?token={token}")
    for path in ("/", "/app.js", "/state.json", "/frame.jpg", "/stream.mjpg", "/event/1.jpg"):
        assert get(out, path)[0] == 401, path
        assert get(out, path + "?token=wrong-token-0123456789")[0] == 401, path
    status, _, page = get(out, f"/?token={token}")
    assert status == 200
    assert f"app.js?token={token}".encode() in page
    assert get(out, "/state.json", headers={"X-Edgekit-Token": token})[0] == 200
    assert get(out, "/state.json", headers={"Authorization": f"Bearer {token}"})[0] == 200


@needs_aiohttp
def test_any_other_address_makes_a_token_unless_given(monkeypatch):
    monkeypatch.delenv("EDGEKIT_SERVE_TOKEN", raising=False)
    made = ServeOutput("0.0.0.0:0")             # not started: the token is decided before binding
    assert made.token_made
    assert len(made.token) >= 20
    assert made.token != ServeOutput("0.0.0.0:0").token
    monkeypatch.setenv("EDGEKIT_SERVE_TOKEN", "from-the-environment")
    assert ServeOutput("0.0.0.0:0").token == "from-the-environment"
    assert ServeOutput("127.0.0.1:0", token="given-on-the-line").token == "given-on-the-line"


@needs_aiohttp
def test_an_event_gets_a_thumbnail_of_its_best_frame(served):
    out = served("127.0.0.1:0")
    confs = {3: 0.7, 4: 0.8, 5: 0.9, 6: 0.95, 7: 0.85, 8: 0.7}
    for i in range(1, 13):
        result, frame = fake(i, state="AC" if i in confs else "no plane", conf=confs.get(i, 0.2), width=640)
        out.write(result, frame)
    out.write_event({"event": "plane_found", "model": "plane", "label": "AC", "start": 3, "end": 8,
                     "best": {"index": 6, "t": 0.0, "confidence": 0.95, "frame": {}}, "closed_by": "left"})
    deadline = time.monotonic() + 10
    while True:
        (event,) = json.loads(get(out, "/state.json")[2])["events"]
        if event["thumbnail"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert event["shown"] == 6
    assert event["text"] == "plane AC: frames 3-8, best #6 (0.95)"
    status, headers, body = get(out, "/" + event["thumbnail"])
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    thumb = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[1] == 240
    assert out.events[0]["frame"] is None                   # the frame is let go once drawn


@needs_aiohttp
def test_stalled_streams_never_slow_the_loop_and_a_fifth_gets_503(served):
    out = served("127.0.0.1:0")
    out.write(*fake(0, width=640))
    stalled = []
    for _ in range(4):                                     # four clients that read nothing after the headers
        conn = http.client.HTTPConnection("127.0.0.1", out.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        stalled.append(conn)
    status, headers, _ = get(out, "/stream.mjpg")
    assert status == 503
    assert headers["Retry-After"]
    slowest = 0.0
    for i in range(1, 301):
        result, frame = fake(i, width=640)
        t = time.perf_counter()
        out.write(result, frame)
        slowest = max(slowest, time.perf_counter() - t)
        time.sleep(0.002)
    assert slowest < 0.05, slowest                         # a reference swap, whatever the clients do
    assert json.loads(get(out, "/state.json")[2])["frame"]["index"] == 300
    time.sleep(1.0 / out.max_fps)                          # frames are drawn at most max_fps times a second
    assert get(out, "/frame.jpg")[1]["X-Frame-Index"] == "300"
    for conn in stalled:
        conn.close()


def test_without_aiohttp_serve_says_what_to_install(plane_bundle, tmp_path):
    import subprocess

    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass _No:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'aiohttp' or name.startswith('aiohttp.'):\n"
        "            raise ModuleNotFoundError('blocked', name=name)\n"
        "sys.meta_path.insert(0, _No())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([edgekit_exe(), "run", str(plane_bundle), "--headless", "--frames", "1", "--serve"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert_one_error(proc, 'install the serve extra: pip install "edgekit[serve]"')


@pytest.mark.parametrize("args, needle", [
    (["--serve", "70000"], "0..65535"), (["--serve", "bad host:80"], "not a host name"),
    (["--serve-token", "a-token-of-some-length"], "needs --serve"), (["--serve", "--serve-token", "short"], "12 to 256"),
])
def test_bad_serve_values_are_usage_errors(capsys, plane_bundle, args, needle):
    assert_usage_error(run_main(capsys, "run", plane_bundle, *args), needle)


@needs_aiohttp
def test_a_busy_port_or_a_foreign_address_is_one_line(capsys, plane_bundle):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_main(capsys, "run", plane_bundle, "--headless", "--frames", "1", "--serve", f"127.0.0.1:{port}")
    assert_one_error(proc, "the port is in use")
    proc = run_main(capsys, "run", plane_bundle, "--headless", "--frames", "1", "--serve", "192.0.2.1:8080")
    assert_one_error(proc, "not an address of this machine")


def test_serve_alone_takes_the_default_address():
    from edge.app.cli.run import serve_value_optional

    assert serve_value_optional(["b", "--serve"]) == ["b", "--serve", ""]
    assert serve_value_optional(["--serve", "b"]) == ["--serve", "", "b"]
    assert serve_value_optional(["b", "--serve", "--headless"]) == ["b", "--serve", "", "--headless"]
    assert serve_value_optional(["b", "--serve", "0.0.0.0:80", "-n", "2"]) == ["b", "--serve", "0.0.0.0:80", "-n", "2"]
    assert serve_value_optional(["b", "--serve", "9000"]) == ["b", "--serve", "9000"]
    assert serve_value_optional(["b", "--", "--serve"]) == ["b", "--", "--serve"]
