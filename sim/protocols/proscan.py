"""Prior ProScan III controller, as its RS-232 port behaves, moving a digital-twin stage.

Standard mode (``COMP 0``), commands and replies terminated by CR, fields separated by commas (the
controller also accepts space, tab, '=', ';', ':'). Positions are in controller units of ``RES,s`` um.
Moves (``G``, ``GR``) reply ``R`` when they end; ``K`` (kill) and ``I`` (stop) reply ``R`` at once.
A new move during a move retargets (only the last one replies ``R``). Errors reply ``E,n``: 4 parse
error, 5 unknown command, 8 value out of range.
"""

from __future__ import annotations

import re
import threading

from drivers.errors import MicromanipError
from drivers.interfaces import XYStage
from sim.protocols.line_server import LineServer

PARSE, UNKNOWN, OUT_OF_RANGE, NO_DRIVE = "E,4", "E,5", "E,8", "E,3"
STOPS = ("K", "I")


class ProScanServer:
    """Speaks ProScan on a pseudo-terminal (:attr:`port`) and drives ``stage`` (a twin device)."""

    def __init__(self, stage: XYStage, full_speed_um_s: float = 10000.0) -> None:
        self.stage = stage
        self.full_speed_um_s = full_speed_um_s
        self.resolution_um = 1.0
        self.speed_percent = 100
        self.accel_percent = 100
        self.compatibility = 1  # a controller powers up in compatibility mode
        self._generation = 0
        self._lock = threading.Lock()
        self.link = LineServer(self.handle, "proscan", is_stop=lambda line: line.strip()[:1].upper() in STOPS,
                               refusal=lambda line: [NO_DRIVE])
        self.port = self.link.port

    @property
    def received(self):
        """(monotonic s, message) of every message received lately."""
        return self.link.received

    def inject(self, fault: str) -> None:
        """A fault of :mod:`sim.protocols.faults` from now on (``error_code``: ``E,3``, no drive)."""
        self.link.inject(fault)

    def handle(self, line: str) -> list[str]:
        parts = [p for p in re.split(r"[ ,\t=;:]+", line.strip()) if p]
        cmd, args = parts[0].upper(), parts[1:]
        try:
            nums = [float(a) for a in args if a.lower() not in ("s", "x", "y", "z")]
        except ValueError:
            return [PARSE]
        if cmd == "COMP":
            if nums:
                self.compatibility = int(nums[0])
                return ["0"]
            return [str(self.compatibility)]
        if cmd == "VERSION":
            return ["100"]
        if cmd == "SERIAL":
            return ["70001"]
        if cmd == "RES":
            if nums:
                if nums[0] <= 0:
                    return [OUT_OF_RANGE]
                self.resolution_um = nums[0]
                return ["0"]
            return [f"{self.resolution_um:g}"]
        if cmd in ("SMS", "SAS"):
            if nums:
                if not 1 <= nums[0] <= 100:
                    return [OUT_OF_RANGE]
                setattr(self, "speed_percent" if cmd == "SMS" else "accel_percent", int(nums[0]))
                return ["0"]
            return [str(self.speed_percent if cmd == "SMS" else self.accel_percent)]
        if cmd in ("P", "PS"):
            x, y = (round(v / self.resolution_um) for v in self.stage.position_um())
            return [f"{x},{y},0" if cmd == "P" else f"{x},{y}"]
        if cmd == "$":
            return [str(3 if self.stage.is_moving() else 0)]
        if cmd in ("K", "I"):
            with self._lock:
                self._generation += 1
            self.stage.stop()
            return ["R"]
        if cmd in ("G", "GR"):
            if len(nums) < 2:
                return [PARSE]
            x, y = nums[0] * self.resolution_um, nums[1] * self.resolution_um
            if cmd == "GR":
                px, py = self.stage.position_um()
                x, y = px + x, py + y
            speed = min(self.full_speed_um_s * self.speed_percent / 100, self.stage.max_speed_um_s)
            try:
                handle = self.stage.move_to_um(x, y, speed)
            except MicromanipError:
                return [OUT_OF_RANGE]
            with self._lock:
                self._generation += 1
                generation = self._generation
            threading.Thread(target=self._report_end, args=(handle, generation), daemon=True).start()
            return []
        return [UNKNOWN]

    def _report_end(self, handle, generation: int) -> None:
        """Send ``R`` when the move ends, unless a kill or a newer move superseded it."""
        self.stage.clock.wait_until(lambda: handle.done or self._generation != generation, 600.0, 0.002)
        with self._lock:
            current = self._generation == generation
        if current:
            self.link.send("R")

    def close(self) -> None:
        self.link.close()
