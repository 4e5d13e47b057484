"""A head drawn up the bore: the surest sign that the pump has taken a cell in.

While the pump runs, the line's flow carries whatever enters up the bore at ~40 um/s (1.2 nL/s through a
6 um bore), about 1 um per frame at 40 fps. Perception reports head-sized disturbances inside the bore each
frame (``Estimate.bore``); one that first shows near the opening and then advances up the bore frame after
frame is a cell the flow has taken in, whichever cell it is. Watching for it matters because the target's
own track is an unreliable witness at the opening: the tracker may hand the vanished target's track to a
neighbour waiting in front of the glass, or follow the head in through the glass, and the pump then runs
its whole window and carries the cell out of the field of view (traced on development seed 2: four of six
failures). A sighting that stays put (a head or tail beside the glass, seen through it) is no entry, nor
is one that was already there before the pump started, however it moves after: a cell swimming along
beside the glass drags its tail across the bore at the flow's pace (development seed 2, trial 36: a faint
sighting at 11 um before the pump, then moving to 17 um, was taken for an entry: a false success).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from perception.runtime.estimate import BoreSighting


@dataclass
class Chain:
    """Sightings linked frame to frame: where the first and the latest lay (um up the bore), the frame of
    the latest, and how many frames saw it."""

    first_um: float
    last_um: float
    last_frame: int
    frames: int = 1
    before_pump: bool = False  # continues a sighting from before the pump started: never an entry


@dataclass
class DrawnInWatch:
    """Links each frame's bore sightings into chains that advance up the bore.

    ``start_um``: a chain begins only with a sighting this close to the opening (a cell enters there);
    ``frames``, ``advance_um``: a chain this long that has moved this far up is a head drawn in;
    ``max_step_um``: the most a head moves up the bore between consecutive frames (the flow plus a cell
    swimming up it); ``back_um``: jitter allowed against the flow; ``same_um``: a new sighting this close
    to one followed from before the pump is that one; ``max_gap``: frames a chain may miss.
    """

    start_um: float = 12.0
    frames: int = 4
    advance_um: float = 3.0
    max_step_um: float = 3.0
    back_um: float = 1.0
    same_um: float = 1.5
    max_gap: int = 1
    _chains: list[Chain] = field(default_factory=list)
    _frame: int = 0

    def reset(self, before_um: tuple[float, ...] = ()) -> None:
        """Start watching as the pump starts; ``before_um``: where sightings lay in the last frames before
        it, whatever they are, followed on but never taken for an entry."""
        self._frame = 0
        self._chains = [Chain(a, a, 0, before_pump=True) for a in before_um]

    def update(self, sightings: tuple[BoreSighting, ...]) -> Chain | None:
        """Feed one frame's sightings; returns the chain of a head drawn in, if one is now established."""
        self._frame += 1
        self._chains = [c for c in self._chains if self._frame - c.last_frame <= self.max_gap + 1]
        for s in sorted(sightings, key=lambda s: s.axial_um):
            best, best_err = None, None
            for c in self._chains:
                if c.last_frame == self._frame:
                    continue
                gap = self._frame - c.last_frame
                step = s.axial_um - c.last_um
                if -self.back_um <= step <= self.max_step_um * gap:
                    err = abs(step - gap)  # ~1 um a frame: the flow's pace
                    if best_err is None or err < best_err:
                        best, best_err = c, err
            if best is not None:
                best.last_um, best.last_frame, best.frames = s.axial_um, self._frame, best.frames + 1
            elif s.axial_um <= self.start_um:  # near one from before the pump: that one, seen a little off
                before = any(c.before_pump and abs(c.last_um - s.axial_um) <= self.same_um for c in self._chains)
                self._chains.append(Chain(s.axial_um, s.axial_um, self._frame, before_pump=before))
        for c in self._chains:
            if not c.before_pump and c.frames >= self.frames and c.last_um - c.first_um >= self.advance_um:
                return replace(c)
        return None
