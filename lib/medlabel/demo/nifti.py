"""Writing demo volumes: one NIfTI writer, so every demo set gets the same header."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """``array`` with ``affine`` as both qform and sform (code 1, scanner), so every reader (nibabel, ITK,
    MONAI, Slicer) agrees on the geometry; parent folders are created."""
    image = nib.Nifti1Image(np.ascontiguousarray(array), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
