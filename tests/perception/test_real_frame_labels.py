"""Label images made from real frames' head boxes (perception/training/real_frames.py): what the
segmentation learns a real frame holds."""

import cv2
import numpy as np

from perception.training.real_frames import HEAD, IGNORE, NOT_HEAD, LabelledFrame, label_image

UM_PER_PX = 0.4


def test_labelled_heads_unlabelled_head_shapes_and_specks_are_labelled_apart():
    img = np.full((120, 160), 160, np.uint8)
    cv2.ellipse(img, (40, 60), (6, 4), 30, 0, 360, 40, -1)  # a labelled head, 4.8 x 3.2 um
    cv2.ellipse(img, (100, 30), (6, 4), 0, 0, 360, 40, -1)  # a head nobody labelled
    cv2.circle(img, (120, 90), 2, 40, -1)  # a speck, 1.6 um across
    frame = LabelledFrame(0, img, np.array([[1, 30, 52, 20, 16]], dtype=float))
    label = label_image(frame, UM_PER_PX)
    assert label[60, 40] == HEAD
    assert label[52, 31] == IGNORE  # the rest of the labelled box: tail, blur
    assert label[30, 100] == IGNORE  # an unlabelled head is neither head nor background
    assert label[90, 120] == NOT_HEAD  # a speck is a dark blob the network must learn is no head
    assert label[10, 10] == NOT_HEAD
