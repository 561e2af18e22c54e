import numpy as np
import pytest
import torch

from medlabel.errors import BadRequest
from medlabel.interactive.box import at_least, box_around, box_from_roi, box_shape, grow, mm_to_voxels
from medlabel.interactive.volume import Volume, crop_affine, onto_box


def test_slicer_roi_is_sorted_clipped_and_exclusive():
    # Slicer maps the ROI's RAS corners through RAS-to-IJK: a flipped axis comes reversed
    assert box_from_roi([50, 10, -5, 20, 3, 300], (64, 64, 64)) == (slice(10, 50), slice(0, 20), slice(3, 64))


@pytest.mark.parametrize("roi, message", [([200, 260, 0, 10, 0, 10], "does not overlap"), ([1, 2, 3], "roi must be"),
                                          ([0, 5, 0, 5, 0, "a"], "roi must be"), ([4, 4, 0, 9, 0, 9], "does not overlap")])
def test_bad_rois_are_client_errors(roi, message):
    with pytest.raises(BadRequest, match=message):
        box_from_roi(roi, (64, 64, 64))


def test_box_around_points_grows_and_clips():
    box = box_around(np.array([[5, 30, 60], [10, 31, 62]]), [4, 4, 4], (64, 64, 64))
    assert box == (slice(1, 15), slice(26, 36), slice(56, 64))
    assert grow(box, [2, 2, 2], (64, 64, 64)) == (slice(0, 17), slice(24, 38), slice(54, 64))


def test_at_least_keeps_size_inside_the_image():
    box = at_least((slice(60, 62), slice(10, 12), slice(0, 64)), (16, 16, 16), (64, 64, 64))
    assert box_shape(box) == (16, 16, 64) and box[0] == slice(48, 64) and box[1].start <= 10 and box[1].stop >= 12


def test_crop_keeps_world_positions():
    affine = np.array([[-0.8, 0, 0, 100.0], [0, 0.8, 0, -50.0], [0, 0, 2.5, 10.0], [0, 0, 0, 1]])
    volume = Volume(np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14), affine)
    box = (slice(2, 8), slice(3, 9), slice(4, 10))
    crop = volume.crop(box)
    assert crop.array[1, 2, 3] == volume.array[3, 5, 7]
    np.testing.assert_allclose(crop.affine @ [1, 2, 3, 1], affine @ [3, 5, 7, 1])
    np.testing.assert_allclose(crop_affine(affine, box)[:3, :3], affine[:3, :3])
    assert mm_to_voxels(20.0, volume.spacing_mm) == (25, 25, 8)


def world(affine, shape, start=(0, 0, 0)):
    ijk = np.stack(np.meshgrid(*[np.arange(s, s + n) for s, n in zip(start, shape)], indexing="ij"), 0).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape(3, *shape)


def test_values_land_on_the_box_voxels_at_their_world_position():
    """A model grid (1.5 mm, RAS, other origin) resampled onto a box of a 0.7 x 0.8 x 2.5 mm LPS-like image:
    a field that holds each voxel's world coordinates must come back as the box voxels' coordinates."""
    affine = np.diag([-0.7, -0.8, 2.5, 1.0])
    affine[:3, 3] = [30.0, 20.0, -10.0]
    volume = Volume(np.zeros((80, 70, 30), np.float32), affine)
    model = np.diag([1.5, 1.5, 1.5, 1.0])
    model[:3, 3] = [-40.0, -40.0, -20.0]
    box = (slice(20, 50), slice(10, 40), slice(5, 20))
    field = torch.from_numpy(world(model, (60, 60, 70)).astype(np.float32))
    got = onto_box(field, model, volume, box)
    assert np.abs(got - world(volume.affine, (30, 30, 15), (20, 10, 5))).max() < 1e-3
