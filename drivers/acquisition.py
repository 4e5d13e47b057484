"""Turn camera images into :class:`Frame` objects stamped with the stage and focus positions."""

from __future__ import annotations

from typing import Protocol

from drivers.frame import Frame, RawImage
from drivers.interfaces import Camera, FocusDrive, XYStage


class Watcher(Protocol):
    """Who times the devices' answers (control.supervisor.Supervisor): ``expect`` as a request starts,
    ``beat`` as its answer comes."""

    def expect(self, source: str) -> None: ...

    def beat(self, source: str) -> None: ...


class _Unwatched:
    def expect(self, source: str) -> None:
        pass

    def beat(self, source: str) -> None:
        pass


class FrameSource:
    """Couples a camera with the stage and focus drive so each frame knows where it was taken.

    ``watcher`` (a supervisor) is told when each of camera, stage and focus is asked and when it answers."""

    def __init__(self, camera: Camera, stage: XYStage, focus: FocusDrive, pixel_size_um: float) -> None:
        self.camera = camera
        self.stage = stage
        self.focus = focus
        self.pixel_size_um = pixel_size_um
        self.watcher: Watcher = _Unwatched()

    def stamp(self, image: RawImage) -> Frame:
        self.watcher.beat("camera")
        self.watcher.expect("stage")
        stage_xy_um = self.stage.position_um()
        self.watcher.beat("stage")
        self.watcher.expect("focus")
        focus_z_um = self.focus.z_um()
        self.watcher.beat("focus")
        return Frame(
            pixels=image.pixels,
            frame_id=image.frame_id,
            capture_time_s=image.capture_time_s,
            pixel_size_um=self.pixel_size_um,
            stage_xy_um=stage_xy_um,
            focus_z_um=focus_z_um,
            exposure_ms=image.exposure_ms,
            roi_offset_px=image.roi_offset_px,
            truth=image.truth,
        )

    def snap(self, timeout_s: float = 2.0) -> Frame:
        self.watcher.expect("camera")
        return self.stamp(self.camera.snap(timeout_s))
