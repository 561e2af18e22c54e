"""Boxes in one internal mode, world RAS mm ``(N, 6) = [xmin, ymin, zmin, xmax, ymax, zmax]``.

Everything that reads boxes (Slicer ROI markups, labelmaps) converts to it, and everything that writes
boxes (Slicer markups in LPS, voxel boxes for the network) converts from it, here and only here. MONAI's
detection code uses voxel boxes where voxel ``i`` covers ``[i, i + 1)``; its centre is index ``i`` of the
image affine, hence the half-voxel shifts below.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from medlabel.errors import BadRequest

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))  # (8, 3) selectors of min/max per axis


def _corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corner points of (N, 6) min/max boxes."""
    lo, hi = boxes[:, None, :3], boxes[:, None, 3:]
    return np.where(_CORNERS[None].astype(bool), hi, lo)


def _bounds(points: np.ndarray) -> np.ndarray:
    """(N, 6) axis-aligned bounds of (N, K, 3) points."""
    return np.concatenate([points.min(1), points.max(1)], axis=1)


def voxel_to_world(boxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """MONAI voxel boxes on a grid with RAS ``affine`` -> world RAS boxes (bounds of the 8 corners)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    index = _corners(boxes) - 0.5
    world = index @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    return _bounds(world)


def world_to_voxel(boxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World RAS boxes -> MONAI voxel boxes on the grid with RAS ``affine``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    inverse = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    index = _corners(boxes) @ inverse[:3, :3].T + inverse[:3, 3]
    return _bounds(index + 0.5)


def mask_to_boxes(mask: np.ndarray, affine: np.ndarray, label: int, min_volume_mm3: float = 0.0) -> np.ndarray:
    """World RAS boxes of the connected components (26-connected) of ``mask == label``.

    Components smaller than ``min_volume_mm3`` are dropped: a few stray voxels are not a lesion to find.
    """
    components, n = ndimage.label(np.asarray(mask) == label, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros((0, 6))
    voxel_mm3 = abs(np.linalg.det(np.asarray(affine)[:3, :3]))
    counts = np.bincount(components.ravel(), minlength=n + 1)[1:]
    voxel_boxes = [
        [s.start for s in obj] + [s.stop for s in obj]
        for obj, count in zip(ndimage.find_objects(components), counts)
        if count * voxel_mm3 >= min_volume_mm3
    ]
    return voxel_to_world(np.array(voxel_boxes, dtype=np.float64), affine) if voxel_boxes else np.zeros((0, 6))


def image_bounds(image_path: str) -> np.ndarray:
    """(6,) world RAS bounds of an image's voxels (their outer faces), from its header alone."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(image_path)
    reader.ReadImageInformation()
    spacing, direction = np.array(reader.GetSpacing()), np.array(reader.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = RAS_TO_LPS @ direction * spacing
    affine[:3, 3] = RAS_TO_LPS @ np.array(reader.GetOrigin())
    size = np.array(reader.GetSize(), dtype=np.float64)
    return voxel_to_world(np.concatenate([np.zeros(3), size])[None], affine)[0]


# -- Slicer ROI markups ---------------------------------------------------------------------------------


def _vector(markup: dict, key: str, n: int, where: str) -> np.ndarray:
    value = markup.get(key)
    try:
        array = np.asarray(value, dtype=np.float64).reshape(n)
    except (TypeError, ValueError):
        raise BadRequest(f"{where}: '{key}' must be {n} numbers, got {json.dumps(value)[:80]}") from None
    if not np.all(np.isfinite(array)):
        raise BadRequest(f"{where}: '{key}' holds NaN or infinite values ({value})")
    return array


def markups_to_boxes(data: object) -> np.ndarray:
    """World RAS boxes from a Slicer Markups JSON (schema v1.0.3) holding ROI markups.

    Each ROI is ``center``, ``size`` and an optional 3x3 ``orientation`` in its ``coordinateSystem``
    (LPS, Slicer's default for files, or RAS); a rotated ROI becomes the box around its corners.
    ``BadRequest`` names the first ROI that is not a box (missing keys, NaN, zero or negative size).
    """
    markups = data.get("markups") if isinstance(data, dict) else None
    if not isinstance(markups, list):
        raise BadRequest("the box label must be a Slicer Markups JSON object with a 'markups' list of ROIs")
    boxes = []
    for i, markup in enumerate(markups):
        where = f"ROI {i} ('{markup.get('name', '')}')" if isinstance(markup, dict) else f"ROI {i}"
        if not isinstance(markup, dict) or markup.get("type", "ROI") != "ROI":
            raise BadRequest(f"{where}: only markups of type 'ROI' are boxes")
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise BadRequest(f"{where}: coordinateSystem must be LPS or RAS, got '{system}'")
        center = _vector(markup, "center", 3, where)
        size = _vector(markup, "size", 3, where)
        if np.any(size <= 0):
            raise BadRequest(f"{where}: size must be positive on every axis, got {size.tolist()} mm")
        axes = _vector(markup, "orientation", 9, where).reshape(3, 3) if "orientation" in markup else np.eye(3)
        corners = center + ((_CORNERS - 0.5) * size) @ axes.T
        if system == "LPS":
            corners = corners @ RAS_TO_LPS.T
        boxes.append(_bounds(corners[None])[0])
    return np.array(boxes).reshape(-1, 6)


def read_markups(path: str) -> np.ndarray:
    """``markups_to_boxes`` of a file; unreadable JSON is a ``BadRequest``."""
    try:
        data = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"the box label is not valid JSON: {e}") from None
    return markups_to_boxes(data)


def is_markups_file(path: str) -> bool:
    """True when the file starts like JSON (Slicer sends boxes as ``.json``, masks are binary images)."""
    with open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"{")


def check_inside(boxes: np.ndarray, bounds: np.ndarray, tolerance_mm: float) -> None:
    """``BadRequest`` for the first box not inside ``bounds`` (both world RAS), give or take ``tolerance_mm``."""
    for i, box in enumerate(boxes):
        if np.any(box[:3] < bounds[:3] - tolerance_mm) or np.any(box[3:] > bounds[3:] + tolerance_mm):
            raise BadRequest(
                f"box {i} (RAS mm {np.round(box, 1).tolist()}) is not inside the image "
                f"(RAS mm {np.round(bounds, 1).tolist()}): draw boxes on the image they label"
            )


def boxes_to_markups(boxes: np.ndarray, scores: np.ndarray | None = None, name: str = "lesion") -> dict:
    """Slicer Markups JSON (schema v1.0.3) with one axis-aligned ROI per world RAS box, written in LPS as
    Slicer itself and MONAI Label's detection writer do."""
    markups = []
    orientation = RAS_TO_LPS.ravel().tolist()  # the RAS axes expressed in LPS
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 6)):
        center = (RAS_TO_LPS @ ((box[:3] + box[3:]) / 2)).tolist()
        label = f"{name} {i + 1}" + (f" ({float(scores[i]):.2f})" if scores is not None else "")
        markups.append({
            "type": "ROI",
            "name": label,
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "roiType": "Box",
            "center": center,
            "orientation": orientation,
            "size": (box[3:] - box[:3]).tolist(),
            "insideOut": False,
            "controlPoints": [{"id": "1", "label": label, "position": center, "orientation": orientation,
                               "positionStatus": "defined"}],
            **({"description": f"score {float(scores[i]):.3f}"} if scores is not None else {}),
        })
    return {"@schema": MARKUPS_SCHEMA, "markups": markups}


def write_markups(boxes: np.ndarray, scores: np.ndarray | None = None, name: str = "lesion") -> str:
    """``boxes_to_markups`` written to a new ``.json`` temp file (Slicer loads results by extension)."""
    fd, path = tempfile.mkstemp(suffix=".json", prefix="medlabel-boxes-")
    with os.fdopen(fd, "w") as f:
        json.dump(boxes_to_markups(boxes, scores, name), f, indent=1)
    return path


def box_volume_mm3(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes).reshape(-1, 6)
    return np.prod(boxes[:, 3:] - boxes[:, :3], axis=1)

