"""Pre-processing built once from a detection spec, for inference, training and evaluation alike.

Images go to RAS orientation and ``spacing_mm`` (as every medlabel kind does); the label file, boxes as
Slicer ROI markups or a labelmap, becomes MONAI voxel boxes on that same grid through world mm.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.apps.detection.transforms.dictionary import RandCropBoxByPosNegLabeld, RandFlipBoxd, RandRotateBox90d
from monai.transforms import (
    Compose,
    CopyItemsd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImage,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

from medlabel.kinds.detection.boxes import is_markups_file, mask_to_boxes, read_markups, world_to_voxel
from medlabel.kinds.detection.spec import DetectionSpec
from medlabel.spec import CTWindow


def label_boxes(label_path: str, spec: DetectionSpec) -> np.ndarray:
    """World RAS boxes of a label file: Slicer ROI markups, or the ``mask_label`` components of a labelmap."""
    if is_markups_file(label_path):
        return read_markups(label_path)
    mask = LoadImage(image_only=True)(label_path)  # MONAI's readers give RAS affines
    return mask_to_boxes(np.asarray(mask), np.asarray(mask.affine), spec.mask_label, spec.min_lesion_mm3)


class LoadBoxesd(MapTransform):
    """``label`` (a path) -> ``box`` (N, 6) MONAI voxel boxes on the image's model grid, ``box_label`` zeros."""

    def __init__(self, spec: DetectionSpec):
        super().__init__("label")
        self.spec = spec

    def __call__(self, data):
        d = dict(data)
        world = label_boxes(str(d.pop("label")), self.spec)
        voxel = world_to_voxel(world, np.asarray(d["image"].affine))
        d["box"] = torch.as_tensor(voxel, dtype=torch.float32).reshape(-1, 6)
        d["box_label"] = torch.zeros(len(voxel), dtype=torch.long)
        return d


def _intensity(spec: DetectionSpec):
    if isinstance(spec.intensity, CTWindow):
        w = spec.intensity
        return ScaleIntensityRanged("image", a_min=w.hu_min, a_max=w.hu_max, b_min=0.0, b_max=1.0, clip=True)
    return NormalizeIntensityd("image", nonzero=True)


def _geometry(spec: DetectionSpec) -> list:
    return [
        LoadImaged("image", image_only=True),
        EnsureChannelFirstd("image"),
        Orientationd("image", axcodes="RAS"),
        Spacingd("image", pixdim=spec.spacing_mm, mode="bilinear"),
    ]


def infer_transforms(spec: DetectionSpec) -> Compose:
    """Image on the model grid; ``raw`` keeps its intensities (HU on CT) for the findings."""
    return Compose([*_geometry(spec), CopyItemsd("image", names="raw"), _intensity(spec),
                    EnsureTyped("image", dtype="float32")])


def val_transforms(spec: DetectionSpec) -> Compose:
    """Image on the model grid and its label's boxes in that grid's voxels."""
    return Compose([*_geometry(spec), _intensity(spec), EnsureTyped("image", dtype="float32"), LoadBoxesd(spec)])


def train_transforms(spec: DetectionSpec) -> Compose:
    """Validation steps, then crops of ``roi_size`` (lesion-centred with probability 1/2, boxes kept whole
    where they fit), flips and axial quarter turns of image and boxes together (with a few small volumes,
    the detector otherwise learns where their lesions are rather than what they look like), and mild
    intensity changes."""
    keys = dict(image_keys="image", box_keys="box")
    return Compose(
        [
            *val_transforms(spec).transforms,
            SpatialPadd("image", spatial_size=spec.roi_size, method="end"),  # at the end: boxes stay valid
            RandCropBoxByPosNegLabeld(**keys, label_keys="box_label", spatial_size=spec.roi_size, pos=1, neg=1,
                                      num_samples=spec.train.samples_per_volume, whole_box=True),
            *[RandFlipBoxd(**keys, box_ref_image_keys="image", prob=0.5, spatial_axis=axis) for axis in range(3)],
            RandRotateBox90d(**keys, box_ref_image_keys="image", prob=0.75, max_k=3, spatial_axes=(0, 1)),
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.1, prob=0.5),
            EnsureTyped("image", dtype="float32"),
        ]
    )
