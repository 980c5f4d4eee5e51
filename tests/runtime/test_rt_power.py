"""Board power, energy per frame and the hottest thermal zone (`runtime.power`), read from recorded
copies of a Jetson's sysfs layouts under tmp_path: the INA3221 through the iio driver (JetPack 4/5.0,
a Nano's rails), through hwmon (JetPack 5.1+/6, an Orin's), a module without an input rail (AGX
Xavier: the rails are summed), thermal zones with the PMIC placeholder and an offline sensor; then the
figures in the JSONL rows, the summary and its console line, and nothing at all off a Jetson."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import runtime
from runtime.power import PowerMonitor, SysfsReader, find_monitor, find_rails, find_zones, format_power


def _write(path: Path, text) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def nano_jp4(root: Path) -> Path:
    """Jetson Nano, JetPack 4: ina3221x iio, power in mW per rail."""
    dev = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for n, (name, mw) in enumerate([("POM_5V_IN", 4800), ("POM_5V_GPU", 1200), ("POM_5V_CPU", 900)]):
        _write(dev / f"rail_name_{n}", name)
        _write(dev / f"in_power{n}_input", mw)
        _write(dev / f"in_current{n}_input", mw // 5)
        _write(dev / f"in_voltage{n}_input", 5000)
    return root


def orin_jp6(root: Path) -> Path:
    """Orin NX, JetPack 6: hwmon `ina3221`, bus mV and mA per channel, channel 7 the shunt sum; an
    unrelated hwmon beside it."""
    mon = root / "sys/class/hwmon/hwmon3"
    _write(mon / "name", "ina3221")
    for n, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1500), ("VDD_CPU_GPU_CV", 5000, 500),
                                         ("VDD_SOC", 5000, 300)], start=1):
        _write(mon / f"in{n}_label", label)
        _write(mon / f"in{n}_input", mv)
        _write(mon / f"curr{n}_input", ma)
    _write(mon / "in7_label", "sum of shunt voltages")
    _write(mon / "in7_input", 120)
    _write(root / "sys/class/hwmon/hwmon0/name", "nvme")
    _write(root / "sys/class/hwmon/hwmon0/temp1_input", 40000)
    return root


def xavier_jp5(root: Path) -> Path:
    """AGX Xavier, JetPack 5.0: two iio devices, no input rail (the board figure is their sum), an NC channel."""
    for addr, rails in (("1-0040", [("GPU", 3000), ("CPU", 2000), ("SOC", 1000)]),
                        ("1-0041", [("CV", 500), ("VDDRQ", 400), ("NC", 999)])):
        dev = root / f"sys/bus/i2c/drivers/ina3221x/{addr}/iio:device0"
        for n, (name, mw) in enumerate(rails):
            _write(dev / f"rail_name_{n}", name)
            _write(dev / f"in_power{n}_input", mw)
    return root


def thermal(root: Path) -> Path:
    for n, (kind, mc) in enumerate([("CPU-therm", 51500), ("GPU-therm", 53250), ("PMIC-Die", 100000),
                                    ("CV0-therm", -256000), ("tj-thermal", 53500)]):
        _write(root / f"sys/class/thermal/thermal_zone{n}/type", kind)
        _write(root / f"sys/class/thermal/thermal_zone{n}/temp", mc)
    return root


def test_jetpack4_iio_rails_and_thermal_zones(tmp_path):
    root = thermal(nano_jp4(tmp_path))
    rails = find_rails(root)
    assert [r.name for r in rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert [z for z, _ in find_zones(root)] == ["CPU-therm", "GPU-therm", "CV0-therm", "tj-thermal"]  # no PMIC
    reader = SysfsReader(rails, find_zones(root), "test")
    board, per_rail, hottest_c, zone = reader.read()
    assert reader.rail == "POM_5V_IN"
    assert board == pytest.approx(4.8)                       # the input rail, not the sum
    assert per_rail["POM_5V_GPU"] == pytest.approx(1.2)
    assert (hottest_c, zone) == (53.5, "tj-thermal")         # the offline -256 C and the PMIC 100 C left out


def test_jetpack6_hwmon_rails_are_volts_times_amps(tmp_path):
    rails = find_rails(orin_jp6(tmp_path))
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]   # no shunt sum, no nvme
    board, per_rail, hottest_c, zone = SysfsReader(rails, [], "test").read()
    assert board == pytest.approx(7.5)                       # 5000 mV x 1500 mA
    assert per_rail["VDD_SOC"] == pytest.approx(1.5)
    assert hottest_c is None
    assert zone is None


def test_a_module_without_an_input_rail_reports_the_sum_of_its_rails(tmp_path):
    rails = find_rails(xavier_jp5(tmp_path))
    assert "NC" not in [r.name for r in rails]
    reader = SysfsReader(rails, [], "test")
    assert reader.rail == "sum of 5 rails"
    assert reader.read()[0] == pytest.approx(6.9)


def test_energy_is_integrated_between_samples(tmp_path):
    root = nano_jp4(tmp_path)
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0]).__next__
    monitor = find_monitor(root, use_jtop=False)
    monitor.clock = clock
    monitor.start()
    monitor._stop.set()
    monitor._thread.join()                                    # no wall-clock samples in between
    _write(root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input", 5800)
    monitor.sample()                                          # t=1: 5.8 W
    monitor.stop()                                            # t=2: 5.8 W
    s = monitor.summary(frames=100)
    assert s["energy_j"] == pytest.approx(0.5 * (4.8 + 5.8) + 5.8)
    assert s["board_w"] == {"mean": pytest.approx(s["energy_j"] / 2.0, abs=1e-3), "max": 5.8}
    assert s["mj_per_frame"] == pytest.approx(s["energy_j"] * 1000 / 100, abs=1e-3)
    assert s["rail"] == "POM_5V_IN"
    fields = monitor.frame_fields(0.05)
    assert fields == {"board_w": 5.8, "mj": 290.0, "hottest_c": None, "hottest_zone": None}
    assert format_power({"power": s}) == "power: 5.55 W mean (max 5.80 W, POM_5V_IN), 111.0 mJ/frame, 11.10 J"


def test_nothing_is_found_off_a_jetson(tmp_path):
    assert find_monitor(tmp_path, use_jtop=False) is None
    thermal(tmp_path)                        # thermal zones alone (any Linux PC) are not a power monitor
    assert find_monitor(tmp_path, use_jtop=False) is None
    assert format_power({"frames": 3}) is None


def _rows(jsonl: Path):
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return [r for r in lines if "index" in r], lines[-1]["summary"]


def test_run_reports_power_per_frame_and_in_the_summary(plane_bundle, tmp_path):
    root = thermal(orin_jp6(tmp_path / "sys_copy"))
    monitor = PowerMonitor(find_monitor(root, use_jtop=False).reader, interval=0.01)
    summary = runtime.run(plane_bundle, source="phantom?realtime=0&frames=15&width=96&height=64", headless=True,
                          json_out=tmp_path / "run.jsonl", power=monitor, log=lambda m: None)
    rows, last = _rows(tmp_path / "run.jsonl")
    assert len(rows) == summary["frames"] >= 1
    assert rows[0]["power"]["mj"] is None                                  # no frame before the first
    for row in rows:
        p = row["power"]
        assert p["board_w"] == pytest.approx(7.5)
        assert (p["hottest_c"], p["hottest_zone"]) == (53.5, "tj-thermal")
    assert all(r["power"]["mj"] >= 0 for r in rows[1:])
    power = summary["power"]
    assert last["power"] == power
    assert power["rail"] == "VDD_IN"
    assert power["board_w"]["mean"] == pytest.approx(7.5)
    assert power["mj_per_frame"] == pytest.approx(power["energy_j"] * 1000 / summary["frames"], rel=1e-3)
    assert power["hottest_zone"] == "tj-thermal"


def test_run_off_a_jetson_has_no_power_keys(plane_bundle, tmp_path):
    summary = runtime.run(plane_bundle, source="phantom?realtime=0&frames=3&width=96&height=64", headless=True,
                          json_out=tmp_path / "run.jsonl", power=tmp_path / "empty", log=lambda m: None)
    rows, _ = _rows(tmp_path / "run.jsonl")
    assert "power" not in summary
    assert all("power" not in r for r in rows)
