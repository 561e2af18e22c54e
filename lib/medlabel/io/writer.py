"""Writes label volumes in the formats the clients read (NRRD for Slicer and OHIF, NIfTI)."""

import os
import tempfile

import numpy as np
import SimpleITK as sitk

from medlabel.errors import BadRequest

LABEL_EXTENSIONS = (".nrrd", ".nii.gz", ".nii", ".seg.nrrd")
LABEL_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


def ras_affine_to_itk(affine: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) in ITK's LPS convention from a 4x4 RAS voxel-to-world affine."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    return tuple(lps[:3, 3]), tuple(spacing), tuple(direction.ravel())


def write_label(label_ijk: np.ndarray, affine_ras: np.ndarray, extension: str, dtype: str = "uint8") -> str:
    """Writes an (i, j, k)-ordered label with its RAS affine to a new temp file and returns its path.

    The voxel order and geometry are those of the source image as ITK reads it, which is what Slicer
    and OHIF (for DICOM series) expect.
    """
    if extension not in LABEL_EXTENSIONS:
        raise BadRequest(f"result_extension '{extension}' is not supported; use one of {list(LABEL_EXTENSIONS)}")
    if dtype not in LABEL_DTYPES:
        raise BadRequest(f"result_dtype '{dtype}' is not supported for labels; use one of {list(LABEL_DTYPES)}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(label_ijk.astype(LABEL_DTYPES[dtype], copy=False).transpose(2, 1, 0)))
    origin, spacing, direction = ras_affine_to_itk(affine_ras)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    fd, path = tempfile.mkstemp(suffix=extension, prefix="medlabel-")
    os.close(fd)
    sitk.WriteImage(image, path, useCompression=True)
    return path
