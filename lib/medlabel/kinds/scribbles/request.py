"""Reads a scribbles request exactly as the 3D Slicer MONAI Label module sends it.

The module exports every segment of the user's segmentation into one label map: segment ``n`` (in
the segmentation's order) gets value ``n + 1``, listed in ``label_info`` as ``{"name", "id"}``. The
scribbles are the segments ``background_scribbles`` and ``foreground_scribbles``; the structure to
refine is ``selected_label_name``, and the label map also carries that structure as the user sees it
now. An optional ``roi`` ``[i0, i1, j0, j1, k0, k1]`` (voxel indices) bounds the object: outside it
is background, as in MONAI Label's own scribbles. Without ``label_info`` the ids are MONAI Label's
defaults, ``N + 1`` (background) and ``N + 2`` (foreground) for a model of ``N`` labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medlabel.errors import BadRequest
from medlabel.interactive.box import box_from_roi
from medlabel.interactive.volume import Box


@dataclass(frozen=True)
class Scribbles:
    """What a request asks for, on the image's voxel grid."""

    foreground: np.ndarray  # bool (X, Y, Z)
    background: np.ndarray  # bool (X, Y, Z)
    structure: str  # the label being refined
    current: np.ndarray | None  # bool (X, Y, Z): that structure as the client shows it, if sent
    roi: Box | None  # the user's box around the object, if placed


def _ids_by_name(label_info: Any) -> dict[str, int]:
    if label_info in (None, "", []):
        return {}
    if not isinstance(label_info, list) or not all(isinstance(x, dict) for x in label_info):
        raise BadRequest('label_info must be a list of {"name": ..., "id": ...} entries, as Slicer sends it')
    ids = {}
    for entry in label_info:
        value = entry.get("id", entry.get("idx"))
        if isinstance(entry.get("name"), str) and isinstance(value, int) and not isinstance(value, bool):
            ids[entry["name"]] = value
    return ids


def _masks(label: np.ndarray, roi: Box | None, ids: tuple[int, ...]) -> list[np.ndarray]:
    """Full-size bool masks of ``ids``, looked for only inside ``roi`` (outside it nothing is a scribble).

    Comparing inside the box only, into masks laid out like ``label``, keeps this at tens of milliseconds
    on a 512x512x200 label; whole-volume masks of mixed memory layouts took 3 s.
    """
    if roi is None:
        return [label == i for i in ids]
    order = "F" if label.flags.f_contiguous and not label.flags.c_contiguous else "C"
    masks = []
    for i in ids:
        mask = np.zeros(label.shape, dtype=bool, order=order)
        mask[roi] = label[roi] == i
        masks.append(mask)
    return masks


def parse_scribbles(label: np.ndarray, request: dict[str, Any], labels: dict[str, int]) -> Scribbles:
    """Splits the uploaded label map into scribbles and the current structure; 400 when nothing is usable.

    Args:
        label: the uploaded label map (X, Y, Z), already checked to lie on the image's grid.
        request: the infer request (``label_info``, ``selected_label_name``, ``roi``).
        labels: the refined model's label names and ids.
    """
    ids = _ids_by_name(request.get("label_info"))
    bg_id = ids.get("background_scribbles", len(labels) + 1)
    fg_id = ids.get("foreground_scribbles", len(labels) + 2)
    if bg_id == fg_id:
        raise BadRequest(f"background and foreground scribbles share the id {bg_id} in label_info")
    structure = request.get("selected_label_name") or next(iter(sorted(labels, key=labels.get)))
    if structure not in labels:
        raise BadRequest(f"selected_label_name '{structure}' is not a label of this model; choose one of {sorted(labels)}")
    label = np.asarray(label)
    roi_value = request.get("roi")
    roi = box_from_roi(roi_value, label.shape) if roi_value not in (None, "", []) else None
    foreground, background = _masks(label, roi, (fg_id, bg_id))
    structure_id = ids.get(structure, labels[structure] if not ids else None)
    current = None
    if structure_id is not None and structure_id not in (fg_id, bg_id):
        current = label == structure_id
    if not foreground.any() and not background.any():
        where = " inside the roi" if roi is not None else ""
        raise BadRequest(
            f"no scribbles{where}: paint foreground_scribbles (id {fg_id}) or background_scribbles (id {bg_id}) "
            f"in the label map (values present: {sorted(int(v) for v in np.unique(label))[:10]})"
        )
    return Scribbles(foreground, background, structure, current, roi)
