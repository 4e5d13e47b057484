"""The microscope objective and illumination, shared by the rig config, calibration and the simulator."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Objective(BaseModel):
    """Objective and bright-field illumination parameters (reference rig: Nikon 40x NA 0.65)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    magnification: float = Field(40.0, gt=0, description="lateral magnification onto the camera")
    na: float = Field(0.65, gt=0, le=1.7, description="objective numerical aperture")
    condenser_na: float = Field(0.5, gt=0, le=1.7, description="Koehler condenser aperture (sets coherence; ~75% of NA is the Koehler rule)")
    immersion_index: float = Field(1.0, ge=1.0, le=1.7, description="refractive index of the immersion medium")
    wavelength_um: float = Field(0.55, gt=0.2, lt=2.0, description="centre wavelength of the illumination")

    def pixel_size_um(self, sensor_pixel_um: float) -> float:
        """Size of one camera pixel at the sample."""
        return sensor_pixel_um / self.magnification

    def depth_of_field_um(self, sensor_pixel_um: float) -> float:
        """Classical depth of field, lambda*n/NA^2 + n*e/(M*NA) (wave term + detector term)."""
        n = self.immersion_index
        return self.wavelength_um * n / self.na**2 + n * sensor_pixel_um / (self.magnification * self.na)
