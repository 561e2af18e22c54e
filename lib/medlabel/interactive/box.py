"""Boxes of voxels around an interaction: where the work happens, so answers stay interactive.

A refinement only needs the region the user is working on: a 128^3 box instead of a 512x512x200 CT
is 25 times less to pre-process, infer and cut. Boxes are ``(slice, slice, slice)`` in the image's
own voxel order, always non-empty and inside the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlabel.errors import BadRequest
from medlabel.interactive.volume import Box


def box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(s.stop - s.start for s in box)  # type: ignore[return-value]


def box_from_roi(roi: Sequence[float], shape: Sequence[int]) -> Box:
    """Slicer's ROI ``[i0, i1, j0, j1, k0, k1]`` (voxel indices, either order per axis) clipped to the image.

    The module computes it from the ROI's corners through the RAS-to-IJK matrix, so a flipped axis gives
    ``i0 > i1``; the upper index is exclusive, as MONAI Label's scribbles read it.
    """
    values = list(roi)
    if len(values) != 6 or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
        raise BadRequest(f"roi must be [i0, i1, j0, j1, k0, k1] voxel indices, got {roi!r}")
    box = []
    for axis, n in enumerate(shape):
        lo, hi = sorted((int(round(values[2 * axis])), int(round(values[2 * axis + 1]))))
        lo, hi = max(lo, 0), min(hi, int(n))
        if hi <= lo:
            raise BadRequest(f"roi {values} does not overlap the image (shape {tuple(shape)}) on axis {axis}")
        box.append(slice(lo, hi))
    return tuple(box)  # type: ignore[return-value]


def box_around(points: np.ndarray, margin: Sequence[int], shape: Sequence[int]) -> Box:
    """The bounding box of ``points`` (N, 3) voxel indices grown by ``margin`` voxels per side, clipped."""
    points = np.asarray(points, dtype=int).reshape(-1, 3)
    lo = np.maximum(points.min(0) - np.asarray(margin, dtype=int), 0)
    hi = np.minimum(points.max(0) + 1 + np.asarray(margin, dtype=int), np.asarray(shape, dtype=int))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def grow(box: Box, margin: Sequence[int], shape: Sequence[int]) -> Box:
    """``box`` with ``margin`` more voxels on each side, clipped to the image."""
    return tuple(
        slice(max(0, s.start - int(m)), min(int(n), s.stop + int(m))) for s, m, n in zip(box, margin, shape)
    )  # type: ignore[return-value]


def at_least(box: Box, size: Sequence[int], shape: Sequence[int]) -> Box:
    """``box`` grown symmetrically to at least ``size`` voxels per axis (less only where the image ends)."""
    out = []
    for s, want, n in zip(box, size, shape):
        extra = max(0, int(want) - (s.stop - s.start))
        start = max(0, s.start - extra // 2)
        stop = min(int(n), max(s.stop + extra - extra // 2, start + int(want)))
        start = max(0, min(start, stop - int(want)))
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def mm_to_voxels(mm: float, spacing_mm: Sequence[float]) -> tuple[int, int, int]:
    """A physical length as a whole number of voxels per axis (at least 1)."""
    return tuple(max(1, int(np.ceil(mm / s))) for s in spacing_mm)  # type: ignore[return-value]
