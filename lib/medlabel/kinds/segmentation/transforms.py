"""Pre-processing built once from a spec: the same geometry and intensity steps for training and inference.

Every image is brought to RAS orientation and ``spec.spacing_mm`` before the network sees it; inference
undoes this by resampling class probabilities back onto the original voxel grid (see ``restore.py``).
"""

from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    NormalizeIntensityd,
    Orientationd,
    RandAffined,
    RandCropByPosNegLabeld,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)
from monai.transforms import MapTransform

from medlabel.spec import CTWindow, ModelSpec


class KeepModelLabels(MapTransform):
    """Sets label ids this model does not predict to background, so a shared label map trains any model."""

    def __init__(self, keys, num_classes: int):
        super().__init__(keys)
        self.num_classes = num_classes

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = d[key] * (d[key] < self.num_classes)
        return d


def _intensity(spec: ModelSpec):
    if isinstance(spec.intensity, CTWindow):
        w = spec.intensity
        return ScaleIntensityRanged("image", a_min=w.hu_min, a_max=w.hu_max, b_min=0.0, b_max=1.0, clip=True)
    return NormalizeIntensityd("image", nonzero=True)


def geometry(spec: ModelSpec, keys: tuple[str, ...]) -> list:
    """Load, channel-first, RAS orientation and resampling to the model spacing (nearest for labels)."""
    modes = tuple("bilinear" if k == "image" else "nearest" for k in keys)
    return [
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        Orientationd(keys, axcodes="RAS"),
        Spacingd(keys, pixdim=spec.spacing_mm, mode=modes),
    ]


def infer_transforms(spec: ModelSpec) -> Compose:
    """Image only: geometry then intensity, float32."""
    return Compose([*geometry(spec, ("image",)), _intensity(spec), EnsureTyped("image", dtype="float32")])


def val_transforms(spec: ModelSpec) -> Compose:
    """Image and label on the model grid; the whole volume is evaluated by a sliding window."""
    keys = ("image", "label")
    return Compose(
        [
            *geometry(spec, keys),
            _intensity(spec),
            KeepModelLabels("label", spec.num_classes),
            EnsureTyped("image", dtype="float32"),
            EnsureTyped("label", dtype="uint8"),
        ]
    )


def train_transforms(spec: ModelSpec) -> Compose:
    """Validation steps plus foreground-weighted patch sampling and mild, anatomy-preserving augmentation.

    No flips: after RAS orientation left and right are real anatomy, a prior worth keeping with few labels.
    """
    keys = ("image", "label")
    t = spec.train
    return Compose(
        [
            *val_transforms(spec).transforms,
            SpatialPadd(keys, spatial_size=spec.roi_size),
            RandCropByPosNegLabeld(
                keys,
                label_key="label",
                spatial_size=spec.roi_size,
                pos=t.foreground_ratio,
                neg=1.0 - t.foreground_ratio,
                num_samples=t.samples_per_volume,
            ),
            RandAffined(
                keys,
                prob=0.3,
                rotate_range=(0.15, 0.15, 0.15),
                scale_range=(0.1, 0.1, 0.1),
                mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.1, prob=0.5),
            RandGaussianNoised("image", std=0.02, prob=0.2),
            EnsureTyped("image", dtype="float32"),
        ]
    )
