"""A segmentation model's class probabilities inside a box of the image, on the image's own voxels.

The refinement needs the model's belief only where the user scribbles; running the segmentation model
on the box (plus some context) instead of the whole CT is what keeps a refinement interactive. The box
goes through the model's own pre-processing (RAS, model spacing, intensity), the model's sliding window,
and back onto the image voxels by one trilinear resampling.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample

from medlabel.interactive.box import box_shape, grow, mm_to_voxels
from medlabel.interactive.volume import Box, Volume, crop_affine
from medlabel.interactive.preprocess import in_memory_transforms
from medlabel.kinds.segmentation.predictor import Predictor


@torch.no_grad()
def probabilities_in_box(
    predictor: Predictor, volume: Volume, box: Box, context_mm: float, device: torch.device
) -> np.ndarray:
    """(C, *box shape) float32 class probabilities of the serving model for the voxels of ``box``."""
    outer = grow(box, mm_to_voxels(context_mm, volume.spacing_mm), volume.shape)
    crop = volume.crop(outer)
    image = MetaTensor(torch.from_numpy(np.ascontiguousarray(crop.array, dtype=np.float32))[None], affine=crop.affine)
    image = in_memory_transforms(predictor.spec)({"image": image})["image"]
    prob = predictor.probabilities(image, device).cpu()
    prob = MetaTensor(prob, affine=image.affine)
    resampled = SpatialResample(mode="bilinear", padding_mode="border", align_corners=True)(
        prob, dst_affine=torch.as_tensor(crop_affine(volume.affine, box)), spatial_size=box_shape(box)
    )
    return np.asarray(resampled, dtype=np.float32)
