import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.config import load_rig_config, parse_rig_config
from drivers.errors import ConfigError
from drivers.units import parse_quantity

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict:
    return yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())


def test_default_rigs_validate():
    cfg = load_rig_config(ROOT / "configs" / "sim.yaml")
    assert cfg.clock == "lockstep" and cfg.uses_simulator
    assert cfg.objective.pixel_size_um(5.86) == pytest.approx(0.1465)


def test_example_hardware_rig_structure():
    data = yaml.safe_load((ROOT / "configs" / "example-hardware.yaml").read_text())
    cfg = parse_rig_config(data, check_devices=False)
    assert not cfg.uses_simulator and cfg.objective.na == 0.65
    assert [getattr(cfg, k).driver for k in ("camera", "stage", "focus", "manipulator", "pump")] == [
        "basler", "prior-proscan", "pi-gcs", "sensapex", "newera"]
    pytest.importorskip("pypylon")
    pytest.importorskip("sensapex")
    parse_rig_config(data)  # every device's settings validate against its real driver class
    data["camera"]["pixel_format"] = "Mono10"
    with pytest.raises(ConfigError, match=r"camera\.pixel_format: Input should be 'Mono8' or 'Mono12'"):
        parse_rig_config(data)


@pytest.mark.parametrize(
    "mutate, field, text",
    [
        (lambda d: d["camera"].update(driver="nikon"), "camera.driver", "unknown driver 'nikon'"),
        (lambda d: d.pop("pump"), "pump", "Field required"),
        (lambda d: d["stage"].update(max_speed_um_s="fast"), "stage.max_speed_um_s", "expected a number"),
        (lambda d: d["stage"].update(max_speed_um_s="3 ms"), "stage.max_speed_um_s", "wrong unit 'ms'"),
        (lambda d: d["camera"].update(exposur_ms=4), "camera.exposur_ms", "unknown field"),
        (lambda d: d["objective"].update(na=-0.5), "objective.na", "greater than 0"),
    ],
)
def test_bad_rig_gives_one_line_naming_the_field(mutate, field, text):
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_rig_config(data, source=Path("bad.yaml"))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"bad.yaml: {field}: ")
    assert text in msg


def test_units_convert_at_one_place():
    assert parse_quantity("2 mm/s", "um/s") == 2000.0
    assert parse_quantity(5, "ms") == 5.0
    assert parse_quantity("0.01 s", "ms") == pytest.approx(10.0)
    assert parse_quantity("4.32 uL/h", "nL/s") == pytest.approx(1.2)
    with pytest.raises(ValueError, match="wrong unit"):
        parse_quantity("3 um", "s")


@pytest.mark.parametrize("text, unit, value", [
    ("500 us", "ms", 0.5),  # Basler's exposure unit
    ("1.2 nl/s", "nL/s", 1.2),
    ("1 mL/min", "nL/s", 1e6 / 60),
    ("0.1 kHz", "Hz", 100.0),
    ("5 min", "s", 300.0),
    ("3 mm / s", "um/s", 3000.0),
    ("2 µm", "um", 2.0),
    ("0.1 rad", "deg", 5.729578),
    ("12", "um", 12.0),
])
def test_any_unit_pint_knows_is_converted(text, unit, value):
    assert parse_quantity(text, unit) == pytest.approx(value)


@pytest.mark.parametrize("text, unit, message", [
    ("5 px", "um", "typographic unit"),
    ("10 %", "deg", "expected an angle"),
    ("1 um um", "um", "wrong unit"),
    ("nan um", "um", "finite"),
    ("2 (", "um", "not a quantity"),
    ("3 dBm", "dB", "expected a gain in dB"),
])
def test_quantities_that_are_not_one_are_refused(text, unit, message):
    with pytest.raises(ValueError, match=message):
        parse_quantity(text, unit)


def test_cli_malformed_rig_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "rig.yaml"
    data = base()
    data["manipulator"]["max_speed_um_s"] = "quick"
    bad.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "app.cli", "rig", "check", str(bad)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "manipulator.max_speed_um_s" in lines[0]


def test_cli_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read rig file"):
        load_rig_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_rig_config(broken)


def test_cli_help_lists_subcommands():
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0
    for cmd in ("demo", "rig", "sim"):
        assert cmd in proc.stdout
