"""A model's inference pre-processing applied to a volume already in memory (a box of a cached image)."""

from __future__ import annotations

import numpy as np
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from medlabel.kinds.segmentation.transforms import infer_transforms
from medlabel.spec import CTWindow


def in_memory_transforms(spec) -> Compose:
    """The segmentation kind's inference steps (RAS, spacing, intensity) without reading a file; ``spec``
    is any spec with ``spacing_mm`` and ``intensity``."""
    steps = [t for t in infer_transforms(spec).transforms if not isinstance(t, (LoadImaged, EnsureChannelFirstd))]
    return Compose(steps)


def windowed(image: np.ndarray, intensity) -> np.ndarray:
    """float32 intensities, CT clipped to the model's window (``intensity``): air and bone edges would
    otherwise set the contrast scale of a graph cut or a geodesic distance and hide the soft-tissue edges
    the user is working on."""
    if isinstance(intensity, CTWindow):
        return np.clip(image, intensity.hu_min, intensity.hu_max).astype(np.float32)
    return image.astype(np.float32, copy=False)
