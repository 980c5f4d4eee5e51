"""`edgekit run --serve`: what the models see, live in a browser beside the probe.

A device runs headless (the base install has no OpenCV windows); a browser on its network is the
display every portable setup has. `ServeOutput` is one more output of the loop (`runtime.outputs`):
the loop hands it each result and frame, and a small web server in its own thread shows

- the newest frame with the overlay drawn on it (`runtime.overlay`), as `/frame.jpg` (the page polls
  it) and `/stream.mjpg` (for VLC, ffplay or a bare <img>);
- every model's answer with its confidence, and a tracked model's stable state (`/state.json`: the
  same `Result.to_dict()` the JSONL rows carry), FPS and latency over the last `WINDOW_S` seconds,
  board power, energy per frame and the hottest thermal zone on a Jetson (`runtime.power`);
- the "plane found" events (`runtime.temporal`), each with a thumbnail of its best frame.

The web library is aiohttp (the `serve` extra): a well-kept asyncio server that runs in one thread
with its own event loop, streams responses without a thread per client, installs no signal handlers
(the loop owns Ctrl-C and SIGTERM), and has wheels for Python 3.8 to 3.13 on aarch64 (JetPack 5 and
6) and x86-64. Without it `--serve` says in one line what to install.

The loop is never slowed by a browser: `write` swaps one reference (the newest result and frame: a
one-slot holder, older ones are simply replaced) and appends to two bounded deques; the server
thread draws and JPEG-encodes (OpenCV releases the GIL), at most `MAX_FPS` times a second and only
while someone asks, and every client gets the newest frame or none. A stream client that stalls
for `STALL_S` is dropped; at most `MAX_STREAMS` streams and `MAX_REQUESTS` other requests at once
(one more gets 503).

Safe by default: it listens on 127.0.0.1 (this machine only) unless told otherwise, and then checks
the Host header (a web page elsewhere cannot reach it through DNS rebinding). Any other address
needs a token (`--serve-token`, or EDGEKIT_SERVE_TOKEN; else one is made with `secrets` and printed
with the URL), checked on every request (`?token=` or an `X-Edgekit-Token` / `Authorization:
Bearer` header; the page carries it on its own requests). Every endpoint is read-only (GET and HEAD),
none takes a file path: thumbnails are looked up by number in memory. Frames can identify a patient:
keep the server on a network you trust, with a token.

    >>> out = ServeOutput("127.0.0.1:0"); out.start(); out.url          # doctest: +SKIP
    'http://127.0.0.1:41235/'
"""
from __future__ import annotations

import asyncio
import errno
import hmac
import html
import ipaddress
import itertools
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque

import cv2

from edge.core.errors import BadInputError, EdgekitError, UnsupportedError
from runtime.outputs import Output, strict_json
from runtime.overlay import draw_overlay
from runtime.temporal import BACKGROUND, describe_event

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
TOKEN_ENV = "EDGEKIT_SERVE_TOKEN"
INSTALL = 'pip install "edgekit[serve]" (from a clone: pip install ".[serve]")'
MAX_STREAMS = 4          # MJPEG streams at once; one more gets 503
MAX_REQUESTS = 32        # other requests in flight at once; one more gets 503
MAX_FPS = 15.0           # frames drawn and encoded per second at most, however many clients
WINDOW_S = 5.0           # FPS and latency on the page: over the last seconds
EVENTS_KEPT = 50         # events the page lists (with thumbnails); the summary counts them all
RECENT = 8               # the last frames kept (references) to find an event's best frame
THUMB_WIDTH = 240
MAX_WIDTH = 1280         # wider frames are scaled down for the browser
JPEG_QUALITY = 80
STALL_S = 10.0           # a stream client that accepts no frame for this long is dropped
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{12,256}")
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_address(text) -> tuple[str, int]:
    """`--serve`'s value -> (host, port): '' (the default, 127.0.0.1:8080), PORT, :PORT, HOST:PORT,
    HOST: or [IPv6]:PORT; port 0 asks for any free port. A malformed value raises BadInputError."""
    s = "" if text is None else str(text).strip()
    if not s:
        return DEFAULT_HOST, DEFAULT_PORT

    def bad(why: str) -> BadInputError:
        return BadInputError(f"--serve {s!r} is not [HOST:]PORT ({why}); e.g. --serve 8080, --serve 0.0.0.0:8080 "
                             f"or --serve [::1]:8080")

    if s.isdigit():
        host, port = DEFAULT_HOST, s
    elif s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise bad("an IPv6 address needs its closing ]")
        host, rest = s[1:end], s[end + 1:]
        if rest and not rest.startswith(":"):
            raise bad("expected :PORT after the ]")
        port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port = s.rpartition(":")
        if not sep:
            raise bad("no port; a bare number is a port, HOST:PORT names both")
        if ":" in host:
            raise bad("an IPv6 address goes in brackets, as [::1]:8080")
        host = host or DEFAULT_HOST
        if len(host) > 253 or not _HOSTNAME.fullmatch(host):
            raise bad(f"{host!r} is not a host name or an IPv4 address")
    if port == "":
        return host, DEFAULT_PORT
    if not port.isdigit() or int(port) > 65535:
        raise bad(f"port {port!r} is not a number 0..65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Only this machine can connect: localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise BadInputError("--serve-token must be 12 to 256 characters of A-Z a-z 0-9 . _ ~ - (it travels in "
                            "URLs); leave it out and edgekit makes one")
    return token


def require_aiohttp():
    """aiohttp's `web` module, or one line saying which extra to install."""
    try:
        from aiohttp import web
    except ImportError as exc:
        raise UnsupportedError(f"--serve needs aiohttp ({exc.name or 'aiohttp'} is not installed); install the "
                               f"serve extra: {INSTALL}") from None
    return web


def _listen_error(exc: BaseException, host: str, port: int) -> EdgekitError:
    where = f"--serve {host}:{port}"
    if isinstance(exc, socket.gaierror):
        return BadInputError(f"{where}: cannot resolve the host {host!r} ({exc.strerror}); pass an address of this "
                             f"machine such as 127.0.0.1 (this machine only) or 0.0.0.0 (every network it is on)")
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return BadInputError(f"{where}: the port is in use (another edgekit run?); pass another port, or 0 for any "
                             f"free one (e.g. --serve {host}:0)")
    if code == errno.EADDRNOTAVAIL:
        return BadInputError(f"{where}: {host} is not an address of this machine; use 127.0.0.1 (this machine "
                             f"only) or 0.0.0.0 (every network it is on)")
    if code == errno.EACCES:
        return BadInputError(f"{where}: not allowed to listen there (ports below 1024 need root); use a port "
                             f"above 1023, e.g. 8080")
    return BadInputError(f"{where}: cannot listen there ({type(exc).__name__}: {exc}); pass another address")


class ServeOutput(Output):
    """The live view: an output of the loop whose server runs in its own thread (see the module doc).

    `address` is `--serve`'s value (see `parse_address`); `token` (or EDGEKIT_SERVE_TOKEN) is checked on
    every request, and made up when the address is not a loopback one; `power` a started
    `runtime.power.PowerMonitor` or None; `about` a few words on the run for the page (bundle, source).
    `start()` binds (a bad address or a busy port is one error line) and logs the URL."""

    def __init__(self, address=None, token: str | None = None, power=None, log=_stderr, about: dict | None = None,
                 max_streams: int = MAX_STREAMS, max_fps: float = MAX_FPS):
        require_aiohttp()
        self.host, self.port = parse_address(address)
        self.loopback = is_loopback(self.host)
        token = token or os.environ.get(TOKEN_ENV) or None
        self.token_made = token is None and not self.loopback
        self.token = check_token(token) if token is not None else (secrets.token_urlsafe(18) if self.token_made else None)
        self.power, self.log, self.about = power, log, dict(about or {})
        self.max_streams, self.max_fps = int(max_streams), float(max_fps)
        self.url: str | None = None
        self.running = False
        # What the loop hands over: a reference swap and bounded deque appends (atomic under the GIL)
        self.latest = None                              # (result, frame): the one-slot holder
        self.frames = 0
        self.window: deque = deque(maxlen=4096)         # (done, latency_ms) of the last frames
        self._recent: deque = deque(maxlen=RECENT)      # (frame, result), to find an event's best frame
        self._best: dict = {}                           # (model, state) -> (confidence, frame, result)
        self.events: deque = deque(maxlen=EVENTS_KEPT)  # {"id", "event", "frame", "result", "thumb"}
        self.events_total = 0
        self._ids = itertools.count(1)
        self._server = _Server(self)

    # -- the loop's side: no drawing, no encoding, no I/O, no locks ---------------------------------
    def write(self, result, frame) -> None:
        self.latest = (result, frame)
        self.frames += 1
        self.window.append((result.done, result.latency_ms))
        self._recent.append((frame, result))
        for name, out in result.outputs.items():
            if out.tracked and out.state not in (None, BACKGROUND) and out.state_confidence is not None:
                key = (name, out.state)
                best = self._best.get(key)
                if best is None or out.state_confidence > best[0]:
                    self._best[key] = (out.state_confidence, frame, result)

    def write_event(self, event: dict) -> None:
        """Keep the event with a reference to its best frame (the server thread makes the thumbnail)."""
        best = self._best.pop((event.get("model"), event.get("label")), None)
        want = (event.get("best") or {}).get("index")
        shown = None
        if best is not None and best[1].index == want:
            shown = best[1:]
        else:
            shown = next(((f, r) for f, r in reversed(self._recent) if f.index == want), None)
            if shown is None and best is not None:   # best before the state was entered: its best within it
                shown = best[1:]
        self.events.append({"id": next(self._ids), "event": event, "frame": shown[0] if shown else None,
                            "result": shown[1] if shown else None, "thumb": None,
                            "shown": shown[0].index if shown else None})
        self.events_total += 1

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> "ServeOutput":
        self._server.start()
        self.running = True
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?token={self.token}" if self.token else ""
        self.url = f"http://{host}:{self.port}/{query}"
        if self.host in ("0.0.0.0", "::"):
            self.log(f"serve: live view on every network of this machine, port {self.port}: open "
                     f"http://<this device's address>:{self.port}/{query} in a browser")
        else:
            self.log(f"serve: live view at {self.url}")
        if self.token_made:
            self.log(f"serve: the token {self.token} was made for this run and is needed on every request "
                     f"(choose one with --serve-token or {TOKEN_ENV})")
        return self

    def close(self) -> None:
        self.running = False
        self._server.stop()

    # -- what the server reads -----------------------------------------------------------------------
    def state(self) -> dict:
        """The page's data: the newest frame's answers (as in the JSONL), FPS and latency over the last
        seconds, power, the events."""
        now = time.monotonic()
        window = [(t, ms) for t, ms in tuple(self.window) if now - t <= WINDOW_S]
        span = window[-1][0] - window[0][0] if len(window) > 1 else 0.0
        fps = (len(window) - 1) / span if span > 0 else 0.0
        lat = sorted(ms for _, ms in window)
        d = {"running": self.running, "frames": self.frames, "about": self.about,
             "window": {"seconds": WINDOW_S, "frames": len(window), "fps": round(fps, 2),
                        "latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95)}},
             "events_total": self.events_total,
             "events": [self._event_view(e) for e in reversed(tuple(self.events))]}
        latest = self.latest
        if latest is not None:
            result, frame = latest
            row = result.to_dict()
            info = frame.info or {}
            d["frame"] = {"index": result.index, "latency_ms": row["latency_ms"],
                          **{k: info[k] for k in ("source", "file", "frame") if k in info}}
            d["models"] = row["models"]
        d["power"] = self._power(fps)
        return d

    def _power(self, fps: float) -> dict | None:
        if self.power is None:
            return None
        fields = self.power.frame_fields(None)
        if fields is None:
            return None
        w = fields["board_w"]
        fields["mj"] = round(w * 1000.0 / fps, 3) if w is not None and fps > 0 else None   # W / (frames/s)
        fields.update(source=self.power.source, rail=self.power.rail)
        return fields

    def _event_view(self, entry: dict) -> dict:
        e = entry["event"]
        return {"id": entry["id"], "text": describe_event(e), "model": e.get("model"), "label": e.get("label"),
                "start": e.get("start"), "end": e.get("end"), "closed_by": e.get("closed_by"),
                "best": {k: (e.get("best") or {}).get(k) for k in ("index", "confidence")},
                "shown": entry["shown"],
                "thumbnail": f"event/{entry['id']}.jpg" if entry["thumb"] is not None else None}


def _pct(sorted_values, p: float):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return round(sorted_values[i], 3)


def _jpeg(image, width: int | None = None) -> bytes:
    h, w = image.shape[:2]
    target = width or (MAX_WIDTH if w > MAX_WIDTH else None)
    if target and w != target:
        image = cv2.resize(image, (target, max(1, round(h * target / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def render_frame(result, frame, fps: float, last_event) -> bytes:
    """The frame with its overlay, as JPEG bytes (runs in the server's encoder thread)."""
    return _jpeg(draw_overlay(frame.image, result, fps, last_event))


def render_thumbnail(result, frame) -> bytes:
    return _jpeg(draw_overlay(frame.image, result, text=False), THUMB_WIDTH)


class _Server:
    """aiohttp in a thread of its own: routes, the guard on every request, the encoder."""

    def __init__(self, out: ServeOutput):
        self.out = out
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.closing = False
        self.streams = 0
        self.requests = 0
        self._cache = (None, None, 0.0)            # (frame index, jpeg bytes, when it was drawn)
        self._pool = None
        self._lock: asyncio.Lock | None = None

    # -- thread ---------------------------------------------------------------------------------------
    def start(self) -> None:
        web = require_aiohttp()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(web, ready), name="edgekit-serve", daemon=True)
        self.thread.start()
        ready.wait()
        if self.error is not None:
            self.thread.join(timeout=5.0)
            raise self.error

    def _main(self, web, ready: threading.Event) -> None:
        from concurrent.futures import ThreadPoolExecutor

        loop = self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgekit-serve-jpeg")
        runner = None
        try:
            try:
                runner = loop.run_until_complete(self._setup(web))
            except Exception as exc:
                self.error = _listen_error(exc, self.out.host, self.out.port)
                return
            finally:
                ready.set()
            housekeeping = loop.create_task(self._thumbnails())
            loop.run_forever()
            housekeeping.cancel()
            try:
                loop.run_until_complete(housekeeping)
            except asyncio.CancelledError:
                pass
        finally:
            try:
                if runner is not None:
                    loop.run_until_complete(runner.cleanup())
            finally:
                self._pool.shutdown(wait=False)
                loop.close()

    async def _setup(self, web):
        self._lock = asyncio.Lock()
        app = web.Application(middlewares=[self._guard(web)], client_max_size=1024)
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/", self._page(web))
        app.router.add_get("/app.js", self._script(web))
        app.router.add_get("/frame.jpg", self._frame(web))
        app.router.add_get("/stream.mjpg", self._stream(web))
        app.router.add_get("/state.json", self._state(web))
        app.router.add_get(r"/event/{id:\d{1,9}}.jpg", self._thumb(web))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.out.host, self.out.port, backlog=16).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.out.port = runner.addresses[0][1]      # the port asked for, or the free one port 0 got
        return runner

    def stop(self) -> None:
        self.closing = True
        loop, thread = self.loop, self.thread
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:                         # the loop already closed
            pass
        thread.join(timeout=5.0)

    # -- the guard: methods, token, Host ---------------------------------------------------------------
    def _guard(self, web):
        out = self.out
        local_hosts = set(_LOCAL_NAMES)

        @web.middleware
        async def guard(request, handler):
            if request.method not in ("GET", "HEAD"):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], text="read-only: GET only\n")
            if out.token is not None:
                given = request.query.get("token") or request.headers.get("X-Edgekit-Token") or ""
                auth = request.headers.get("Authorization", "")
                if not given and auth.lower().startswith("bearer "):
                    given = auth[7:].strip()
                if not hmac.compare_digest(given.encode(), out.token.encode()):
                    raise web.HTTPUnauthorized(text="a token is needed: open the URL edgekit run printed "
                                                    "(?token=...)\n")
            elif _host_name(request.headers.get("Host")) not in local_hosts:   # DNS rebinding onto 127.0.0.1
                raise web.HTTPForbidden(text="this live view answers to localhost only\n")
            if request.path == "/stream.mjpg":                      # bounded by MAX_STREAMS
                return await handler(request)
            if self.requests >= MAX_REQUESTS:
                raise web.HTTPServiceUnavailable(text="busy: too many requests at once\n", headers={"Retry-After": "1"})
            self.requests += 1
            try:
                return await handler(request)
            finally:
                self.requests -= 1

        return guard

    @staticmethod
    async def _headers(request, response) -> None:
        h = response.headers
        h["Cache-Control"] = "no-store"
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        h["Content-Security-Policy"] = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                                        "img-src 'self'; connect-src 'self'; frame-ancestors 'none'")

    # -- rendering ------------------------------------------------------------------------------------
    async def newest_jpeg(self):
        """(jpeg bytes, frame index) of the newest frame, drawn at most max_fps times a second; (None,
        None) before the first frame."""
        latest = self.out.latest
        if latest is None:
            return None, None
        async with self._lock:
            index, body, when = self._cache
            latest = self.out.latest
            result, frame = latest
            now = time.monotonic()
            if body is not None and (index == result.index or now - when < 1.0 / self.out.max_fps):
                return body, index
            fps = _window_fps(self.out.window)
            last = self.out.events[-1]["event"] if self.out.events else None
            body = await asyncio.get_running_loop().run_in_executor(
                self._pool, render_frame, result, frame, fps, last)
            self._cache = (result.index, body, time.monotonic())
            return body, result.index

    async def _thumbnails(self) -> None:
        """Turn each new event's best frame into a thumbnail, then let the frame go."""
        loop = asyncio.get_running_loop()
        while True:
            for entry in tuple(self.out.events):
                if entry["thumb"] is None and entry["frame"] is not None:
                    try:
                        entry["thumb"] = await loop.run_in_executor(self._pool, render_thumbnail,
                                                                    entry["result"], entry["frame"])
                    except Exception:
                        entry["thumb"] = b""
                    entry["frame"] = entry["result"] = None
            await asyncio.sleep(0.25)

    # -- handlers -------------------------------------------------------------------------------------
    def _page(self, web):
        async def page(request):
            q = f"?token={html.escape(self.out.token)}" if self.out.token else ""
            return web.Response(text=PAGE.replace("{QUERY}", q), content_type="text/html", charset="utf-8")
        return page

    def _script(self, web):
        async def script(request):
            return web.Response(text=SCRIPT, content_type="application/javascript", charset="utf-8")
        return script

    def _frame(self, web):
        async def frame(request):
            body, index = await self.newest_jpeg()
            if body is None:
                return web.Response(status=503, text="no frame yet\n", headers={"Retry-After": "1"})
            return web.Response(body=body, content_type="image/jpeg", headers={"X-Frame-Index": str(index)})
        return frame

    def _state(self, web):
        async def state(request):
            return web.Response(text=strict_json(self.out.state()), content_type="application/json")
        return state

    def _thumb(self, web):
        async def thumb(request):
            wanted = int(request.match_info["id"])
            entry = next((e for e in tuple(self.out.events) if e["id"] == wanted), None)
            if entry is None or not entry["thumb"]:
                raise web.HTTPNotFound(text="no such event thumbnail (only the last ones are kept)\n")
            return web.Response(body=entry["thumb"], content_type="image/jpeg")
        return thumb

    def _stream(self, web):
        async def stream(request):
            if self.streams >= self.out.max_streams:
                raise web.HTTPServiceUnavailable(text=f"{self.out.max_streams} streams are open already; close one\n",
                                                 headers={"Retry-After": "5"})
            headers = {"Content-Type": "multipart/x-mixed-replace; boundary=frame"}
            if request.method == "HEAD":
                return web.Response(headers=headers)
            self.streams += 1
            resp = web.StreamResponse(headers=headers)
            try:
                await resp.prepare(request)
                sent = None
                while not self.closing:
                    body, index = await self.newest_jpeg()
                    if body is not None and index != sent:
                        part = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body + b"\r\n")
                        try:
                            await asyncio.wait_for(resp.write(part), STALL_S)
                        except asyncio.TimeoutError:      # a stalled client: drop it, never wait for it
                            if request.transport is not None:
                                request.transport.close()
                            break
                        sent = index
                    await asyncio.sleep(1.0 / self.out.max_fps)
            except ConnectionError:                       # the client went away
                pass
            finally:
                self.streams -= 1
            return resp
        return stream


def _window_fps(window) -> float:
    now = time.monotonic()
    times = [t for t, _ in tuple(window) if now - t <= WINDOW_S]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def _host_name(host: str | None) -> str:
    """The name in a Host header, without its port: 'localhost:8080' -> 'localhost', '[::1]:80' -> '::1'."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edgekit live</title>
<style>
body{margin:0;font:14px/1.4 system-ui,sans-serif;background:#111;color:#ddd}
header{padding:8px 14px;background:#1c1c1c;border-bottom:1px solid #333;display:flex;gap:14px;align-items:baseline}
header b{font-size:17px;color:#fff}#about{color:#999}
.status{margin-left:auto;padding:1px 8px;border-radius:9px;background:#264;color:#cfc}.status.down{background:#622;color:#fcc}
main{display:flex;gap:14px;padding:14px;align-items:flex-start;flex-wrap:wrap}
.view{flex:3 1 560px}.view img{width:100%;background:#000;border:1px solid #333;min-height:200px;display:block}
aside{flex:2 1 360px}h2{font-size:14px;margin:14px 0 6px;color:#fff}h2 small{color:#999;font-weight:normal}
table{border-collapse:collapse;width:100%}td,th{padding:3px 6px;border-bottom:1px solid #2a2a2a;text-align:left;vertical-align:top}
th{color:#999;font-weight:normal}td.conf{font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}dt{color:#999}dd{margin:0;font-variant-numeric:tabular-nums}
#events{display:flex;flex-direction:column;gap:8px}.event{display:flex;gap:8px;background:#1a1a1a;padding:6px;border:1px solid #2a2a2a}
.event img{width:160px;flex:none;background:#000}.event .text{font-size:13px}.muted{color:#888}
</style></head>
<body>
<header><b>edgekit</b><span>live view</span><span id="about"></span><span id="status" class="status">connecting</span></header>
<main>
<section class="view"><img id="frame" alt="the newest frame with the models' answers drawn on it"></section>
<aside>
<h2>Models <small>frame #<span id="frame-index">-</span></small></h2>
<table id="models"><thead><tr><th>model</th><th>answer</th><th>confidence</th><th>state</th></tr></thead><tbody></tbody></table>
<h2>Loop <small>over the last seconds</small></h2><dl id="loop"></dl>
<h2>Power</h2><dl id="power"></dl>
<h2>Plane found <small id="events-count"></small></h2><div id="events"></div>
</aside>
</main>
<script src="app.js{QUERY}"></script>
</body></html>
"""

SCRIPT = r"""'use strict';
const token = new URLSearchParams(location.search).get('token');
function url(path, extra) {
  const p = new URLSearchParams(extra || {});
  if (token) p.set('token', token);
  const s = p.toString();
  return s ? path + '?' + s : path;
}
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function fix(v, n) { return (v === null || v === undefined) ? 'n/a' : Number(v).toFixed(n); }
const img = document.getElementById('frame');
let asked = 0;
function nextFrame() { img.src = url('frame.jpg', {n: ++asked}); }
img.onload = () => setTimeout(nextFrame, 60);
img.onerror = () => setTimeout(nextFrame, 1000);
nextFrame();

function answer(m) {
  if (m.kind === 'multi_label') {
    return [(m.labels || []).join(', ') || '-', (m.labels || []).map(l => fix(m.confidences[l], 2)).join(', ')];
  }
  if (m.kind === 'detection' && m.boxes) {
    const top = m.boxes.slice(0, 3).map(b => b.label + ' ' + fix(b.score, 2)).join(', ');
    return [m.boxes.length + (m.boxes.length === 1 ? ' box' : ' boxes') + (top ? ': ' + top : ''),
            m.boxes.length ? fix(Math.max(...m.boxes.map(b => b.score)), 3) : '-'];
  }
  return [m.label, fix(m.confidence, 3)];
}
function renderModels(models) {
  const body = document.querySelector('#models tbody');
  body.replaceChildren();
  for (const [name, m] of Object.entries(models || {})) {
    const [text, conf] = answer(m);
    const tr = el('tr'); tr.dataset.model = name;
    tr.append(el('td', name));
    const a = el('td', text, 'answer'); a.dataset.label = m.label === null ? '' : m.label; tr.append(a);
    const c = el('td', conf, 'conf'); c.dataset.value = m.confidence === null ? '' : m.confidence; tr.append(c);
    const s = el('td', m.state === undefined ? '' : (m.state || '-') + (m.state_confidence == null ? '' : ' ' + fix(m.state_confidence, 2)), 'state');
    tr.append(s);
    body.append(tr);
  }
}
function renderList(id, pairs) {
  const dl = document.getElementById(id);
  dl.replaceChildren();
  for (const [k, v] of pairs) { dl.append(el('dt', k)); dl.append(el('dd', v)); }
}
const shown = new Set();
function renderEvents(s) {
  document.getElementById('events-count').textContent = s.events_total ? '(' + s.events_total + ')' : '';
  const box = document.getElementById('events');
  if (!s.events.length && !box.children.length) { box.append(el('div', 'none yet', 'muted none')); }
  for (const e of s.events.slice().reverse()) {
    if (shown.has(e.id) || !e.thumbnail) continue;
    shown.add(e.id);
    const none = box.querySelector('.none'); if (none) none.remove();
    const card = el('div', null, 'event'); card.dataset.event = e.id;
    const t = el('img'); t.src = url(e.thumbnail); t.alt = 'best frame #' + e.best.index; card.append(t);
    const text = el('div', null, 'text');
    text.append(el('div', e.text));
    if (e.shown !== null && e.shown !== e.best.index) text.append(el('div', 'shown: frame #' + e.shown, 'muted'));
    text.append(el('div', 'closed by ' + e.closed_by, 'muted'));
    card.append(text);
    box.prepend(card);
    while (box.children.length > 50) box.lastChild.remove();
  }
}
function setStatus(text, down) {
  const s = document.getElementById('status'); s.textContent = text; s.className = 'status' + (down ? ' down' : '');
}
async function poll() {
  try {
    const r = await fetch(url('state.json'), {cache: 'no-store'});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const s = await r.json();
    document.getElementById('about').textContent = [s.about.bundle, s.about.source].filter(Boolean).join(' on ');
    document.getElementById('frame-index').textContent = s.frame ? s.frame.index : '-';
    renderModels(s.models);
    const w = s.window;
    renderList('loop', [['FPS', fix(w.fps, 1)], ['latency p50 / p95', fix(w.latency_ms.p50, 1) + ' / ' + fix(w.latency_ms.p95, 1) + ' ms'],
                        ['frames', s.frames]]);
    const p = s.power;
    renderList('power', p ? [['board', fix(p.board_w, 2) + ' W (' + p.rail + ')'], ['per frame', fix(p.mj, 1) + ' mJ'],
                             ['hottest', p.hottest_zone ? p.hottest_zone + ' ' + fix(p.hottest_c, 1) + ' \u00b0C' : 'n/a']]
                          : [['', 'no power monitor here (a Jetson\'s INA3221 is read when present)']]);
    renderEvents(s);
    setStatus(s.running ? 'live' : 'stopped', !s.running);
  } catch (e) {
    setStatus('stopped (' + e.message + ')', true);
  }
  setTimeout(poll, 500);
}
poll();
"""
