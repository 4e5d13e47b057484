"""Turn camera images into :class:`Frame` objects stamped with the stage and focus positions."""

from __future__ import annotations

from drivers.frame import Frame, RawImage
from drivers.interfaces import Camera, FocusDrive, XYStage


class FrameSource:
    """Couples a camera with the stage and focus drive so each frame knows where it was taken."""

    def __init__(self, camera: Camera, stage: XYStage, focus: FocusDrive, pixel_size_um: float) -> None:
        self.camera = camera
        self.stage = stage
        self.focus = focus
        self.pixel_size_um = pixel_size_um

    def stamp(self, image: RawImage) -> Frame:
        return Frame(
            pixels=image.pixels,
            frame_id=image.frame_id,
            capture_time_s=image.capture_time_s,
            pixel_size_um=self.pixel_size_um,
            stage_xy_um=self.stage.position_um(),
            focus_z_um=self.focus.z_um(),
            exposure_ms=image.exposure_ms,
            roi_offset_px=image.roi_offset_px,
            truth=image.truth,
        )

    def snap(self, timeout_s: float = 2.0) -> Frame:
        return self.stamp(self.camera.snap(timeout_s))
