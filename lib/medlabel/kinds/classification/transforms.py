"""Pre-processing built once from a spec, for inference and training alike.

No reorientation or resampling: a classifier looks at the image as stored, resized to ``input_size``,
so an explanation map is simply resized back onto the image's own voxel grid.
"""

from __future__ import annotations

import torch
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    RandFlipd,
    RandGaussianNoised,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Resized,
    ScaleIntensityRanged,
)

from medlabel.kinds.classification.labels import read_classes, target_vector
from medlabel.kinds.classification.spec import ClassificationSpec
from medlabel.spec import CTWindow


class AsModelInput(MapTransform):
    """One channel (the mean of colour channels) and ``dims`` spatial axes (singleton axes dropped).

    A 2D tile stored as an (X, Y, 1) volume is a 2D image; a volume with several slices is not, and says so.
    Keeps the loaded spatial shape in ``meta["input_shape"]`` so results can be put back on it.
    """

    def __init__(self, keys, dims: int):
        super().__init__(keys)
        self.dims = dims

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            shape = tuple(int(s) for s in x.shape[1:])
            if x.shape[0] > 1:
                x = x.float().mean(0, keepdim=True)
            while x.ndim - 1 > self.dims and 1 in x.shape[1:]:
                x = x.squeeze(1 + list(x.shape[1:]).index(1))
            if x.ndim - 1 != self.dims:
                wanted = "a single slice, voxel size (X, Y, 1)" if self.dims == 2 else "a volume"
                raise ValueError(f"a {self.dims}D model cannot classify an image of voxel size {shape}: send {wanted}")
            if hasattr(x, "meta"):
                x.meta["input_shape"] = shape
            d[key] = x
        return d


class LoadClassLabeld(MapTransform):
    """A JSON class label -> its (C,) target vector."""

    def __init__(self, keys, spec: ClassificationSpec):
        super().__init__(keys)
        self.spec = spec

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = torch.as_tensor(target_vector(read_classes(d[key]), self.spec))
        return d


def _intensity(spec: ClassificationSpec):
    if isinstance(spec.intensity, CTWindow):
        w = spec.intensity
        return ScaleIntensityRanged("image", a_min=w.hu_min, a_max=w.hu_max, b_min=0.0, b_max=1.0, clip=True)
    return NormalizeIntensityd("image", nonzero=True)


def _image(spec: ClassificationSpec) -> list:
    return [
        LoadImaged("image", image_only=True),
        EnsureChannelFirstd("image"),
        AsModelInput("image", spec.dims),
        EnsureTyped("image", dtype=torch.float32),
        _intensity(spec),
        Resized("image", spatial_size=spec.input_size, mode="area"),
    ]


def infer_transforms(spec: ClassificationSpec) -> Compose:
    return Compose(_image(spec))


def val_transforms(spec: ClassificationSpec) -> Compose:
    return Compose([*_image(spec), LoadClassLabeld("label", spec)])


def train_transforms(spec: ClassificationSpec) -> Compose:
    """Flips, right-angle rotations (2D) and intensity jitter: labels of a whole image survive all of them."""
    square = spec.input_size[0] == spec.input_size[1]  # a quarter turn keeps the input size
    return Compose([
        *_image(spec),
        LoadClassLabeld("label", spec),
        *[RandFlipd("image", prob=0.5, spatial_axis=a) for a in range(spec.dims)],
        *([RandRotate90d("image", prob=0.5, spatial_axes=(0, 1))] if square else []),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        RandGaussianNoised("image", std=0.02, prob=0.3),
    ])
