"""Multi-sperm tracking: constant-velocity Kalman filters, gated Hungarian assignment in a matching
cascade, CASA kinematics.

CASA parameters follow OpenCASA's definitions: VCL (curvilinear), VSL (straight line), VAP (path
smoothed by a 5-point moving average), LIN = VSL/VCL, STR = VSL/VAP, WOB = VAP/VCL, ALH (twice the
largest lateral distance of the head from the average path), BCF (crossings of the average path per s).
WHO 2021 class from VAP: rapid progressive >= 25 um/s, slow progressive 5-25, non-progressive < 5 with a
moving head, immotile otherwise.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.runtime.estimate import TrackState


@dataclass
class TrackerConfig:
    """In stage coordinates (um), so that stage motion is not mistaken for cell motion.

    Segmentation also finds blobs that are not heads (tail fragments, rings of defocused debris). They are
    tracked (else each would start a new track every frame) but reported only once the median shape of
    their recent detections looks like a head: a sperm head is an ellipse of about 4.4 x 2.8 um
    (elongation >= 1.5 seen flat, more seen edge-on, ~10 um^2 segmented), debris is mostly round or
    small. The segmentation's elongation (at 0.5 um/px) barely tells a round particle as wide as a head
    from a head (spheres 1.02-1.16, heads 1.03-1.4 across +-3 um of defocus on the twin), so a head must
    also not be round on the frame's own pixels (``detect.elongation_in_frame``): spheres 1.00-1.02 at any
    defocus, heads a median of 1.04 or more (1.04 at 2 um below focus, 1.4 in focus). The gates are
    loose (they keep ~95% of segmented heads on the twin), and a track once taken for a head stays
    reported, so a head blurring out of focus does not vanish from under the controller.
    """

    gate_um: float = 9.0  # largest innovation accepted
    max_speed_um_s: float = 250.0  # a head's fastest (rapid cells' VCL reaches ~200 um/s, plus the beat's swing)
    process_noise_um_s2: float = 900.0  # acceleration noise of the CV model: the path turns, speeds up
    # The head swings up to +-3.5 um across its path at the beat frequency (10-30 Hz; ALH up to 7 um), so
    # at 40 fps it may land on either side of the path from one frame to the next: no constant-velocity
    # model follows that, so the swing is measurement noise about the path (not 0.3 um of centroid noise,
    # with which the filter took the swing for velocity, overshot, and lost the head at every swing).
    measurement_noise_um: float = 1.0
    confirm_hits: int = 3
    # A track coasts on its prediction for at most as many frames as it was seen, and never more than
    # max_misses (0.4 s at 40 fps): a blob seen for two frames (noise, debris in a blurred frame) is gone
    # two frames after it went, while a head followed for seconds survives a longer miss (swinging out of
    # focus, passing another cell). With a fixed 16-frame coast every false blob on real video left a
    # track behind it at an empty spot for 16 frames.
    max_misses: int = 16
    history: int = 120
    min_head_area_um2: float = 3.0
    min_head_elongation: float = 1.1
    min_frame_elongation: float = 1.03


@dataclass
class Track:
    id: int
    x: np.ndarray  # (4,) px, px/s
    p: np.ndarray  # (4, 4)
    t_s: float
    hits: int = 1
    misses: int = 0
    age: int = 1
    positions: deque = field(default_factory=lambda: deque(maxlen=120))  # (t, x, y) of measured positions
    shapes: deque = field(default_factory=lambda: deque(maxlen=15))  # (area um^2, elongation[, on the frame])
    head: bool = False  # its shape has looked like a head (latched)
    detection: int | None = None  # index of the detection that measured it in the last update (None: missed)

    def predict(self, t_s: float, q: float) -> None:
        dt = max(t_s - self.t_s, 0.0)
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        g = np.array([[dt**2 / 2, 0], [0, dt**2 / 2], [dt, 0], [0, dt]])
        self.x = f @ self.x
        self.p = f @ self.p @ f.T + g @ g.T * q
        self.t_s = t_s

    def update(self, z: np.ndarray, r: float) -> None:
        h = np.eye(2, 4)
        s = h @ self.p @ h.T + np.eye(2) * r**2
        k = self.p @ h.T @ np.linalg.inv(s)
        self.x = self.x + k @ (z - h @ self.x)
        self.p = (np.eye(4) - k @ h) @ self.p

    def predicted_position(self, t_s: float) -> np.ndarray:
        return self.x[:2] + self.x[2:] * max(t_s - self.t_s, 0.0)


def casa(positions: np.ndarray, times: np.ndarray, pixel_size_um: float) -> dict[str, float] | None:
    """CASA kinematics of a track (positions px (N, 2), times s); None when too short."""
    if len(positions) < 7 or times[-1] - times[0] <= 0:
        return None
    p = positions * pixel_size_um
    duration = times[-1] - times[0]
    vcl = np.linalg.norm(np.diff(p, axis=0), axis=1).sum() / duration
    vsl = np.linalg.norm(p[-1] - p[0]) / duration
    kernel = np.ones(5) / 5
    avg = np.stack([np.convolve(p[:, i], kernel, mode="valid") for i in range(2)], axis=1)
    t_avg = times[2:-2]
    vap = np.linalg.norm(np.diff(avg, axis=0), axis=1).sum() / max(t_avg[-1] - t_avg[0], 1e-9)
    dev = p[2:-2] - avg
    seg = np.diff(avg, axis=0)
    normals = np.stack([-seg[:, 1], seg[:, 0]], axis=1) / np.maximum(np.linalg.norm(seg, axis=1, keepdims=True), 1e-9)
    lateral = np.sum(dev[:-1] * normals, axis=1)
    crossings = np.sum(np.diff(np.sign(lateral)) != 0)
    return {
        "VCL": vcl, "VSL": vsl, "VAP": vap,
        "LIN": vsl / vcl if vcl > 0 else 0.0, "STR": vsl / vap if vap > 0 else 0.0,
        "WOB": vap / vcl if vcl > 0 else 0.0,
        "ALH": 2 * float(np.abs(lateral).max()) if lateral.size else 0.0,
        "BCF": crossings / duration,
    }


def who_class(kin: dict[str, float] | None) -> str | None:
    if kin is None:
        return None
    if kin["VAP"] >= 25:
        return "rapid_progressive"
    if kin["VAP"] >= 5 and kin["STR"] > 0.5:
        return "slow_progressive"
    if kin["VCL"] >= 3:
        return "non_progressive"
    return "immotile"


class Tracker:
    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.cfg = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, positions_um: np.ndarray, t_s: float, shapes: np.ndarray | None = None) -> list[TrackState]:
        """Associate this frame's head positions (N, 2) in stage um; returns confirmed tracks (um).

        ``shapes`` (N, 2 or 3): each blob's area (um^2), elongation and optionally its elongation on the frame
        (NaN: not measured); without them every
        confirmed track is reported."""
        cfg = self.cfg
        for tr in self.tracks:
            tr.predict(t_s, cfg.process_noise_um_s2)
        z = np.asarray(positions_um, dtype=float).reshape(-1, 2)
        assigned_tracks, assigned_dets = set(), set()
        # Matching cascade (as in DeepSORT): confirmed tracks seen last frame choose first, then those
        # missed for one frame, and so on, and tentative tracks last. A coasting track's gate has grown
        # with its uncertainty, and with one round it took the head of a neighbour seen all along whenever
        # its drifting prediction lay nearer (a cell that had entered the pipette "came back out" as the
        # cell beside the glass).
        def rank(tr: Track) -> tuple[bool, int]:
            return tr.hits < cfg.confirm_hits, tr.misses

        for level in sorted({rank(tr) for tr in self.tracks}):
            rows_at = [i for i, tr in enumerate(self.tracks) if rank(tr) == level]
            cols_free = [c for c in range(len(z)) if c not in assigned_dets]
            if not cols_free:
                break
            for r, c in self._associate([self.tracks[i] for i in rows_at], z[cols_free]):
                r, c = rows_at[r], cols_free[c]
                tr = self.tracks[r]
                tr.update(z[c], cfg.measurement_noise_um)
                tr.hits += 1
                tr.misses = 0
                tr.detection = c
                tr.positions.append((t_s, z[c, 0], z[c, 1]))
                if shapes is not None:
                    tr.shapes.append(tuple(shapes[c]))
                assigned_tracks.add(r)
                assigned_dets.add(c)
        for i, tr in enumerate(self.tracks):
            tr.age += 1
            if i not in assigned_tracks:
                tr.misses += 1
                tr.detection = None
        self.tracks = [tr for tr in self.tracks if tr.misses <= min(cfg.max_misses, tr.hits)]
        for c in range(len(z)):
            if c not in assigned_dets:
                p = np.diag([cfg.measurement_noise_um**2] * 2 + [60.0**2] * 2)
                tr = Track(self._next_id, np.array([z[c, 0], z[c, 1], 0.0, 0.0]), p, t_s, detection=c)
                tr.positions.append((t_s, z[c, 0], z[c, 1]))
                if shapes is not None:
                    tr.shapes.append(tuple(shapes[c]))
                self.tracks.append(tr)
                self._next_id += 1
        return self.states()

    def _associate(self, tracks: list[Track], z: np.ndarray) -> list[tuple[int, int]]:
        """Gated nearest assignment (Hungarian) of detections ``z`` to ``tracks``: (track, detection) pairs."""
        cfg = self.cfg
        pred = np.array([tr.x[:2] for tr in tracks])
        sig = np.array([np.sqrt(max(tr.p[0, 0], tr.p[1, 1]) + cfg.measurement_noise_um**2) for tr in tracks])
        dist = np.linalg.norm(pred[:, None, :] - z[None, :, :], axis=2)
        # the gate grows with the track's uncertainty, so short misses can be bridged, and is never narrower
        # than a fast head goes since the track's last measurement: a cell that sat still (or a video that
        # repeats frames) and then moves is not lost for a new track
        since = np.array([tr.t_s - tr.positions[-1][0] if tr.positions else 0.0 for tr in tracks])
        gate = np.minimum(cfg.gate_um, np.maximum(4 * sig + 1.0, cfg.max_speed_um_s * since))[:, None]
        cost = np.where(dist <= gate, dist, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < 1e6]

    def _looks_like_head(self, tr: Track) -> bool:
        """Latched: the median shape is only computed until the track has once looked like a head."""
        if not tr.shapes:
            return True  # no shapes were given: cannot judge
        if not tr.head:
            area_um2, elongation, *on_frame = np.median(np.array(tr.shapes, dtype=float), axis=0)
            tr.head = bool(area_um2 >= self.cfg.min_head_area_um2
                           and not elongation < self.cfg.min_head_elongation  # NaN elongation passes
                           and not (on_frame and on_frame[0] < self.cfg.min_frame_elongation))
        return tr.head

    def states(self) -> list[TrackState]:
        out = []
        for tr in self.tracks:
            if tr.hits < self.cfg.confirm_hits:
                continue
            if not self._looks_like_head(tr):
                continue
            hist = np.array(tr.positions)
            kin = casa(hist[:, 1:], hist[:, 0], 1.0) if len(hist) else None
            quality = tr.hits / (tr.hits + tr.misses + 1)
            out.append(TrackState(tr.id, (float(tr.x[0]), float(tr.x[1])), (float(tr.x[2]), float(tr.x[3])),
                                  tr.age, tr.misses, quality, who_class(kin),
                                  kin["VSL"] if kin else None, kin["VCL"] if kin else None, detection=tr.detection))
        return out

    def get(self, track_id: int) -> Track | None:
        return next((t for t in self.tracks if t.id == track_id), None)
