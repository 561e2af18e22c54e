"""Reads the volume to restore and writes generated images on the grid the clients expect.

Arrays are (I, J, K) as nibabel and MONAI order them; SimpleITK stores (K, J, I), hence the transposes.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import SimpleITK as sitk

from medlabel.errors import BadRequest

IMAGE_EXTENSIONS = (".nrrd", ".nii.gz", ".nii")


def read_volume(path: str) -> sitk.Image:
    """A 3D scalar image from a file or a DICOM series folder; ``BadRequest`` says what is wrong."""
    try:
        if os.path.isdir(path):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(path))
            image = reader.Execute()
        else:
            image = sitk.ReadImage(path)
    except RuntimeError:
        raise BadRequest("cannot read the image as a 3D volume (NIfTI, NRRD or DICOM expected)") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise BadRequest(f"expected a 3D single-channel image, got {image.GetDimension()}D with "
                         f"{image.GetNumberOfComponentsPerPixel()} component(s)")
    return image


def array_ijk(image: sitk.Image) -> np.ndarray:
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0)).astype(np.float32)


def thin_grid(image: sitk.Image, factor: int) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) of ``image``'s grid with ``factor`` times the slices along K.

    Thick slice s is centred on thin slice factor * s + (factor - 1) / 2, so the first thin slice lies
    (factor - 1) / 2 thin spacings before the first thick one (``degrade.thin_slices`` uses the same).
    """
    spacing = np.array(image.GetSpacing(), dtype=float)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    thin = spacing / np.array([1, 1, factor])
    origin = np.array(image.GetOrigin()) - direction[:, 2] * thin[2] * (factor - 1) / 2
    return tuple(origin), tuple(thin), tuple(direction.ravel())


def write_volume(values_ijk: np.ndarray, geometry: tuple[tuple, tuple, tuple], like: sitk.Image, extension: str) -> str:
    """Writes an (I, J, K) volume to a new temp file; integer input types stay integer (HU rounded)."""
    if extension not in IMAGE_EXTENSIONS:
        raise BadRequest(f"result_extension '{extension}' is not supported; use one of {list(IMAGE_EXTENSIONS)}")
    values = np.ascontiguousarray(values_ijk.transpose(2, 1, 0))
    if np.issubdtype(sitk.GetArrayViewFromImage(like).dtype, np.integer):
        values = np.clip(np.rint(values), -32768, 32767).astype(np.int16)
    else:
        values = values.astype(np.float32)
    image = sitk.GetImageFromArray(values)
    origin, spacing, direction = geometry
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    fd, path = tempfile.mkstemp(suffix=extension, prefix="medlabel-gen-")
    os.close(fd)
    sitk.WriteImage(image, path, useCompression=True)
    return path


def same_geometry(image: sitk.Image) -> tuple[tuple, tuple, tuple]:
    return image.GetOrigin(), image.GetSpacing(), image.GetDirection()
