"""3D Slicer's segmentation file (``.seg.nrrd``) to a labelmap on its image's grid.

Slicer saves a label this way when its MONAI Label module is set to ``.seg.nrrd``: a NRRD whose
``Segment<N>_*`` header keys describe each segment (name, layer, label value within the layer), whose
array is cropped to the segments' extent (the space origin moves with the crop), and which is 4D, one
layer per group of non-overlapping segments, when segments overlap. The stored label is the labelmap
Slicer's other path exports (``ExportSegmentsToLabelmapNode``): segments numbered 1..n in file order,
leaving out Slicer's ``background`` and scribble segments; where the app knows a segment's name, its
label id is used instead. Later segments win where segments overlap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import nrrd
import numpy as np
import SimpleITK as sitk

from medlabel.errors import BadRequest

NOT_LABELS = {"background", "foreground_scribbles", "background_scribbles"}
LPS_FROM = {"left-posterior-superior": (1, 1, 1), "right-anterior-superior": (-1, -1, 1)}


def is_slicer_segmentation(path: str) -> bool:
    """Whether ``path`` is a NRRD with Slicer's segment keys (whatever its file name)."""
    try:
        header = nrrd.read_header(path)
    except Exception:  # not a NRRD at all
        return False
    return "Segment0_ID" in header or "Segment0_LabelValue" in header


def _segments(header: Mapping[str, str]) -> list[dict[str, str]]:
    numbers = sorted({int(m.group(1)) for k in header if (m := re.match(r"Segment(\d+)_", k))})
    return [{k.split("_", 1)[1]: str(v) for k, v in header.items() if k.startswith(f"Segment{n}_")} for n in numbers]


def slicer_segmentation_to_labelmap(path: str, image: sitk.Image, label_ids: Mapping[str, int] | None = None) -> sitk.Image:
    """The (uint8) labelmap of a ``.seg.nrrd`` on ``image``'s voxel grid; ``BadRequest`` says what does not fit."""
    try:
        data, header = nrrd.read(path)
    except Exception as e:
        raise BadRequest(f"the segmentation file cannot be read as NRRD: {e}") from None
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space not in LPS_FROM or data.ndim not in (3, 4):
        raise BadRequest(f"a 3D segmentation in LPS or RAS space is needed, got {data.ndim}D in '{space}'")
    layers = data if data.ndim == 4 else data[np.newaxis]
    directions = np.asarray(header["space directions"], dtype=np.float64)[-3:]  # rows: i, j, k axes
    flip = np.array(LPS_FROM[space], dtype=np.float64)
    axes_ijk = (directions * flip).T  # columns in LPS
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64) * flip

    target = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    if not np.allclose(axes_ijk, target, atol=1e-3):
        raise BadRequest("the segmentation's voxel axes differ from its image's: save it on the image's own grid")
    offset_f = np.linalg.solve(target, origin - np.array(image.GetOrigin()))
    offset = np.round(offset_f).astype(int)
    size = np.array(image.GetSize())
    if not np.allclose(offset_f, offset, atol=0.05) or np.any(offset < 0) or np.any(offset + layers.shape[1:] > size):
        raise BadRequest(f"the segmentation ({list(layers.shape[1:])} voxels at index {offset_f.round(2).tolist()}) "
                         f"does not lie within its image ({size.tolist()} voxels)")

    known = {k.lower(): v for k, v in (label_ids or {}).items()}
    out = np.zeros(size, np.uint8)  # (i, j, k)
    window = out[offset[0]:offset[0] + layers.shape[1], offset[1]:offset[1] + layers.shape[2],
                 offset[2]:offset[2] + layers.shape[3]]
    ordinal = 0
    for segment in _segments(header):
        name = segment.get("Name", "")
        if name.lower() in NOT_LABELS:
            continue
        ordinal += 1
        layer, value = int(segment.get("Layer", 0)), int(segment.get("LabelValue", 1))
        if layer >= len(layers):
            raise BadRequest(f"segment '{name}' is in layer {layer}, but the file has {len(layers)}")
        window[layers[layer] == value] = known.get(name.lower(), ordinal)
    label = sitk.GetImageFromArray(np.ascontiguousarray(out.transpose(2, 1, 0)))
    label.CopyInformation(image)
    return label
