"""Physical quantities in rig files and on the command line, through one pint unit registry.

A field named ``max_speed_um_s`` takes a plain number in um/s, or a string with any unit of the same
dimension that pint knows (``"2 mm/s"``, ``"3 mm / s"``, ``"500 us"``, ``"1 mL/min"``, ``"0.1 kHz"``),
converted here, at one place. A unit of another dimension is an error that names what was expected.
Every quantity must be finite and within a physical bound for its dimension (a stage speed of 1e12 um/s
or ``.inf`` is a typing error, not a setting): the bounds below are far beyond any laboratory device and
only catch values no device has.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Callable

import pint
from pydantic import AfterValidator, BeforeValidator


@cache
def unit_registry() -> pint.UnitRegistry:
    """The one unit registry of the application (built on first use: it takes a quarter of a second)."""
    return pint.UnitRegistry()


@dataclass(frozen=True)
class Dimension:
    unit: str  # the unit values are stored in
    name: str  # what the user is told was expected
    bound: float  # largest magnitude accepted, in ``unit``


_DIMENSIONS: dict[str, Dimension] = {d.unit: d for d in (
    Dimension("um", "length", 1e6),  # 1 m
    Dimension("um/s", "speed", 1e6),  # 1 m/s
    Dimension("um/s^2", "acceleration", 1e8),  # 100 m/s^2
    Dimension("s", "time", 86400.0),  # a day
    Dimension("ms", "time", 86400e3),
    Dimension("nL/s", "flow rate", 1e6),  # 1 mL/s
    Dimension("Hz", "frequency", 1e6),
    Dimension("dB", "gain", 100.0),
    Dimension("deg", "angle", 360.0),
)}
_NUMBER_FIRST = re.compile(r"^\s*[-+]?(?:\d|\.\d|inf|nan)", re.IGNORECASE)
_DB = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:dB)?\s*$")
_MAX_TEXT = 80
# pint knows typographic units of length ("5 px" is 5 CSS pixels, 1.3 mm): never what a rig file means
_TYPOGRAPHIC = {"pixel", "css_pixel", "point", "printers_point", "pica", "printers_pica", "big_point", "didot",
                "cicero", "tex_point", "tex_pica", "tex_didot", "tex_cicero", "scaled_point", "dot"}


def parse_quantity(value: Any, unit: str) -> float:
    """Return ``value`` in ``unit``: numbers pass through, strings like ``"3 mm"`` are converted.

    Raises ValueError (one line) for text that is not a quantity, a unit of another dimension, or a value
    that is not finite.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number in {unit}, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        number = _parse_text(value, unit)
    else:
        raise ValueError(f"expected a number in {unit}, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number in {unit}, got {value!r}")
    return number


def _parse_text(text: str, unit: str) -> float:
    if len(text) > _MAX_TEXT or not _NUMBER_FIRST.match(text):
        raise ValueError(f"expected a number in {unit}, got {text[:_MAX_TEXT]!r}")
    if unit == "dB":  # logarithmic: pint does no arithmetic with it, and a gain has no other unit
        match = _DB.match(text)
        if not match:
            raise ValueError(f"expected a gain in dB, got {text!r}")
        return float(match.group(1))
    ureg = unit_registry()
    try:
        quantity = ureg.parse_expression(text)
    except Exception:  # pint's parser raises many kinds (undefined unit, tokenizer and syntax errors)
        raise ValueError(f"not a quantity in {unit}: {text!r}") from None
    if not isinstance(quantity, pint.Quantity):  # a bare number in a string: the field's unit
        return float(quantity)
    given = f"{quantity.units:~}"
    unitless = quantity.units == ureg.dimensionless
    if any(name.lower() in _TYPOGRAPHIC for name in quantity.units._units):
        raise ValueError(f"unit {given!r} is a typographic unit: give {unit}")
    if quantity.dimensionless and not unitless and unit != "deg":
        raise ValueError(f"wrong unit {given!r}: expected a {_dimension(unit).name} in {unit}")
    if unit == "deg" and not unitless and ureg.get_root_units(quantity.units)[1] != ureg.radian:
        raise ValueError(f"wrong unit {given!r}: expected an angle in deg")
    if unitless:
        return float(quantity.magnitude)
    try:
        return float(quantity.to(_pint_unit(unit)).magnitude)
    except pint.DimensionalityError:
        raise ValueError(f"wrong unit {given!r}: expected a {_dimension(unit).name} in {unit}") from None


def _pint_unit(unit: str) -> str:
    return unit.replace("^", "**")


def _dimension(unit: str) -> Dimension:
    return _DIMENSIONS.get(unit) or Dimension(unit, f"quantity convertible to {unit}", math.inf)


def _in(unit: str) -> Callable[[Any], float]:
    return lambda value: parse_quantity(value, unit)


def _bounded(unit: str) -> Callable[[float], float]:
    dim = _dimension(unit)

    def check(value: float) -> float:
        if abs(value) > dim.bound:
            raise ValueError(f"{value:g} {unit} is not a physical {dim.name} (|value| <= {dim.bound:g} {unit})")
        return value

    return check


def quantity_type(unit: str) -> Any:
    """A pydantic float field in ``unit``: parsed with pint, finite, physically bounded."""
    return Annotated[float, BeforeValidator(_in(unit)), AfterValidator(_bounded(unit))]


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if not pair[0] < pair[1]:
        raise ValueError(f"a range needs min < max, got [{pair[0]:g}, {pair[1]:g}]")
    return pair


Um = quantity_type("um")
UmPerS = quantity_type("um/s")
UmPerS2 = quantity_type("um/s^2")
Seconds = quantity_type("s")
Ms = quantity_type("ms")
NlPerS = quantity_type("nL/s")
Hz = quantity_type("Hz")
Db = quantity_type("dB")
Deg = quantity_type("deg")

#: (min, max) travel or range with min < max.
UmRange = Annotated[tuple[Um, Um], AfterValidator(_ordered)]
MsRange = Annotated[tuple[Ms, Ms], AfterValidator(_ordered)]



def check_inside(name: str, value_um: float, limits: tuple[float, float], limits_name: str) -> None:
    """A start or home position must lie within its travel range (a rig file error otherwise)."""
    if not limits[0] <= value_um <= limits[1]:
        raise ValueError(f"{name} {value_um:g} um is outside {limits_name} [{limits[0]:g}, {limits[1]:g}] um")
