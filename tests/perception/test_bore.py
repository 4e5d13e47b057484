"""A head drawn into the pipette is seen in its bore, through the glass, in the twin's rendering."""

from __future__ import annotations

import numpy as np
import pytest

from perception.runtime.bore import heads_in_bore
from sim.config import Motility, SceneConfig
from sim.scene import PipettePose, Scene
from sim.standalone import CropRenderer

SIZE_PX = 480  # 70 um at the reference rig's 0.1465 um/px


def _frame(axis_deg: float, axial_um: float | None, seed: int = 3):
    """A frame of the reference rig with the pipette's opening 20 um left of centre (turned by ``axis_deg``
    about the view's centre), the bore's axis in the focal plane, and one rapid cell: inside the bore
    ``axial_um`` up it, or (None) far out of view."""
    crops = CropRenderer(scene_cfg=SceneConfig(n_sperm=1, n_debris=0, motility_mix={Motility.RAPID: 1.0}))
    scene = Scene(crops.cfg, seed=seed)
    focus = 6.0
    ang = np.deg2rad(axis_deg)
    axis = np.array([np.cos(ang), np.sin(ang), 0.0])
    pipette = PipettePose(np.array([0.0, 0.0, focus]) - 20.0 * axis, axis)
    cell = scene.sperm[0]
    if axial_um is None:
        cell.path_pos_um[:2] += 500.0
    else:
        scene.place_in_pipette(cell, pipette, axial_um)
    view = crops.view((0.0, 0.0), focus, SIZE_PX)
    pixels, _ = crops.image(scene, view, np.random.default_rng(seed), pipette=pipette)
    tip_px = view.sample_to_px(pipette.tip_um[None])[0]
    ahead_px = view.sample_to_px((pipette.tip_um + axis)[None])[0] - tip_px
    return pixels, tuple(tip_px), float(np.rad2deg(np.arctan2(ahead_px[1], ahead_px[0]))), crops.pixel_size_um


@pytest.mark.parametrize("axis_deg", [0.0, 30.0])
def test_a_head_inside_the_bore_is_seen_where_it_lies(axis_deg):
    pixels, tip, axis_px_deg, um = _frame(axis_deg, 18.0)
    seen = heads_in_bore(pixels, tip, axis_px_deg, um, bore_radius_um=3.0)
    assert seen and seen[0].axial_um == pytest.approx(18.0, abs=3.0)
    ahead = np.array([np.cos(np.deg2rad(axis_px_deg)), np.sin(np.deg2rad(axis_px_deg))])
    at = np.asarray(tip) + ahead * seen[0].axial_um / um  # where the GUI draws it: on the axis, that far up
    assert np.allclose(seen[0].position_px, at, atol=0.5)


@pytest.mark.parametrize("axis_deg", [0.0, 30.0])
def test_an_empty_bore_shows_no_head(axis_deg):
    pixels, tip, axis_px_deg, um = _frame(axis_deg, None)
    assert heads_in_bore(pixels, tip, axis_px_deg, um, bore_radius_um=3.0) == []


def test_no_bore_in_view_is_no_sighting():
    """A tip at the frame's edge, its bore running out of the frame: nothing to look at, nothing seen."""
    pixels, _, _, um = _frame(0.0, 18.0)
    assert heads_in_bore(pixels, (pixels.shape[1] - 5.0, 240.0), 0.0, um, bore_radius_um=3.0) == []
    assert heads_in_bore(pixels, (-50.0, 240.0), 0.0, um, bore_radius_um=3.0) == []
