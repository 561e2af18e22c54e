"""Restoration pre-processing built once from a spec: native voxel grid, HU window units, degradation.

Restoration never resamples: the network runs on the image's own grid, so the restored image keeps
every voxel the user has (and the K axis stays the slice axis for super-resolution).
"""

from __future__ import annotations

from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    RandFlipd,
    RandRotate90d,
    RandSpatialCropSamplesd,
    ScaleIntensityRanged,
    SpatialPadd,
)

from medlabel.kinds.generation.degrade import Degraded
from medlabel.kinds.generation.spec import Denoise, RestorationSpec

KEYS = ("image", "label")  # label: a paired clean target the user submitted (optional)


def _load(spec: RestorationSpec) -> list:
    w = spec.window
    return [
        LoadImaged(KEYS, image_only=True, allow_missing_keys=True),
        EnsureChannelFirstd(KEYS, allow_missing_keys=True),
        EnsureTyped(KEYS, dtype="float32", allow_missing_keys=True),
        ScaleIntensityRanged(KEYS, a_min=w.hu_min, a_max=w.hu_max, b_min=0.0, b_max=1.0, clip=False,
                             allow_missing_keys=True),
    ]


def val_transforms(spec: RestorationSpec) -> Compose:
    """Whole images, degraded at the spec's default level with noise seeded by the file name."""
    return Compose([*_load(spec), Degraded(spec.degradation, spec.window, fixed=True), EnsureTyped(KEYS, track_meta=False)])


def train_transforms(spec: RestorationSpec) -> Compose:
    """Random crops, flips and in-plane quarter turns, then a random degradation.

    Super-resolution keeps the K axis unflipped in place: slices must stay slices.
    """
    t = spec.train
    flip_axes = (0, 1, 2) if isinstance(spec.degradation, Denoise) else (0, 1)
    return Compose(
        [
            *_load(spec),
            SpatialPadd(KEYS, spatial_size=spec.roi_size, mode="edge", allow_missing_keys=True),
            RandSpatialCropSamplesd(KEYS, roi_size=spec.roi_size, num_samples=t.samples_per_volume, random_size=False,
                                    allow_missing_keys=True),
            *[RandFlipd(KEYS, prob=0.5, spatial_axis=a, allow_missing_keys=True) for a in flip_axes],
            RandRotate90d(KEYS, prob=0.5, spatial_axes=(0, 1), allow_missing_keys=True),
            Degraded(spec.degradation, spec.window),
            EnsureTyped(KEYS, track_meta=False),
        ]
    )
