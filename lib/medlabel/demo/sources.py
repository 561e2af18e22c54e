"""Readers for the real images that ship inside installed packages (nothing is downloaded).

Each returns ``(image, labels, affine)`` with arrays in (i, j, k) order and a RAS affine in mm.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MRC_HEADER_BYTES = 1024
MRC_DTYPES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16}


@dataclass(frozen=True)
class Source:
    """A real volume with its labels and where it comes from."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    label_names: dict[str, int]
    origin: str
    licence: str

    def affine_at(self, start) -> np.ndarray:
        """The affine of a sub-array of this volume whose first voxel is ``start`` (i, j, k): a tile, cube,
        slice or octant keeps its place in the scanner's space."""
        affine = self.affine.copy()
        affine[:3, 3] = self.affine[:3, :3] @ np.asarray(start) + self.affine[:3, 3]
        return affine


def read_mrc(path: Path) -> np.ndarray:
    """An MRC volume as an (x, y, z) array: 1024-byte header (nx, ny, nz, mode, ..., extended size at word 23)."""
    raw = path.read_bytes()
    header = np.frombuffer(raw[:MRC_HEADER_BYTES], dtype="<i4")
    nx, ny, nz, mode = (int(v) for v in header[:4])
    if mode not in MRC_DTYPES:
        raise ValueError(f"{path.name}: MRC mode {mode} is not supported")
    start = MRC_HEADER_BYTES + int(header[23])
    data = np.frombuffer(raw[start:], dtype=MRC_DTYPES[mode], count=nx * ny * nz)
    return data.reshape(nz, ny, nx).transpose(2, 1, 0)  # stored z, y, x


def lits_117() -> Source:
    """LiTS case 117 (128^3 CT in HU, liver and tumour labels) from ``liver-ct-segmentation-package``.

    The MRC files carry no geometry. Looking at the anatomy, +i runs to the patient's right, +j to
    posterior and +k to inferior; the spacing is nominal 1 mm (the volume was resampled to 128^3).
    """
    spec = importlib.util.find_spec("liver_ct_segmentation_package")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("liver-ct-segmentation-package is not installed (see requirements/nodeps.txt)")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    image = read_mrc(data / "img_117.mrc")
    labels = read_mrc(data / "lab_117.mrc")
    affine = np.diag([1.0, -1.0, -1.0, 1.0])
    return Source(
        name="lits117",
        image=np.round(image).astype(np.int16),
        labels=labels.astype(np.uint8),
        affine=affine,
        label_names={"liver": 1, "tumour": 2},
        origin="LiTS challenge case 117, as shipped in the PyPI package liver-ct-segmentation-package 1.6.0 "
        "(data/img_117.mrc, data/lab_117.mrc)",
        licence="LiTS data: CC BY-NC-SA 4.0 (non-commercial, share alike, attribution to the LiTS challenge)",
    )


def mni152() -> Source:
    """The MNI152 (ICBM 2009 symmetric) T1 template at 1 mm and its brain mask, bundled with nilearn."""
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1)
    return Source(
        name="mni152",
        image=np.asarray(template.get_fdata(), dtype=np.float32),
        labels=(np.asarray(mask.get_fdata()) > 0.5).astype(np.uint8),
        affine=np.asarray(template.affine, dtype=np.float64),
        label_names={"brain": 1},
        origin="MNI ICBM 2009 symmetric T1 template and brain mask, bundled with the PyPI package nilearn",
        licence="Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological "
        "Institute, McGill University; free use, copy and distribution with this notice",
    )
