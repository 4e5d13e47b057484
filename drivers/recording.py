"""Recorded microscope video as grey frames: a video file (OpenCV: mp4, avi, mov, mkv, ...), a folder of
images in name order, or a multi-page TIFF / OME-TIFF (tifffile). One reader for every recording, used by
the replay camera and by ``micromanip track`` / ``eval heads``.

Frames come out 2-D in a dtype :class:`drivers.frame.Frame` accepts: 8-bit stays uint8, 16-bit stays
uint16 (a camera's Mono12 stored in 16 bits), colour is converted to grey (luma), floating point becomes
float32. A path that cannot be read raises :class:`RecordingError` with one line naming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from drivers.errors import MicromanipError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".webp")
TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff")


class RecordingError(MicromanipError):
    """A recording is missing, unreadable or of an unsupported kind."""


def to_grey(img: np.ndarray, where: str) -> np.ndarray:
    """One frame as a 2-D grey image of uint8, uint16 or float32."""
    if img.ndim == 3 and img.shape[2] in (3, 4):  # OpenCV's BGR(A) order
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim != 2:
        raise RecordingError(f"{where}: frames must be 2-D grey or colour images, got shape {img.shape}")
    if img.dtype in (np.uint8, np.uint16, np.float32):
        return np.ascontiguousarray(img)
    if img.dtype == bool:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32)
    if np.issubdtype(img.dtype, np.integer) and img.min() >= 0 and img.max() <= 65535:
        return img.astype(np.uint16)
    return img.astype(np.float32)


class Recording(ABC):
    """A recording's frames in order. ``fps``: the frame rate stored in the file, None when it has none."""

    kind: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """(height, width) of every frame."""

    @property
    def fps(self) -> float | None:
        return None

    def name(self, index: int) -> str:
        """A frame's name for messages and label matching (the image file, else its number)."""
        return f"{self.path.name}[{index}]"

    @abstractmethod
    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as a grey image."""

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start`` .. ``stop`` - 1 in order (sequential reading: fast for video)."""
        for i in range(start, len(self) if stop is None else min(stop, len(self))):
            yield self.read(i)

    def close(self) -> None:
        pass

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoRecording(Recording):
    kind = "video"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise RecordingError(f"{path}: OpenCV cannot open this video")
        ok, first = self._cap.read()
        if not ok:
            self._cap.release()
            raise RecordingError(f"{path}: the video has no readable frame")
        self._first = to_grey(first, str(path))
        self._next = 1  # the index the capture reads next
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._count = count if count > 0 else None
        rate = float(self._cap.get(cv2.CAP_PROP_FPS))
        self._fps = rate if 0 < rate < 10_000 else None

    def __len__(self) -> int:
        if self._count is None:  # a stream without a frame count: count by reading once
            cap, n = cv2.VideoCapture(str(self.path)), 0
            while cap.grab():
                n += 1
            cap.release()
            self._count = n
        return self._count

    @property
    def shape(self) -> tuple[int, int]:
        return self._first.shape  # type: ignore[return-value]

    @property
    def fps(self) -> float | None:
        return self._fps

    def read(self, index: int) -> np.ndarray:
        if index == 0:
            return self._first.copy()
        if index != self._next:  # random access: seek (sequential reads never do)
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, img = self._cap.read()
        if not ok:
            # frame counts in container headers can overstate: the video ends here
            self._count = index
            raise RecordingError(f"{self.path}: no frame {index} (the video ends after {index} frames)")
        self._next = index + 1
        return to_grey(img, f"{self.path} frame {index}")

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        i = start
        while stop is None or i < stop:
            if self._count is not None and i >= self._count:
                return
            try:
                yield self.read(i)
            except RecordingError:
                return
            i += 1

    def close(self) -> None:
        self._cap.release()


class ImageFolderRecording(Recording):
    kind = "images"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise RecordingError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        self._shape = self.read(0).shape

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape  # type: ignore[return-value]

    def name(self, index: int) -> str:
        return self.files[index].name

    def read(self, index: int) -> np.ndarray:
        f = self.files[index]
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise RecordingError(f"{f}: cannot read this image")
        img = to_grey(img, str(f))
        if index and img.shape != self._shape:
            raise RecordingError(f"{f}: {img.shape[1]}x{img.shape[0]} px, but the folder's first image is "
                                 f"{self._shape[1]}x{self._shape[0]} px")
        return img


class TiffRecording(Recording):
    """Every plane of the file's first image series (time points, z planes, channels: in file order)."""

    kind = "tiff"

    def __init__(self, path: Path) -> None:
        import tifffile

        super().__init__(path)
        self._tif = None
        try:
            self._tif = tifffile.TiffFile(str(path))
            series = self._tif.series[0]
            self._pages = [p for p in series.pages if p is not None]
            if not self._pages:
                raise RecordingError(f"{path}: the TIFF holds no image")
            first = self._pages[0].asarray()
        except Exception as exc:  # tifffile raises many kinds on a damaged or foreign file
            if self._tif is not None:
                self._tif.close()
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
        page = self._pages[0]
        self._rgb = int(getattr(page, "photometric", 1) or 1) == int(tifffile.PHOTOMETRIC.RGB)
        self._samples_first = self._rgb and first.ndim == 3 and first.shape[0] in (3, 4) and first.shape[-1] not in (3, 4)
        self._shape = self._grey(first, 0).shape

    def _grey(self, img: np.ndarray, index: int) -> np.ndarray:
        if self._rgb:  # RGB(A) samples, last or (separate planes) first: to BGR for the luma conversion
            if self._samples_first:
                img = np.moveaxis(img, 0, -1)
            img = np.ascontiguousarray(img[..., 2::-1])
        return to_grey(img, f"{self.path} page {index}")

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape  # type: ignore[return-value]

    def read(self, index: int) -> np.ndarray:
        try:
            img = self._pages[index].asarray()
        except Exception as exc:
            raise RecordingError(f"{self.path}: page {index} unreadable ({type(exc).__name__}: {exc})") from None
        return self._grey(img, index)

    def close(self) -> None:
        self._tif.close()


def open_recording(path: str | Path) -> Recording:
    """Open a video file, an image folder or a (multi-page) TIFF by what the path is."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such file or folder")
    if path.is_dir():
        return ImageFolderRecording(path)
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return TiffRecording(path)
    if name.endswith(VIDEO_SUFFIXES):
        return VideoRecording(path)
    if name.endswith(IMAGE_SUFFIXES):
        raise RecordingError(f"{path}: a single image; give the folder of frames instead")
    raise RecordingError(f"{path}: unsupported recording (a video {'/'.join(s[1:] for s in VIDEO_SUFFIXES[:4])}..., "
                         "a folder of images, or a multi-page TIFF)")
