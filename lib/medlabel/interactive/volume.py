"""Images as the clients address them: a (X, Y, Z) array in the file's voxel order with its RAS affine.

Clicks and Slicer's ROI arrive as voxel indices (i, j, k) of the image file, so interactive work happens
on this grid. Loading a CT-sized volume costs about a second, which an interactive answer cannot pay
on every click: the last few images stay in memory, keyed by path, size and modification time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, SpatialResample

from medlabel.errors import BadRequest

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Volume:
    """A 3D image or label on its own voxel grid."""

    array: np.ndarray  # (X, Y, Z)
    affine: np.ndarray  # 4x4 voxel index -> RAS mm

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    def crop(self, box: Box) -> Volume:
        """The part inside ``box``, with the affine of its own first voxel (no copy)."""
        return Volume(self.array[box], crop_affine(self.affine, box))


def empty_label(shape: tuple[int, ...]) -> np.ndarray:
    """uint8 zeros indexed (i, j, k) but laid out as label files store voxels (i fastest).

    Writing a C-ordered 512x512x200 label costs a transposing copy of 52 M voxels (0.5 to 0.9 s measured,
    most of a click's answer); in this layout the writer's transpose is free.
    """
    return np.zeros(tuple(shape), dtype=np.uint8, order="F")


def crop_affine(affine: np.ndarray, box: Box) -> np.ndarray:
    """The affine of a crop starting at ``box``'s first voxel."""
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    return np.asarray(affine, dtype=np.float64) @ shift


def onto_box(values: torch.Tensor, affine, volume: Volume, box: Box) -> np.ndarray:
    """(C, *box shape) float32: ``values`` (C, X, Y, Z), on the grid of ``affine``, resampled trilinearly onto
    the voxels of ``box`` (edge values beyond the grid).

    MONAI's ``align_corners=True`` shifts grids of different sizes against each other by a fraction of a
    voxel (resampling world coordinates onto a CT box: 0.1 to 0.6 mm off); ``False`` maps them exactly.
    """
    resample = SpatialResample(mode="bilinear", padding_mode="border", align_corners=False)
    out = resample(MetaTensor(values.float(), affine=torch.as_tensor(affine, dtype=torch.float64)),
                   dst_affine=torch.as_tensor(crop_affine(volume.affine, box)),
                   spatial_size=tuple(s.stop - s.start for s in box))
    return np.asarray(out, dtype=np.float32)


def read_volume(path: str, what: str, dtype=np.float32) -> Volume:
    """Reads any 3D file MONAI reads (NIfTI, NRRD, DICOM folder); ``what`` names it in errors."""
    try:
        image = LoadImage(image_only=True, dtype=dtype)(path)
    except Exception as e:  # a corrupt file surfaces deep inside a reader
        raise BadRequest(f"cannot read the {what} as a 3D volume (NIfTI, NRRD or DICOM expected)") from e
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise BadRequest(f"the {what} must be a 3D volume, got shape {tuple(array.shape)}")
    return Volume(array, np.asarray(image.affine, dtype=np.float64))


def read_label(path: str, what: str) -> Volume:
    """A label map (e.g. Slicer's scribbles) read by SimpleITK with no conversion: a view in (i, j, k) order.

    A 512x512x200 NRRD takes about 0.1 s this way against 1.7 s through MONAI's ``LoadImage`` (which
    converts, copies and re-orients), the largest part of a scribble answer before. Files SimpleITK cannot
    read go through ``read_volume``.
    """
    try:
        image = sitk.ReadImage(path)
    except RuntimeError:
        return read_volume(path, what, dtype=None)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise BadRequest(f"the {what} must be a 3D single-component volume, got size {image.GetSize()}")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # a copy: a view dies with the image
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3) * spacing
    lps[:3, 3] = image.GetOrigin()
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # ITK's LPS world -> RAS
    return Volume(array, affine)


def file_key(path: str) -> tuple[str, int, int]:
    """A file as it is now (real path, size, modification time): what caches of what was read from it key on,
    so that a replaced or rewritten file is read again."""
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


class VolumeCache:
    """The last ``size`` images read, so repeated clicks on one image do not reload it."""

    def __init__(self, size: int = 2):
        self.size = size
        self._items: OrderedDict[tuple, Volume] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> Volume:
        key = file_key(path)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        volume = read_volume(path, "image")
        with self._lock:
            self._items[key] = volume
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return volume


def same_grid(a: Volume, b: Volume, tol_mm: float = 1e-3) -> bool:
    """True when two volumes share shape and voxel-to-world mapping (within ``tol_mm``)."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=tol_mm)
