"""Board power, energy per frame and the hottest thermal zone on a Jetson, sampled off the hot path.

Where the numbers come from (read-only, no root needed on JetPack's default permissions):

- the INA3221 power monitors on the module, as the kernel exposes them:
  - JetPack 4 and 5.0 (`ina3221x` driver, iio): `/sys/bus/i2c/drivers/ina3221x/*/iio:device*/`
    with `rail_name_N` and `in_powerN_input` (mW);
  - JetPack 5.1+ and 6 (mainline `ina3221`, hwmon): `/sys/class/hwmon/hwmon*/` whose `name` is
    `ina3221`, with `inN_label`, `inN_input` (bus mV) and `currN_input` (mA); channels labelled `NC`
    (not connected) and channel 7 ("sum of shunt voltages") are skipped;
- the thermal zones `/sys/class/thermal/thermal_zone*/{type,temp}` (millidegrees C); `PMIC*` zones (a
  fixed placeholder on some modules) and readings outside -40..150 C (an offline sensor reads -256) are
  left out;
- jetson-stats (`jtop`, when installed and its service runs) where sysfs shows no power monitor (a
  container without /sys/bus/i2c, for instance).

Board power is the module's input rail where one is monitored (`VDD_IN` on Orin and Xavier NX,
`POM_5V_IN` on Nano), else the sum of every monitored rail (AGX Xavier, AGX Orin), as jetson-stats
reports it. A `PowerMonitor` thread samples every `INTERVAL` seconds while the loop runs and integrates
energy (trapezoids); the loop never reads a sensor: a frame's JSONL row takes the latest sample
(`frame_fields`), the summary the integral (`summary`). Elsewhere (a PC, a container without the
nodes) `find_monitor` returns None and the keys are simply absent.

    >>> monitor = find_monitor()                 # None off a Jetson      # doctest: +SKIP
    >>> with monitor: run_the_loop()                                     # doctest: +SKIP
    >>> monitor.summary(frames=600)["mj_per_frame"]                      # doctest: +SKIP
"""
from __future__ import annotations

import math
import re
import threading
import time
from collections import namedtuple
from pathlib import Path

INTERVAL = 0.25                                   # seconds between samples: 4 Hz, a few file reads each
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")    # a module's whole-board input rail, where it has one
TEMP_RANGE = (-40.0, 150.0)                       # plausible readings, C; outside: offline or a placeholder

Sample = namedtuple("Sample", "t board_w rails hottest_c hottest_zone")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _number(path: Path) -> float | None:
    text = _read(path)
    if text is None:
        return None
    try:
        value = float(text.split()[0])     # some nodes append a unit ("32760 ma")
    except (ValueError, IndexError):
        return None
    return value if math.isfinite(value) else None


def _index(name: str, pattern: str) -> int:
    m = re.fullmatch(pattern, name)
    return int(m.group(1)) if m else -1


class Rail:
    """One monitored INA3221 channel: `power_mw` read directly (iio) or as mV x mA (hwmon)."""

    def __init__(self, name: str, power: Path | None = None, volt: Path | None = None, curr: Path | None = None):
        self.name, self.power, self.volt, self.curr = name, power, volt, curr

    def watts(self) -> float | None:
        if self.power is not None:
            mw = _number(self.power)
            return None if mw is None else mw / 1000.0
        mv, ma = _number(self.volt), _number(self.curr)
        return None if mv is None or ma is None else mv * ma / 1e6


def find_rails(root="/") -> list[Rail]:
    """Every INA3221 channel under `root` (a recorded copy of a Jetson's /sys in tests), in a stable order."""
    root = Path(root)
    rails: list[Rail] = []
    for dev in sorted(root.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*")):     # JetPack 4, 5.0
        for label in sorted(dev.glob("rail_name_*"), key=lambda p: _index(p.name, r"rail_name_(\d+)")):
            n = _index(label.name, r"rail_name_(\d+)")
            name, power = _read(label), dev / f"in_power{n}_input"
            if n >= 0 and name and "NC" not in name.split("_") and power.is_file():
                rails.append(Rail(name, power=power))
    for mon in sorted(root.glob("sys/class/hwmon/hwmon*")):                          # JetPack 5.1+, 6
        if (_read(mon / "name") or "") != "ina3221":
            continue
        for label in sorted(mon.glob("in*_label"), key=lambda p: _index(p.name, r"in(\d+)_label")):
            n = _index(label.name, r"in(\d+)_label")
            name = _read(label)
            volt, curr = mon / f"in{n}_input", mon / f"curr{n}_input"
            if (n < 0 or n == 7 or not name or name.upper() == "NC" or "shunt" in name.lower()
                    or not volt.is_file() or not curr.is_file()):
                continue
            rails.append(Rail(name, volt=volt, curr=curr))
    return rails


def find_zones(root="/") -> list[tuple[str, Path]]:
    """(type, temp file) of every thermal zone under `root`, PMIC placeholders left out."""
    zones = []
    for zone in sorted(Path(root).glob("sys/class/thermal/thermal_zone*"),
                       key=lambda p: _index(p.name, r"thermal_zone(\d+)")):
        kind, temp = _read(zone / "type"), zone / "temp"
        if kind and temp.is_file() and not kind.upper().startswith("PMIC"):
            zones.append((kind, temp))
    return zones


def hottest(readings) -> tuple[float | None, str | None]:
    """(temperature C, zone) of the hottest plausible reading of `readings`, [(zone, C or None)]."""
    valid = [(c, z) for z, c in readings if c is not None and TEMP_RANGE[0] < c < TEMP_RANGE[1]]
    if not valid:
        return None, None
    c, z = max(valid)
    return round(c, 1), z


class SysfsReader:
    """INA3221 rails and thermal zones read from sysfs."""

    def __init__(self, rails: list[Rail], zones: list[tuple[str, Path]], where: str):
        self.rails, self.zones = rails, zones
        names = [r.name.upper() for r in rails]
        self.input = next((rails[names.index(n)] for n in INPUT_RAILS if n in names), None)
        self.rail = self.input.name if self.input else f"sum of {len(rails)} rails"
        self.source = where

    def read(self) -> tuple[float | None, dict, float | None, str | None]:
        rails = {r.name: r.watts() for r in self.rails}
        if self.input is not None:
            board = rails[self.input.name]
        else:
            values = [w for w in rails.values() if w is not None]
            board = sum(values) if values else None
        temps = [(name, None if (mc := _number(path)) is None else mc / 1000.0) for name, path in self.zones]
        return (board, rails, *hottest(temps))

    def close(self) -> None:
        pass


class JtopReader:
    """jetson-stats' view (`jtop`), for a machine where sysfs shows no power monitor to this process."""

    source = "jetson-stats (jtop)"

    def __init__(self, jetson):
        self.jetson = jetson
        self.rail = "jtop total"

    @classmethod
    def connect(cls, interval: float) -> "JtopReader | None":
        try:
            from jtop import jtop
        except ImportError:
            return None
        try:
            jetson = jtop(interval=max(interval, 0.5))
            jetson.start()
            if not jetson.ok():
                jetson.close()
                return None
        except Exception:      # no jtop service, no permission, an old jtop: no power figures, no error
            return None
        return cls(jetson)

    def read(self):
        try:
            power = self.jetson.power or {}
            tot = power.get("tot", {}) if isinstance(power, dict) else {}
            board = tot.get("power")
            rails = {k: v.get("power", 0) / 1000.0 for k, v in (power.get("rail") or {}).items()
                     if isinstance(v, dict)} if isinstance(power, dict) else {}
            temps = [(k, v.get("temp") if isinstance(v, dict) and v.get("online", True) else None)
                     for k, v in (self.jetson.temperature or {}).items()]
        except Exception:
            return None, {}, None, None
        return ((None if board is None else board / 1000.0), rails, *hottest(temps))

    def close(self) -> None:
        try:
            self.jetson.close()
        except Exception:
            pass


class PowerMonitor:
    """Samples a reader every `interval` s in its own thread while active (a context manager)."""

    def __init__(self, reader, interval: float = INTERVAL, clock=time.monotonic):
        self.reader, self.interval, self.clock = reader, float(interval), clock
        self.latest: Sample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        self.samples, self.energy_j, self.max_w = 0, 0.0, None
        self.max_c, self.max_zone = None, None
        self.started = self.stopped = None
        self._first_t: float | None = None      # the first and latest samples with a board reading
        self._prev: Sample | None = None

    @property
    def source(self) -> str:
        return self.reader.source

    @property
    def rail(self) -> str:
        return self.reader.rail

    def sample(self) -> Sample:
        """Read once and account for it (the thread calls this; tests may too)."""
        board, rails, c, zone = self.reader.read()
        s = Sample(self.clock(), board, rails, c, zone)
        prev = self._prev
        if board is not None:
            self.samples += 1
            self.max_w = board if self.max_w is None else max(self.max_w, board)
            if prev is not None:
                self.energy_j += 0.5 * (prev.board_w + board) * (s.t - prev.t)
            else:
                self._first_t = s.t
            self._prev = s
        if c is not None and (self.max_c is None or c > self.max_c):
            self.max_c, self.max_zone = c, zone
        self.latest = s
        return s

    def start(self) -> "PowerMonitor":
        self.reset()
        self.started = self.clock()
        self.sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edgekit-power", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:      # a sensor that disappears mid-run costs its samples, never the loop
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
            try:
                self.sample()      # the last stretch up to the loop's end
            except Exception:
                pass
        self.stopped = self.clock()

    def close(self) -> None:
        self.stop()
        self.reader.close()

    def __enter__(self) -> "PowerMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def frame_fields(self, dt_s: float | None) -> dict | None:
        """A frame's `power` object: the latest board power, its energy over `dt_s` (the time since the
        frame before; None for the first), the hottest zone; None before the first sample."""
        s = self.latest
        if s is None:
            return None
        w = s.board_w
        mj = None if w is None or dt_s is None or dt_s < 0 else round(w * dt_s * 1000.0, 3)
        return {"board_w": None if w is None else round(w, 3), "mj": mj,
                "hottest_c": s.hottest_c, "hottest_zone": s.hottest_zone}

    def summary(self, frames: int) -> dict:
        """The run's power: mean and max board power, energy, energy per frame, hottest zone (the
        integral spans the first to the last sample: `start` and `stop` take one each)."""
        span = (self._prev.t - self._first_t) if self._prev is not None else 0.0
        measured = self.samples > 1 and span > 0
        mean = self.energy_j / span if measured else (self._prev.board_w if self._prev is not None else None)
        s = self.latest
        return {"source": self.source, "rail": self.rail, "samples": self.samples,
                "interval_s": self.interval, "seconds": round(span, 3),
                "board_w": {"mean": None if mean is None else round(mean, 3),
                            "max": None if self.max_w is None else round(self.max_w, 3)},
                "energy_j": round(self.energy_j, 4) if measured else None,
                "mj_per_frame": round(self.energy_j * 1000.0 / frames, 3) if measured and frames else None,
                "hottest_c": {"max": self.max_c, "last": s.hottest_c if s else None},
                "hottest_zone": self.max_zone}


def find_monitor(root="/", interval: float = INTERVAL, use_jtop: bool = True) -> PowerMonitor | None:
    """A monitor for this machine's INA3221 rails (sysfs under `root`, else jtop), or None without one."""
    rails = find_rails(root)
    if rails:
        where = "ina3221 sysfs" if Path(root) == Path("/") else f"ina3221 sysfs under {root}"
        return PowerMonitor(SysfsReader(rails, find_zones(root), where), interval)
    if use_jtop and Path(root) == Path("/"):
        reader = JtopReader.connect(interval)
        if reader is not None:
            return PowerMonitor(reader, interval)
    return None


def format_power(summary: dict) -> str | None:
    """`power: 6.21 W mean (max 7.03 W, VDD_IN), 265.4 mJ/frame, 8.1 J; hottest tj-thermal 51.2 C`."""
    p = summary.get("power")
    if not p:
        return None

    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    w = p.get("board_w") or {}
    line = (f"power: {num(w.get('mean'), '.2f')} W mean (max {num(w.get('max'), '.2f')} W, {p.get('rail')}), "
            f"{num(p.get('mj_per_frame'), '.1f')} mJ/frame, {num(p.get('energy_j'), '.2f')} J")
    hot = p.get("hottest_c") or {}
    if hot.get("max") is not None:
        line += f"; hottest {p.get('hottest_zone')} {hot['max']:.1f} C"
    return line
