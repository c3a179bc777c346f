"""Pictures of results (modhub.predict.draw): they line up with the photo under every resize policy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modhub.predict.draw import draw_boxes, draw_keypoints, draw_mask, from_model_frame, side_by_side
from modhub.runtimes.images import fit_photo


def _dot_photo(width: int = 300, height: int = 200, at: tuple[int, int] = (60, 150)) -> Image.Image:
    photo = Image.new("RGB", (width, height), (0, 0, 0))
    x, y = at
    for dx in range(-3, 4):
        for dy in range(-3, 4):
            photo.putpixel((x + dx, y + dy), (255, 0, 0))
    return photo


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
def test_points_in_the_model_frame_map_back_onto_the_photo(resize: str) -> None:
    photo = _dot_photo(at=(120, 110))
    fitted = np.asarray(fit_photo(photo, 96, 128, resize), dtype=np.float32)
    ys, xs = np.nonzero(fitted[:, :, 0] > 128)
    point = np.array([[(ys.mean() + 0.5) / 96, (xs.mean() + 0.5) / 128]])
    y, x = from_model_frame(point, photo.size, (96, 128), resize)[0]
    assert abs(y - 110.5) < 3 and abs(x - 120.5) < 3, (resize, x, y)


def test_boxes_are_drawn_where_they_are() -> None:
    photo = Image.new("RGB", (200, 100), (0, 0, 0))
    boxes = np.array([[0.2, 0.1, 0.8, 0.5], [0.0, 0.0, 1.0, 1.0]])
    drawn = np.asarray(draw_boxes(photo, boxes, np.array([0.9, 0.1]), np.array([0, 1]), ["person", "cup"]))
    assert drawn[50, 20].any(), "the left edge of the first box (x = 0.1 * 200)"
    assert not drawn[50, 60].any(), "inside the box stays as it was"
    assert not drawn[99, 199].any(), "the second box scores under min_score: not drawn"


def test_keypoints_and_skeleton_are_drawn_over_confident_points_only() -> None:
    photo = Image.new("RGB", (100, 100), (0, 0, 0))
    points = np.array([[0.2, 0.2, 0.9], [0.8, 0.8, 0.1]])
    drawn = np.asarray(draw_keypoints(photo, points, ["nose", "left_eye"]))
    assert drawn[20, 20].any() and not drawn[80, 80].any()
    assert not drawn[50, 50].any(), "no limb to a point under min_score"


def test_the_mask_tints_the_photo_where_it_is_high() -> None:
    photo = Image.new("RGB", (64, 32), (0, 0, 0))
    mask = np.zeros((16, 16), np.float32)
    mask[:, 8:] = 1.0
    drawn = np.asarray(draw_mask(photo, mask, model_size=(16, 16), resize="squash"))
    assert drawn[16, 60].any() and not drawn[16, 4].any()
    with pytest.raises(ValueError, match="mask"):
        draw_mask(photo, np.zeros((2, 3, 4)))


def test_side_by_side_keeps_every_picture() -> None:
    pictures = [Image.new("RGB", (100, 50)), Image.new("RGB", (30, 60))]
    row = side_by_side(pictures, ["a", "b"], height=60)
    assert row.width == 120 + 30 + 8 and row.height > 60
