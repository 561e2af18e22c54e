"""A simulated annotator: where a user would click or scribble next to correct a segmentation.

The usual protocol of interactive-segmentation papers (DeepGrow, DeepEdit): find the largest connected
error region (missed foreground or false foreground) and interact at its most interior voxel, the point
farthest from its border, which is where a person would click. A scribble is a brush stroke of a few
voxels inside that region on the slice through that point. Deterministic, so benchmarks repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Correction:
    """One interaction: where, and whether it marks foreground (missed) or background (false)."""

    point: tuple[int, int, int]
    foreground: bool
    error_voxels: int  # size of the error region it corrects


def largest_error(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """The largest connected region of missed (``True``) or false (``False``) foreground, or None if perfect."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    best: tuple[np.ndarray, bool] | None = None
    best_size = 0
    for errors, positive in ((truth & ~pred, True), (pred & ~truth, False)):
        if not errors.any():
            continue
        components, n = ndimage.label(errors)
        sizes = np.bincount(components.ravel())[1:]
        k = int(sizes.argmax())
        if sizes[k] > best_size:
            best, best_size = (components == k + 1, positive), int(sizes[k])
    return best


def interior_point(region: np.ndarray) -> tuple[int, int, int]:
    """The voxel of ``region`` farthest from its border (the first one on ties)."""
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1, 1:-1]
    return tuple(int(v) for v in np.unravel_index(int(distance.argmax()), region.shape))  # type: ignore[return-value]


def next_click(pred: np.ndarray, truth: np.ndarray) -> Correction | None:
    """The click that corrects the largest error region, or None when ``pred`` equals ``truth``."""
    found = largest_error(pred, truth)
    if found is None:
        return None
    region, positive = found
    return Correction(interior_point(region), positive, int(region.sum()))


def stroke(region: np.ndarray, point: tuple[int, int, int], radius_vox: int = 6, axis: int = 2) -> np.ndarray:
    """A brush stroke: the voxels of ``region`` on the slice through ``point`` (normal to ``axis``) within
    ``radius_vox`` of it, one voxel in from the region's border where the region is thick enough."""
    mask = np.zeros(region.shape, dtype=bool)
    index = [slice(None)] * 3
    index[axis] = point[axis]
    plane = region[tuple(index)]
    inner = ndimage.binary_erosion(plane)
    plane = inner if inner.any() else plane
    u, v = [p for a, p in enumerate(point) if a != axis]
    uu, vv = np.ogrid[: plane.shape[0], : plane.shape[1]]
    disk = (uu - u) ** 2 + (vv - v) ** 2 <= radius_vox**2
    mask[tuple(index)] = plane & disk
    mask[point] = True
    return mask


def next_stroke(pred: np.ndarray, truth: np.ndarray, radius_vox: int = 6) -> tuple[np.ndarray, bool] | None:
    """The scribble that corrects the largest error region: (bool mask, foreground?), or None if perfect."""
    found = largest_error(pred, truth)
    if found is None:
        return None
    region, positive = found
    return stroke(region, interior_point(region), radius_vox), positive
