"""The label check of the detection kind: boxes (Slicer ROI markups) or a labelmap, on the image they label."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medlabel.datastore.local import check_label_file
from medlabel.kinds.detection.boxes import check_inside, image_bounds, is_markups_file, read_markups


def check_box_label(label_path: str, image_path: str, image_id: str) -> None:
    """Raises ``BadRequest`` naming the problem unless the label gives valid boxes for the image.

    A Markups JSON must hold ROIs with finite centres, positive sizes, inside the image (give or take one
    voxel, as a hand-drawn box may overshoot a lesion at the border). A labelmap is checked as any mask
    (the image's voxel size, integer ids); its components become boxes. No boxes at all is a valid label:
    an image without lesions.
    """
    if not is_markups_file(label_path):
        return check_label_file(label_path, image_path, image_id)
    boxes = read_markups(label_path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(image_path)
    reader.ReadImageInformation()
    check_inside(boxes, image_bounds(image_path), tolerance_mm=float(np.max(reader.GetSpacing())))
