"""A findings row per detection, as a radiologist's lesion report lists them."""

from __future__ import annotations

import numpy as np

from medlabel.kinds.detection.boxes import world_to_voxel


def findings(boxes: np.ndarray, scores: np.ndarray, raw, affine: np.ndarray) -> list[dict]:
    """Centre and size (RAS mm, as Slicer displays coordinates), box volume (mm^3), mean intensity inside the
    box (HU on CT, from the image resampled to the model grid) and score, one row per box."""
    rows = []
    values = np.asarray(raw)[0]
    for box, score in zip(np.asarray(boxes).reshape(-1, 6), np.asarray(scores).ravel()):
        lo, hi = np.round(world_to_voxel(box[None], affine)[0].reshape(2, 3)).astype(int)
        lo, hi = np.clip(lo, 0, values.shape), np.clip(np.maximum(hi, lo + 1), 0, values.shape)
        inside = values[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        size = box[3:] - box[:3]
        rows.append({
            "centre_ras_mm": np.round((box[:3] + box[3:]) / 2, 1).tolist(),
            "size_mm": np.round(size, 1).tolist(),
            "volume_mm3": round(float(np.prod(size)), 1),
            "mean_intensity": round(float(inside.mean()), 1) if inside.size else None,
            "score": round(float(score), 4),
        })
    return rows
