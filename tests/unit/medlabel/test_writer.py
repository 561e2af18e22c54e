import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.errors import BadRequest
from medlabel.io.writer import write_label


@pytest.mark.parametrize("ext", [".nrrd", ".nii.gz"])
def test_label_keeps_voxel_order_and_geometry(ext):
    label = np.zeros((6, 7, 8), np.uint8)
    label[1, 2, 3] = 2
    affine = np.array([[-0.7, 0, 0, 10.0], [0, 0.7, 0, -20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    path = write_label(label, affine, ext)
    image = sitk.ReadImage(path)
    assert image.GetSize() == (6, 7, 8) and image.GetPixelID() == sitk.sitkUInt8
    assert image.GetPixel(1, 2, 3) == 2
    np.testing.assert_allclose(image.GetSpacing(), (0.7, 0.7, 2.5))
    np.testing.assert_allclose(image.GetOrigin(), (-10.0, 20.0, 30.0))  # RAS -> LPS
    np.testing.assert_allclose(image.GetDirection(), (1, 0, 0, 0, -1, 0, 0, 0, 1))


def test_unsupported_formats_are_client_errors():
    with pytest.raises(BadRequest, match="result_extension"):
        write_label(np.zeros((2, 2, 2), np.uint8), np.eye(4), ".png")
    with pytest.raises(BadRequest, match="result_dtype"):
        write_label(np.zeros((2, 2, 2), np.uint8), np.eye(4), ".nrrd", "float64")
