import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.errors import BadRequest
from medlabel.io.segnrrd import is_slicer_segmentation, slicer_segmentation_to_labelmap


def _image() -> sitk.Image:
    image = sitk.Image(10, 8, 6, sitk.sitkInt16)
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((10.0, -5.0, 3.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # LPS axes of a RAS-stored volume
    return image


def _write(path, layer, origin_lps, segments, space="left-posterior-superior", axes=None):
    image = _image()
    axes = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing()) if axes is None else axes
    flip = np.array([-1.0, -1.0, 1.0]) if space == "right-anterior-superior" else np.ones(3)
    header = {"space": space, "space directions": (axes * flip[:, None]).T, "space origin": np.asarray(origin_lps) * flip}
    for n, (name, value) in enumerate(segments):
        header.update({f"Segment{n}_ID": f"Segment_{n}", f"Segment{n}_Name": name,
                       f"Segment{n}_LabelValue": str(value), f"Segment{n}_Layer": "0"})
    nrrd.write(str(path), layer, header)


@pytest.mark.parametrize("space", ["left-posterior-superior", "right-anterior-superior"])
def test_cropped_segmentation_lands_on_the_image_grid(tmp_path, space):
    image = _image()
    crop = np.zeros((3, 2, 2), np.uint8)  # (i, j, k) at index offset (4, 5, 1)
    crop[0, 0, 0], crop[2, 1, 1] = 5, 7
    origin = np.array(image.TransformIndexToPhysicalPoint((4, 5, 1)))
    path = tmp_path / "x.seg.nrrd"
    _write(path, crop, origin, [("background", 9), ("tumour", 7), ("vessel", 5)], space)
    assert is_slicer_segmentation(str(path))
    label = slicer_segmentation_to_labelmap(str(path), image, {"tumour": 2})
    values = sitk.GetArrayFromImage(label)  # (k, j, i)
    assert label.GetSize() == image.GetSize() and label.GetOrigin() == image.GetOrigin()
    assert values[2, 6, 6] == 2  # tumour by its name
    assert values[1, 5, 4] == 2  # vessel: second segment after Slicer's background
    assert np.count_nonzero(values) == 2


def test_segmentations_off_the_grid_are_rejected(tmp_path):
    image = _image()
    inside = np.array(image.TransformIndexToPhysicalPoint((8, 0, 0)))
    _write(tmp_path / "far.seg.nrrd", np.ones((4, 1, 1), np.uint8), inside, [("liver", 1)])
    with pytest.raises(BadRequest, match="does not lie within its image"):
        slicer_segmentation_to_labelmap(str(tmp_path / "far.seg.nrrd"), image)
    _write(tmp_path / "rot.seg.nrrd", np.ones((1, 1, 1), np.uint8), image.GetOrigin(), [("liver", 1)], axes=np.eye(3))
    with pytest.raises(BadRequest, match="voxel axes differ"):
        slicer_segmentation_to_labelmap(str(tmp_path / "rot.seg.nrrd"), image)
    plain = tmp_path / "plain.nrrd"
    sitk.WriteImage(image, str(plain))
    assert not is_slicer_segmentation(str(plain))
