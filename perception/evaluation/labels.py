"""Head boxes of a video, read from the label formats labs export: COCO-video JSON, MOTChallenge
``gt.txt`` and Pascal VOC folders, into one structure (frame index, box, optional track id).

Frame indices are 0-based everywhere in micromanip: MOTChallenge's 1-based frame numbers are shifted on
reading (and back on writing). A file that cannot be read raises :class:`LabelError` with one line that
names the file and the problem.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from drivers.errors import MicromanipError

FORMATS = ("coco", "mot", "voc")


class LabelError(MicromanipError):
    """A label or prediction file is missing, malformed, or of an unknown format."""


@dataclass(frozen=True, eq=False)
class HeadBoxes:
    """Boxes of one video, one row each: ``frame`` (N,) 0-based, ``xywh`` (N, 4) left, top, width, height in
    the video's pixels, ``track_id`` (N,) or None when the source carries no identities, ``conf`` (N,).

    ``frames`` lists the frames that were labelled (or processed), boxes or not: a labelled frame with no
    box says "no head here", which scores a detection in it as a false positive, while a frame outside
    ``frames`` is not scored at all. ``names`` maps a frame to its image file where the source names one.
    ``ignore`` (N,) marks "don't care" boxes (MOTChallenge's zero flag, COCO's crowds, a simulated head far
    out of focus): a prediction on one is neither a hit nor a false positive.
    """

    frame: np.ndarray
    xywh: np.ndarray
    track_id: np.ndarray | None
    conf: np.ndarray
    frames: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    source: str = ""
    ignore: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.frame)
        if self.ignore is None:
            object.__setattr__(self, "ignore", np.zeros(n, dtype=bool))
        if (self.xywh.shape != (n, 4) or len(self.conf) != n or len(self.ignore) != n
                or (self.track_id is not None and len(self.track_id) != n)):
            raise ValueError("HeadBoxes: frame, xywh, conf, ignore and track_id need one row per box")

    @classmethod
    def from_rows(cls, frame: Iterable[int], xywh: Iterable[Iterable[float]], track_id: Iterable[int] | None = None,
                  conf: Iterable[float] | None = None, frames: Iterable[int] | None = None,
                  names: dict[int, str] | None = None, source: str = "",
                  ignore: Iterable[bool] | None = None) -> HeadBoxes:
        f = np.asarray(list(frame), dtype=np.int64)
        boxes = np.asarray(list(xywh), dtype=float).reshape(-1, 4)
        ids = None if track_id is None else np.asarray(list(track_id), dtype=np.int64)
        c = np.ones(len(f)) if conf is None else np.asarray(list(conf), dtype=float)
        fr = np.unique(f) if frames is None else np.unique(np.asarray(list(frames), dtype=np.int64))
        ign = None if ignore is None else np.asarray(list(ignore), dtype=bool)
        return cls(f, boxes, ids, c, fr, dict(names or {}), source, ign)

    @property
    def has_ids(self) -> bool:
        return self.track_id is not None

    @property
    def centres_px(self) -> np.ndarray:
        return self.xywh[:, :2] + self.xywh[:, 2:] / 2

    def in_frame(self, index: int) -> np.ndarray:
        """Row indices of the boxes in frame ``index``."""
        return np.flatnonzero(self.frame == index)

    def select(self, frames: Iterable[int]) -> HeadBoxes:
        """Only the given frames (those of them that are in ``self.frames``)."""
        keep_frames = np.intersect1d(self.frames, np.asarray(list(frames), dtype=np.int64))
        rows = np.isin(self.frame, keep_frames)
        return HeadBoxes(self.frame[rows], self.xywh[rows], None if self.track_id is None else self.track_id[rows],
                         self.conf[rows], keep_frames, {k: v for k, v in self.names.items() if k in set(keep_frames)},
                         self.source, self.ignore[rows])


# ----- readers ---------------------------------------------------------------------------------------------
def detect_format(path: Path) -> str:
    """``coco`` for .json, ``mot`` for .txt/.csv, ``voc`` for a folder of .xml files (or one with Annotations/)."""
    path = Path(path)
    if path.is_dir():
        return "voc"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix in (".txt", ".csv"):
        return "mot"
    raise LabelError(f"{path}: unknown label format (expected COCO-video .json, MOTChallenge .txt or a Pascal VOC "
                     "folder of .xml files)")


def load_labels(path: str | Path, fmt: str | None = None) -> HeadBoxes:
    """Read head labels in any supported format (detected from the path unless ``fmt`` is given)."""
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{path}: no such file or folder")
    fmt = fmt or detect_format(path)
    if fmt == "coco":
        return load_coco_video(path)
    if fmt == "mot":
        return load_mot(path, labels=True)
    if fmt == "voc":
        return load_voc(path)
    raise LabelError(f"{path}: unknown label format {fmt!r} (known: {', '.join(FORMATS)})")


def load_coco_video(path: Path, video_id: int | None = None) -> HeadBoxes:
    """COCO-video JSON (``images[]`` with ``frame_id``, ``annotations[]`` with ``bbox`` and ``track_id``).

    Every image listed is a labelled frame, annotated or not. Crowd annotations (``iscrowd``) are "don't care".
    Track ids come from ``track_id`` (or ``instance_id``, TAO's name); if any annotation lacks one, the
    labels carry no identities. With several videos in one file, ``video_id`` picks one.
    """
    try:
        doc = json.loads(Path(path).read_text())
        images = doc["images"]
        anns = doc.get("annotations", [])
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise LabelError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (KeyError, TypeError):
        raise LabelError(f"{path}: not COCO JSON (no images[] list)") from None
    try:
        videos = sorted({im.get("video_id") for im in images} - {None})
        if video_id is None and len(videos) > 1:
            raise LabelError(f"{path}: holds {len(videos)} videos (ids {videos[:8]}); choose one")
        if video_id is not None:
            images = [im for im in images if im.get("video_id") == video_id]
            if not images:
                raise LabelError(f"{path}: no images of video {video_id}")
        # frame order: frame_id where given, else the image order of file names
        if all("frame_id" in im for im in images):
            index = {im["id"]: int(im["frame_id"]) for im in images}
        else:
            order = sorted(images, key=lambda im: str(im.get("file_name", im["id"])))
            index = {im["id"]: i for i, im in enumerate(order)}
        names = {index[im["id"]]: str(im["file_name"]) for im in images if "file_name" in im}
        rows = [a for a in anns if a.get("image_id") in index]
        ids_key = next((k for k in ("track_id", "instance_id") if rows and all(k in a for a in rows)), None)
        boxes = HeadBoxes.from_rows(
            [index[a["image_id"]] for a in rows], [a["bbox"] for a in rows],
            [int(a[ids_key]) for a in rows] if ids_key else None, [float(a.get("score", 1.0)) for a in rows],
            frames=index.values(), names=names, source=str(path), ignore=[bool(a.get("iscrowd", 0)) for a in rows])
    except LabelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise LabelError(f"{path}: malformed COCO entry ({type(exc).__name__}: {exc})") from None
    if not len(boxes.frames):
        raise LabelError(f"{path}: no images")
    return boxes


def load_mot(path: Path, labels: bool = True) -> HeadBoxes:
    """MOTChallenge text: ``frame,id,x,y,w,h,conf[,class,visibility...]``, frame 1-based.

    As labels (``gt.txt``), a 7th column of 0 marks a "don't care" box (MOTChallenge's convention); frames
    1..last are all labelled. As predictions, every row is kept and conf is the score.
    An id of -1 on every row means the file carries no identities.
    """
    rows: list[list[float]] = []
    try:
        with Path(path).open(newline="") as fh:
            for n, row in enumerate(csv.reader(fh), start=1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                if len(row) < 6:
                    raise LabelError(f"{path}: line {n}: expected frame,id,x,y,w,h[,conf,...], got {len(row)} fields")
                try:
                    rows.append([float(v) for v in row[:7]] + [1.0] * (7 - len(row[:7])))
                except ValueError:
                    raise LabelError(f"{path}: line {n}: not a number in {','.join(row[:7])!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: cannot read ({exc})") from None
    a = np.asarray(rows, dtype=float).reshape(-1, 7)
    if len(a) and (a[:, 0] < 1).any():
        raise LabelError(f"{path}: MOTChallenge frame numbers start at 1 (found {int(a[:, 0].min())})")
    last = int(a[:, 0].max()) if len(a) else 0
    ids = None if (a[:, 1] == -1).all() else a[:, 1].astype(np.int64)
    frames = np.arange(last) if labels else np.unique(a[:, 0].astype(np.int64) - 1)
    return HeadBoxes.from_rows(a[:, 0].astype(np.int64) - 1, a[:, 2:6], ids, a[:, 6], frames=frames, source=str(path),
                               ignore=(a[:, 6] == 0) if labels else None)


def load_voc(folder: Path) -> HeadBoxes:
    """A Pascal VOC folder: one XML per frame (``<object><bndbox>``), frames in file-name order.

    A folder holding ``Annotations/`` (the VOC layout) is read from there. An object's ``<track_id>`` (or
    ``<attributes><attribute><name>track_id</name><value>``, CVAT's form) gives identities when every
    object has one. ``<filename>`` names the frame's image.
    """
    folder = Path(folder)
    if (folder / "Annotations").is_dir():
        folder = folder / "Annotations"
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise LabelError(f"{folder}: no .xml files (Pascal VOC)")
    frame, boxes, ids, names = [], [], [], {}
    for i, f in enumerate(files):
        try:
            root = ET.parse(f).getroot()
        except (ET.ParseError, OSError) as exc:
            raise LabelError(f"{f}: not valid XML ({exc})") from None
        if root.findtext("filename"):
            names[i] = root.findtext("filename").strip()
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            try:
                x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise LabelError(f"{f}: an <object> lacks a numeric <bndbox> xmin/ymin/xmax/ymax") from None
            frame.append(i)
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            ids.append(_voc_track_id(obj))
    have_ids = bool(ids) and all(t is not None for t in ids)
    return HeadBoxes.from_rows(frame, boxes, ids if have_ids else None, frames=range(len(files)), names=names,
                               source=str(folder))


def _voc_track_id(obj: ET.Element) -> int | None:
    text = obj.findtext("track_id")
    if text is None:
        for attr in obj.iter("attribute"):
            if (attr.findtext("name") or "").strip() == "track_id":
                text = attr.findtext("value")
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


# ----- writer ----------------------------------------------------------------------------------------------
def mot_row(frame: int, track_id: int, xywh: Iterable[float], conf: float) -> str:
    """One MOTChallenge row ``frame,id,x,y,w,h,conf,-1,-1,-1`` for 0-based ``frame`` (written 1-based)."""
    x, y, w, h = xywh
    return f"{int(frame) + 1},{int(track_id)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{conf:.3f},-1,-1,-1"


def mot_rows(boxes: HeadBoxes) -> list[str]:
    """All boxes as MOTChallenge rows in frame order (id -1 where the boxes carry no identities)."""
    ids = boxes.track_id if boxes.has_ids else np.full(len(boxes.frame), -1)
    return [mot_row(boxes.frame[r], ids[r], boxes.xywh[r], boxes.conf[r]) for r in np.lexsort((ids, boxes.frame))]
