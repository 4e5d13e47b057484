"""The Qt binding must not leak or drop references to None, True and False.

PySide6 6.12.0 under CPython 3.11 drops one reference to None per psygnal emit and to True per
Qt signal emit with a None payload; after enough frames the interpreter aborts with "deallocating
None" in the middle of a GUI session (seen in tests/app/test_gui.py). pyproject.toml excludes that
release; this test fails on any binding with the same fault, at a count small enough not to abort.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import psygnal
import pytest
from qtpy import QtCore

EMITS = 300
# Interning and caches move the counts by a few dozen once; a faulty binding moves them by EMITS.
TOLERANCE = EMITS // 4


def _singleton_refs() -> dict[str, int]:
    return {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}


def _drift(emit: Callable[[], None]) -> dict[str, int]:
    emit()
    before = _singleton_refs()
    for _ in range(EMITS):
        emit()
    after = _singleton_refs()
    return {name: after[name] - before[name] for name in before}


class _QtSource(QtCore.QObject):
    anything = QtCore.Signal(object)
    flag = QtCore.Signal(bool)


class _PsygnalSource:
    anything = psygnal.Signal(object)
    flag = psygnal.Signal(bool)


@pytest.mark.parametrize(("source", "payload"), [(_QtSource, None), (_QtSource, True), (_QtSource, False),
                                                 (_PsygnalSource, None), (_PsygnalSource, True)],
                         ids=["qt-None", "qt-True", "qt-False", "psygnal-None", "psygnal-True"])
def test_signal_emits_keep_the_singletons_references(qapp, source, payload) -> None:
    """Qt's own signals, and psygnal's beside Qt (the window's devices emit through psygnal)."""
    obj = source()
    signal = obj.flag if isinstance(payload, bool) else obj.anything
    signal.connect(lambda value: None)
    drift = _drift(lambda: signal.emit(payload))
    assert all(abs(d) < TOLERANCE for d in drift.values()), drift
