"""Physical quantities in configuration files.

A field named ``max_speed_um_s`` takes a plain number in um/s, or a string with a unit of the same
dimension (``"2 mm/s"``), converted here, at one place. A unit of another dimension is an error that
names what was expected.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator

# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, float]] = {
    "nm": ("length", 1e-3), "um": ("length", 1.0), "µm": ("length", 1.0), "mm": ("length", 1e3),
    "s": ("time", 1.0), "ms": ("time", 1e-3),
    "um/s": ("speed", 1.0), "µm/s": ("speed", 1.0), "mm/s": ("speed", 1e3),
    "um/s^2": ("acceleration", 1.0), "mm/s^2": ("acceleration", 1e3),
    "nL/s": ("flow", 1.0), "pL/s": ("flow", 1e-3), "uL/min": ("flow", 1e3 / 60), "uL/h": ("flow", 1e3 / 3600),
    "Hz": ("frequency", 1.0), "dB": ("gain", 1.0), "deg": ("angle", 1.0),
}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")


def parse_quantity(value: Any, unit: str) -> float:
    """Return ``value`` in ``unit``: numbers pass through, strings like ``"3 mm"`` are converted."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number in {unit}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a number in {unit}, got {type(value).__name__}")
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"expected a number in {unit}, got {value!r}")
    number, given = float(match.group(1)), (match.group(2) or unit)
    if given not in _UNITS:
        raise ValueError(f"unknown unit {given!r} (expected {unit})")
    want_dim, want_factor = _UNITS[unit]
    dim, factor = _UNITS[given]
    if dim != want_dim:
        raise ValueError(f"wrong unit {given!r}: expected a {want_dim} in {unit}")
    return number * factor / want_factor


def _in(unit: str) -> Callable[[Any], float]:
    return lambda value: parse_quantity(value, unit)


Um = Annotated[float, BeforeValidator(_in("um"))]
UmPerS = Annotated[float, BeforeValidator(_in("um/s"))]
UmPerS2 = Annotated[float, BeforeValidator(_in("um/s^2"))]
Seconds = Annotated[float, BeforeValidator(_in("s"))]
Ms = Annotated[float, BeforeValidator(_in("ms"))]
NlPerS = Annotated[float, BeforeValidator(_in("nL/s"))]
Hz = Annotated[float, BeforeValidator(_in("Hz"))]
Db = Annotated[float, BeforeValidator(_in("dB"))]
Deg = Annotated[float, BeforeValidator(_in("deg"))]
