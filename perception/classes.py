"""What perception's models predict, as label values: the segmentation's classes and the depth classes.

Perception owns these. Everything that makes labels for its models (the twin's datasets, real-video
labels) writes them in these terms and imports them from here, never the reverse, so that a change of
vocabulary is made once, where the models are."""

from __future__ import annotations

#: Segmentation classes, as label values of masks and channels of the network's output.
BACKGROUND, HEAD, FLAGELLUM, PIPETTE = 0, 1, 2, 3
SEG_CLASSES = {"background": BACKGROUND, "head": HEAD, "flagellum": FLAGELLUM, "pipette": PIPETTE}
#: A label value, not a class: "background or flagellum". Real labels mark heads and say nothing of tails,
#: so the loss accepts either class there (perception/training/tasks.py).
NOT_HEAD = 4
#: Pixels the loss ignores (a head too far out of focus to call, the border of a padded tile).
SEG_IGNORE = 255

#: Depth classes (um), the z-stack labels: the head's offset from the plane the operator called in focus,
#: 0.5 um apart as in the reference paper. The depth weights' ``zero_offset_um`` turns them into the
#: head's height above the focal plane (perception/runtime/pipeline.py, docs/sim.md).
DEPTHS_UM: tuple[float, ...] = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
