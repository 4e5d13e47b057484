"""``--inject DEVICE:FAULT@STATE``: rehearse how a rig file and the controller handle a device fault.

The fault (:mod:`sim.protocols.faults`) is injected into the rehearsed device's protocol server (or the
twin-fed camera) when the controller first enters ``STATE`` in a trial; without ``@STATE`` it is
injected as the trial starts. From then on the twin's own ground truth is watched
(:class:`sim.rehearsal.TwinProbe`): the trial's row says when the fault came and when the pump and the
motion really stopped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from control.states import State
from drivers.errors import MicromanipError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Injection:
    device: str
    fault: str
    state: State | None  # None: as the trial starts

    def __str__(self) -> str:
        return f"{self.device}:{self.fault}" + (f"@{self.state.value}" if self.state else "")


def parse_injection(text: str) -> Injection:
    """``stage:drop_reply@Aspirating`` -> Injection; a MicromanipError names what is wrong."""
    from sim.protocols.faults import FAULTS
    from sim.rehearsal import FAULT_DEVICES

    head, _, state_name = text.partition("@")
    device, sep, fault = head.partition(":")
    if not sep:
        raise MicromanipError(f"--inject {text!r}: expected DEVICE:FAULT[@STATE], e.g. pump:disconnect@Aspirating")
    if device not in FAULT_DEVICES:
        raise MicromanipError(f"--inject {text!r}: unknown device {device!r} (known: {', '.join(FAULT_DEVICES)})")
    if fault not in FAULTS:
        raise MicromanipError(f"--inject {text!r}: unknown fault {fault!r} (known: {', '.join(FAULTS)})")
    state = None
    if state_name:
        by_name = {s.value.lower(): s for s in State}
        state = by_name.get(state_name.lower())
        if state is None or state == State.IDLE:
            known = ", ".join(s.value for s in State if s != State.IDLE)
            raise MicromanipError(f"--inject {text!r}: unknown state {state_name!r} (known: {known})")
    return Injection(device, fault, state)


class Injector:
    """Arms ``injections`` on one trial's controller; :meth:`report` says what happened after each."""

    def __init__(self, rig: Any, controller: Any, injections: list[Injection], t0_s: float) -> None:
        self.rig = rig
        self.t0_s = t0_s
        self.pending = list(injections)
        self.fired: list[dict[str, Any]] = []
        self._probe: Any = None
        from sim.rehearsal import fault_target

        for injection in self.pending:
            try:
                fault_target(rig, injection.device)
            except ValueError as exc:
                raise MicromanipError(f"--inject {injection}: {exc}") from None
        if self.pending:
            controller.transitioned.connect(self._on_transition)
            self._fire(lambda inj: inj.state is None)

    def _on_transition(self, tr: Any) -> None:
        self._fire(lambda inj: inj.state == tr.dst)

    def _fire(self, due) -> None:
        from sim.rehearsal import TwinProbe, inject

        for injection in [i for i in self.pending if due(i)]:
            self.pending.remove(injection)
            if self._probe is None:  # watching from just before the fault
                self._probe = TwinProbe(self.rig)
            inject(self.rig, injection.device, injection.fault)
            self.fired.append({"injection": str(injection), "t_s": self.rig.clock.now() - self.t0_s})
            log.warning("fault injected: %s", injection)

    def report(self, watch_s: float = 5.0) -> list[dict[str, Any]]:
        """Each injection that fired, with (for the first) what the twin's pump and motion did in the
        ``watch_s`` after it. The pipette's retraction starts once the manipulator has confirmed its stop
        and the tip's position is read, and lasts a few tenths of a second."""
        if self._probe is not None and self.fired:
            self.fired[0]["twin"] = asdict(self._probe.report(watch_s))
        return self.fired
