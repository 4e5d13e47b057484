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

import numpy as np

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


@dataclass(eq=False)
class _Path:
    """Sightings in the bore linked frame to frame: where the first lay in the image and in the dish (both
    in um: lab and sample frames) and when, where the latest lay and when, how far from the first any lay
    in each, and the counted frames that saw it."""

    first_um: np.ndarray  # (2, 2): image, dish
    first_s: float
    last_um: np.ndarray
    last_s: float
    moved_um: np.ndarray = field(default_factory=lambda: np.zeros(2))
    frames: set[int] = field(default_factory=set)


@dataclass
class HeldInBoreWatch:
    """Counts the frames that see a head in the bore, leaving out sightings that stay where they lie in
    the dish or in the image.

    Sightings are placed both in the image (the lab frame) and in the dish (the sample frame), and linked
    frame to frame into paths (:meth:`update`). A head inside moves in both: the flow carries it up the
    bore, it swims there, and when the tip backs away for the verification it goes with the glass. Debris,
    or a cell lying above or beneath the glass and seen through it, stays where it lies in the dish however
    the glass moves over it, and dust on the optics stays where it lies in the image however the stage
    moves. A path followed for ``still_s`` or longer that never lay ``moved_um`` from where it began, in
    the image or in the dish, is such a one, and none of its frames count, before or after; a shorter path,
    or one that has moved in both, counts. ``max_speed_um_s``: the fastest a sighting moves in either frame
    (the glass backing away at up to 200 um/s, the stage, the flow's ~45 um/s and a head's swimming).

    Development seed 2, trial 6 without depth perception: two sightings 16 and 24 um up the bore, still in
    the dish and left behind when the tip backed away, seen in 64 frames, passed for a cell held inside (a
    false success). Linked frame to frame only, 7 of those frames still counted: the sightings, missed for
    two frames now and then, began short paths anew; hence a sighting is also linked to a path that began
    where it lies.
    """

    moved_um: float = 3.0
    still_s: float = 0.25
    max_speed_um_s: float = 250.0
    link_um: float = 1.5  # jitter between frames, on top of the motion
    max_missed: int = 1
    _paths: list[_Path] = field(default_factory=list)
    _frame: int = 0
    _last_s: float | None = None
    _floor: int = 0  # frames credited from elsewhere (a head seen drawn up the bore)

    @property
    def frames(self) -> int:
        """Counted frames that saw a path that is not still."""
        return self._count(still_too=False)

    @property
    def seen(self) -> int:
        """Counted frames that saw anything in the bore, still or not."""
        return self._count(still_too=True)

    def _count(self, still_too: bool) -> int:
        frames: set[int] = set()
        for p in self._paths:
            if still_too or p.last_s - p.first_s < self.still_s or p.moved_um.min() >= self.moved_um:
                frames |= p.frames
        return max(len(frames), self._floor)

    def credit(self, frames: int) -> None:
        """At least ``frames`` count: a head seen drawn up the bore for that many (``DrawnInWatch``)."""
        self._floor = max(self._floor, frames)

    def restart(self) -> None:
        """Nothing counted so far counts: the entry it would verify turned out none (the paths go on)."""
        for p in self._paths:
            p.frames.clear()
        self._floor = 0

    def update(self, t_s: float, points_um: list[np.ndarray], counting: bool = True) -> None:
        """Feed one frame's sightings taken at ``t_s``, each a (2, 2) array: where it lies in the image and
        in the dish (um); ``counting``: whether this frame may be counted (one from before the cell could
        have entered only extends the paths).

        A sighting links to the nearest path seen within the last ``max_missed`` + 1 frames that it could
        have reached, else to one that began within ``moved_um`` of it in the image or in the dish (a still
        thing seen now and then is the same thing), else it begins a path."""
        self._frame += 1
        dt = 0.025 if self._last_s is None else max(t_s - self._last_s, 1e-3)
        self._last_s = t_s
        taken: set[int] = set()
        for q in points_um:
            q = np.asarray(q, dtype=float)
            best = self._nearest(q, t_s, dt, taken)
            if best is None:
                self._paths.append(_Path(q, t_s, q, t_s))
                best = len(self._paths) - 1
            p = self._paths[best]
            taken.add(best)
            p.last_um, p.last_s = q, t_s
            p.moved_um = np.maximum(p.moved_um, np.linalg.norm(q - p.first_um, axis=1))
            if counting:
                p.frames.add(self._frame)

    def _nearest(self, q: np.ndarray, t_s: float, dt: float, taken: set[int]) -> int | None:
        if not self._paths:
            return None
        free = np.ones(len(self._paths), dtype=bool)
        free[list(taken)] = False
        since_s = t_s - np.array([p.last_s for p in self._paths])
        d = np.linalg.norm(np.array([p.last_um for p in self._paths]) - q, axis=2).max(axis=1)
        # one it could have reached since it was last seen, else one that began where it lies
        ok = free & (since_s <= (self.max_missed + 1) * dt + 1e-9) & (d <= self.max_speed_um_s * since_s + self.link_um)
        if not ok.any():
            d = np.linalg.norm(np.array([p.first_um for p in self._paths]) - q, axis=2).min(axis=1)
            ok = free & (d <= self.moved_um)
        return int(np.flatnonzero(ok)[np.argmin(d[ok])]) if ok.any() else None
