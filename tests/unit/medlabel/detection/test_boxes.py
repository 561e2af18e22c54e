"""Box conversions, Slicer markups in and out, boxes from masks, and the label check."""

import json

import nibabel as nib
import numpy as np
import pytest

from medlabel.errors import BadRequest
from medlabel.kinds.detection.boxes import (
    boxes_to_markups,
    markups_to_boxes,
    mask_to_boxes,
    voxel_to_world,
    world_to_voxel,
)
from medlabel.kinds.detection.labels import check_box_label

LITS_AFFINE = np.diag([1.0, -1.0, -1.0, 1.0])  # +i right, +j posterior, +k inferior, 1 mm


def test_voxel_world_round_trip_on_flipped_anisotropic_grid():
    affine = np.diag([0.8, -1.2, 2.5, 1.0])
    affine[:3, 3] = (10, 20, -30)
    voxel = np.array([[2.0, 3.0, 4.0, 6.0, 9.0, 5.0]])
    world = voxel_to_world(voxel, affine)
    # voxel 2 (centre index 2) starts half a voxel before its centre: 10 + 0.8 * 1.5
    assert world[0, 0] == pytest.approx(10 + 0.8 * 1.5)
    assert np.all(world[:, :3] < world[:, 3:])  # flipped axis still gives min < max
    assert np.allclose(world_to_voxel(world, affine), voxel)


def test_mask_components_become_boxes_and_small_ones_are_dropped():
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:5, 3:7, 4:6] = 2  # 24 voxels
    mask[10, 10, 10] = 2  # one stray voxel
    mask[15:18, 15:18, 15:18] = 1  # another label
    boxes = mask_to_boxes(mask, np.eye(4), label=2, min_volume_mm3=5)
    assert np.allclose(boxes, [[1.5, 2.5, 3.5, 4.5, 6.5, 5.5]])
    assert len(mask_to_boxes(mask, np.eye(4), label=2)) == 2


def test_markups_round_trip_in_lps():
    boxes = np.array([[10.0, -20.0, -5.0, 16.0, -12.0, 3.0]])
    doc = boxes_to_markups(boxes, np.array([0.9]))
    roi = doc["markups"][0]
    assert roi["coordinateSystem"] == "LPS" and roi["type"] == "ROI"
    assert roi["center"] == pytest.approx([-13.0, 16.0, -1.0])  # RAS centre (13, -16, -1) in LPS
    assert np.allclose(markups_to_boxes(json.loads(json.dumps(doc))), boxes)


def test_ras_and_rotated_rois_are_read():
    ras = {"markups": [{"type": "ROI", "coordinateSystem": "RAS", "center": [1, 2, 3], "size": [2, 4, 6]}]}
    assert np.allclose(markups_to_boxes(ras), [[0, 0, 0, 2, 4, 6]])
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    rotated = {"markups": [{"type": "ROI", "coordinateSystem": "RAS", "center": [0, 0, 0], "size": [2, 2, 2],
                            "orientation": [c, -s, 0, s, c, 0, 0, 0, 1]}]}
    assert np.allclose(markups_to_boxes(rotated), [[-np.sqrt(2), -np.sqrt(2), -1, np.sqrt(2), np.sqrt(2), 1]])


@pytest.mark.parametrize(
    ("roi", "message"),
    [
        ({"center": [float("nan"), 0, 0], "size": [1, 1, 1]}, "NaN"),
        ({"center": [0, 0, 0], "size": [1, 0, 1]}, "size must be positive"),
        ({"center": [0, 0], "size": [1, 1, 1]}, "'center' must be 3 numbers"),
        ({"size": [1, 1, 1]}, "'center' must be 3 numbers"),
        ({"type": "Fiducial", "center": [0, 0, 0], "size": [1, 1, 1]}, "type 'ROI'"),
    ],
)
def test_invalid_rois_are_named(roi, message):
    with pytest.raises(BadRequest, match=message):
        markups_to_boxes({"markups": [roi]})


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 32), np.int16), LITS_AFFINE), path)
    return str(path)


def _write(tmp_path, boxes_ras):
    path = tmp_path / "label.json"
    path.write_text(json.dumps(boxes_to_markups(np.array(boxes_ras, dtype=float))))
    return str(path)


def test_label_check_accepts_boxes_inside_and_rejects_outside(tmp_path, image):
    # the image spans x -0.5..31.5, y -31.5..0.5, z -31.5..0.5 (RAS mm)
    check_box_label(_write(tmp_path, [[2, -10, -10, 8, -4, -4]]), image, "img")
    check_box_label(_write(tmp_path, []), image, "img")  # no lesion is a valid label
    with pytest.raises(BadRequest, match="not inside the image"):
        check_box_label(_write(tmp_path, [[40, -10, -10, 48, -4, -4]]), image, "img")
    bad = tmp_path / "bad.json"
    bad.write_text('{"markups": [')
    with pytest.raises(BadRequest, match="not valid JSON"):
        check_box_label(str(bad), image, "img")


def test_label_check_takes_masks_on_the_image_grid(tmp_path, image):
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 32), np.uint8), LITS_AFFINE), mask)
    check_box_label(str(mask), image, "img")
    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 32, 32), np.uint8), LITS_AFFINE), wrong)
    with pytest.raises(BadRequest, match="voxel size"):
        check_box_label(str(wrong), image, "img")


def test_training_reads_boxes_from_a_mask_label_on_the_model_grid(tmp_path, image):
    """A tumour labelmap (value 2) is a training label: its component becomes one box in model voxels."""
    from medlabel.kinds.detection.spec import DetectionSpec
    from medlabel.kinds.detection.transforms import val_transforms

    labels = np.zeros((32, 32, 32), np.uint8)
    labels[4:12, 8:16, 10:20] = 1  # liver only: not a lesion
    labels[6:10, 10:14, 12:18] = 2  # tumour: 4 x 4 x 6 mm at 1 mm
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, LITS_AFFINE), mask)
    spec = DetectionSpec(name="lesions", spacing_mm=(2.0, 2.0, 2.0), mask_label=2, min_lesion_mm3=10)
    item = val_transforms(spec)({"image": image, "label": str(mask)})
    assert item["box"].shape == (1, 6) and item["box_label"].tolist() == [0]
    size_vox = (item["box"][0, 3:] - item["box"][0, :3]).numpy()
    assert np.allclose(size_vox, [2, 2, 3], atol=0.01)  # 4 x 4 x 6 mm on the 2 mm grid


def test_training_augmentation_moves_boxes_with_the_image(tmp_path):
    """Crops, flips and quarter turns keep every box on its lesion (a bright cube in an anisotropic volume)."""
    from medlabel.kinds.detection.spec import DetectionSpec
    from medlabel.kinds.detection.transforms import train_transforms
    from medlabel.spec import CTWindow, TrainSpec

    array = np.zeros((32, 40, 24), np.float32)  # water, and a 200 HU cube
    array[3:9, 20:30, 14:18] = 200
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "image.nii.gz")
    box = voxel_to_world(np.array([[3.0, 20, 14, 9, 30, 18]]), np.diag([2.0, 2.0, 2.0, 1.0]))
    (tmp_path / "label.json").write_text(json.dumps(boxes_to_markups(box)))
    spec = DetectionSpec(name="lesions", spacing_mm=(2.0, 2.0, 2.0), roi_size=(48, 48, 48), intensity=CTWindow(),
                         train=TrainSpec(samples_per_volume=1))
    transform = train_transforms(spec)
    shapes = set()
    for seed in range(12):
        transform.set_random_state(seed)
        item = transform({"image": str(tmp_path / "image.nii.gz"), "label": str(tmp_path / "label.json")})[0]
        image = item["image"][0].numpy()
        lo, hi = item["box"][0, :3].round().int().tolist(), item["box"][0, 3:].round().int().tolist()
        inside = image[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].copy()
        image[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = np.nan
        assert inside.size == 6 * 10 * 4 and inside.min() > np.nanmax(image)  # the cube, all of it
        shapes.add(tuple(hi[i] - lo[i] for i in range(3)))
    assert shapes == {(6, 10, 4), (10, 6, 4)}  # quarter turns in the axial plane happened
