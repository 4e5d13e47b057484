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


@dataclass(frozen=True)
class BorePoint:
    """One sighting in the bore, placed in three frames: where it lies in the image (lab frame, um), in the
    dish (sample frame, um), and how far up the bore from the opening (the glass's own frame, um)."""

    image_um: np.ndarray  # (2,)
    dish_um: np.ndarray  # (2,)
    axial_um: float


@dataclass(eq=False)
class _Path:
    """Sightings in the bore linked frame to frame: each one's time, place (image and dish, stacked (2, 2)),
    distance up the bore, frame number, whether it may be counted and whether the pump ran."""

    t_s: list[float] = field(default_factory=list)
    where_um: list[np.ndarray] = field(default_factory=list)
    axial_um: list[float] = field(default_factory=list)
    frame: list[int] = field(default_factory=list)
    counting: list[bool] = field(default_factory=list)
    pumping: list[bool] = field(default_factory=list)

    def add(self, t_s: float, where_um: np.ndarray, axial_um: float, frame: int, counting: bool,
            pumping: bool) -> None:
        self.t_s.append(t_s)
        self.where_um.append(where_um)
        self.axial_um.append(axial_um)
        self.frame.append(frame)
        self.counting.append(counting)
        self.pumping.append(pumping)


@dataclass
class HeldInBoreWatch:
    """Counts the frames that see a head inside the bore, leaving out sightings that stay where they lie in
    the dish or in the image, and sightings on their way out toward the opening.

    Sightings are placed in the image (the lab frame), in the dish (the sample frame) and along the bore,
    and linked frame to frame into paths (:meth:`update`). A head inside moves in the image and in the dish:
    while the pump runs its flow carries the head up the bore, and after it stops the head goes with the
    glass as the tip backs away for the verification. Debris, or a cell lying above or beneath the glass
    and seen through it, stays where it lies in the dish however the glass moves over it, and dust on the
    optics stays where it lies in the image however the stage moves. So, with ``still_s`` and ``moved_um``:

    - a sighting taken while the pump ran does not count when its path, over the ``still_s`` before it or
      the ``still_s`` after it, never lay ``moved_um`` from it in the image, or never in the dish: nothing
      inside the bore stays put in the flow, and a path that moved before may be still now (a cell swimming
      along beneath the glass, then debris where it passed, linked to it);
    - a sighting taken after the pump stopped does not count when its path, followed for ``still_s`` or
      longer, never lay ``moved_um`` from where it began in the image, or never in the dish: a head held
      inside rests until the glass backs away and then goes with it, so only the whole path tells;
    - nor does a sighting count whose path, within ``still_s`` either side of it, came ``moved_um`` or more
      down the bore toward the opening: the flow carries what is inside up the bore, and the twin's held
      heads never come back down it; a head swimming back out is not held, and a cell swimming beneath the
      glass toward the opening, seen through it, is not inside.

    ``max_speed_um_s``: the fastest a sighting moves in either frame (the glass backing away at up to 200
    um/s, the stage, the flow's ~45 um/s and a head's swimming).

    Development seed 2, trial 6 without depth perception: two sightings 16 and 24 um up the bore, still in
    the dish and left behind when the tip backed away, seen in 64 frames, passed for a cell held inside (a
    false success). Linked frame to frame only, 7 of those frames still counted: the sightings, missed for
    two frames now and then, began short paths anew; hence a sighting is also linked to a path that began
    where it lies. Development seed 3 without depth perception, trials 4 and 7 (false successes): a cell
    swimming along beneath the glass linked to something still where it passed (the path had moved, so
    all 32 of its frames counted), and a cell swimming beneath the glass from 19 to 7 um up the bore,
    toward the opening (11 frames). Not caught: two things a few um apart that the bore reports in turn
    (one sighting per head length) are linked into one path that seems to move (trial 4's second attempt).
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
        """Counted frames that saw a head that is neither still nor on its way out."""
        return self._count(all_sightings=False)

    @property
    def seen(self) -> int:
        """Counted frames that saw anything in the bore."""
        return self._count(all_sightings=True)

    def _count(self, all_sightings: bool) -> int:
        frames: set[int] = set()
        for p in self._paths:
            t = np.asarray(p.t_s)
            where = np.asarray(p.where_um)
            axial = np.asarray(p.axial_um)
            pumping = np.asarray(p.pumping)
            still = self._still(t, where)
            for i in np.flatnonzero(p.counting):
                if all_sightings or not (self._leaving(t, axial, i) or (
                        self._still_around(t[pumping], where[pumping], int(pumping[:i].sum())) if pumping[i]
                        else still)):
                    frames.add(p.frame[i])
        return max(len(frames), self._floor)

    def _still(self, t: np.ndarray, where: np.ndarray) -> bool:
        """A path followed for ``still_s`` or longer that never lay ``moved_um`` from where it began in the
        image, or never in the dish."""
        return bool(t[-1] - t[0] >= self.still_s - 1e-9
                    and np.linalg.norm(where - where[0], axis=2).max(axis=0).min() < self.moved_um)

    def _still_around(self, t: np.ndarray, where: np.ndarray, i: int) -> bool:
        """Sightings while the pump ran: over the ``still_s`` before sighting ``i`` or the ``still_s`` after
        it, its path never lay ``moved_um`` from it in the image, or never in the dish. A side is judged
        only where the path was followed that long, and seen over at least half of it (a faint thing is seen
        now and then; two sightings far apart in time tell nothing of how it moved between)."""
        sides = []
        if t[i] - t[0] >= self.still_s - 1e-9:
            sides.append(np.flatnonzero((t >= t[i] - self.still_s) & (t <= t[i])))
        if t[-1] - t[i] >= self.still_s - 1e-9:
            sides.append(np.flatnonzero((t >= t[i]) & (t <= t[i] + self.still_s)))
        for window in sides:
            if t[window[-1]] - t[window[0]] < 0.5 * self.still_s - 1e-9:
                continue
            if np.linalg.norm(where[window] - where[i], axis=2).max(axis=0).min() < self.moved_um:
                return True
        return False

    def _leaving(self, t: np.ndarray, axial: np.ndarray, i: int) -> bool:
        """Within ``still_s`` either side of sighting ``i``, its path came ``moved_um`` down the bore."""
        window = np.flatnonzero(np.abs(t - t[i]) <= self.still_s)
        return bool(axial[window[-1]] - axial[window[0]] <= -self.moved_um)

    def credit(self, frames: int) -> None:
        """At least ``frames`` count: a head seen drawn up the bore for that many (``DrawnInWatch``)."""
        self._floor = max(self._floor, frames)

    def restart(self) -> None:
        """Nothing counted so far counts: the entry it would verify turned out none (the paths go on)."""
        for p in self._paths:
            p.counting = [False] * len(p.counting)
        self._floor = 0

    def update(self, t_s: float, points: list[BorePoint], *, pumping: bool, counting: bool = True) -> None:
        """Feed one frame's sightings taken at ``t_s``; ``pumping``: whether the pump ran; ``counting``:
        whether this frame may be counted (one from before the cell could have entered only extends the
        paths).

        A sighting links to the nearest path seen within the last ``max_missed`` + 1 frames that it could
        have reached, else to one that began within ``moved_um`` of it in the image or in the dish and has
        stayed there in that frame (a still thing seen now and then is the same thing), else it begins a
        path. Development seed 3, trial 4 without depth perception: a sighting at the opening after the tip
        backed away lay where a path began in the image, a path that had moved there with the stage; linked
        to it, it made that path move in the dish, and the debris seen in 29 frames counted."""
        self._frame += 1
        dt = 0.025 if self._last_s is None else max(t_s - self._last_s, 1e-3)
        self._last_s = t_s
        taken: set[int] = set()
        for point in points:
            q = np.stack([np.asarray(point.image_um, dtype=float), np.asarray(point.dish_um, dtype=float)])
            best = self._nearest(q, t_s, dt, taken)
            if best is None:
                self._paths.append(_Path())
                best = len(self._paths) - 1
            taken.add(best)
            self._paths[best].add(t_s, q, float(point.axial_um), self._frame, counting, pumping)

    def _nearest(self, q: np.ndarray, t_s: float, dt: float, taken: set[int]) -> int | None:
        if not self._paths:
            return None
        free = np.ones(len(self._paths), dtype=bool)
        free[list(taken)] = False
        since_s = t_s - np.array([p.t_s[-1] for p in self._paths])
        d = np.linalg.norm(np.array([p.where_um[-1] for p in self._paths]) - q, axis=2).max(axis=1)
        # one it could have reached since it was last seen, else one that began where it lies
        ok = free & (since_s <= (self.max_missed + 1) * dt + 1e-9) & (d <= self.max_speed_um_s * since_s + self.link_um)
        if not ok.any():  # where it began, in a frame in which it has stayed there
            first = np.array([p.where_um[0] for p in self._paths])
            stayed = np.array([np.linalg.norm(np.asarray(p.where_um) - p.where_um[0], axis=2).max(axis=0)
                               for p in self._paths]) < self.moved_um
            d = np.where(stayed, np.linalg.norm(first - q, axis=2), np.inf).min(axis=1)
            ok = free & (d <= self.moved_um)
        return int(np.flatnonzero(ok)[np.argmin(d[ok])]) if ok.any() else None
