"""A model's inference pre-processing applied to a volume already in memory (a box of a cached image)."""

from __future__ import annotations

from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from medlabel.kinds.segmentation.transforms import infer_transforms


def in_memory_transforms(spec) -> Compose:
    """The segmentation kind's inference steps (RAS, spacing, intensity) without reading a file; ``spec``
    is any spec with ``spacing_mm`` and ``intensity``."""
    steps = [t for t in infer_transforms(spec).transforms if not isinstance(t, (LoadImaged, EnsureChannelFirstd))]
    return Compose(steps)
