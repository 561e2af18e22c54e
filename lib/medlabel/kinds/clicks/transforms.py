"""Pre-processing and click simulation for the click model, from MONAI's DeepGrow transforms.

Geometry and intensity are the segmentation kind's (RAS, model spacing, CT window or z-score). Training
draws a patch around the structure, places a first click DeepGrow's way (a random voxel, favouring the
interior), and the trainer's interaction loop adds correction clicks where the network is wrong
(``FindDiscrepancyRegionsd`` + ``AddRandomGuidanced``), so the model learns to use corrections.
"""

from __future__ import annotations

import json

import numpy as np
from monai.apps.deepgrow.transforms import (
    AddGuidanceSignald,
    AddInitialSeedPointd,
    AddRandomGuidanced,
    FindDiscrepancyRegionsd,
)
from monai.transforms import (
    Activationsd,
    Compose,
    DivisiblePadd,
    EnsureTyped,
    Lambdad,
    MapTransform,
    RandCropByPosNegLabeld,
    SpatialPadd,
    ToNumpyd,
)

from medlabel.interactive.simulate import interior_point
from medlabel.kinds.clicks.spec import ClickSpec
from medlabel.kinds.segmentation.transforms import _intensity, geometry


class Structured(MapTransform):
    """The stored label map as a 0/1 mask of the model's one structure."""

    def __init__(self, keys, label_id: int):
        super().__init__(keys)
        self.label_id = label_id

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = (d[key] == self.label_id).float()
        return d


class InitialClick(AddInitialSeedPointd):
    """DeepGrow's first click, at a random voxel of the structure favouring its interior. A patch without
    the structure (an image where it is absent: one demo CT octant has no liver) gets no click instead of
    DeepGrow's "Not a valid Label" error, which ended the whole training run; the network then learns that
    no click means nothing to segment."""

    def __call__(self, data):
        if np.asarray(data[self.label]).max() > 0.5:
            return super().__call__(data)
        d = dict(data)
        d[self.guidance] = json.dumps([[[-1, -1, -1, -1]], [[-1, -1, -1, -1]]])
        return d


class FirstClickAtCentre(MapTransform):
    """A deterministic first click, at the structure's most interior voxel (as the simulated annotator
    clicks); an empty mask gets no click. Validation uses it so a model and its successor see the same click."""

    def __init__(self, label: str = "label", guidance: str = "guidance"):
        super().__init__(label)
        self.guidance = guidance

    def __call__(self, data):
        d = dict(data)
        mask = np.asarray(d[self.keys[0]])[0] > 0.5
        points = [list(interior_point(mask))] if mask.any() else [[-1, -1, -1]]
        d[self.guidance] = json.dumps([points, [[-1, -1, -1]]])
        return d


def _prepared(spec: ClickSpec) -> list:
    keys = ("image", "label")
    return [*geometry(spec, keys), _intensity(spec), Structured("label", spec.label_id)]


def train_transforms(spec: ClickSpec) -> Compose:
    keys = ("image", "label")
    return Compose(
        [
            *_prepared(spec),
            SpatialPadd(keys, spatial_size=spec.roi_size),
            RandCropByPosNegLabeld(keys, "label", spatial_size=spec.roi_size, pos=1.0, neg=0.0,
                                   num_samples=spec.train.samples_per_volume),
            ToNumpyd(keys),
            InitialClick("label", "guidance"),
            AddGuidanceSignald("image", "guidance", sigma=spec.sigma_vox),
            EnsureTyped(keys, dtype="float32", track_meta=False),
        ]
    )


def val_transforms(spec: ClickSpec) -> Compose:
    keys = ("image", "label")
    return Compose(
        [
            *_prepared(spec),
            DivisiblePadd(keys, k=2 ** (len(spec.network.channels) - 1)),
            ToNumpyd(keys),
            FirstClickAtCentre("label", "guidance"),
            AddGuidanceSignald("image", "guidance", sigma=spec.sigma_vox),
            EnsureTyped(keys, dtype="float32", track_meta=False),
        ]
    )


def interaction_transforms(spec: ClickSpec) -> Compose:
    """Run inside the training loop after each prediction: one more click where the prediction is wrong."""
    return Compose(
        [
            Activationsd("pred", softmax=True),
            Lambdad("pred", lambda p: p[1:2]),
            ToNumpyd(("image", "label", "pred")),
            FindDiscrepancyRegionsd("label", "pred", "discrepancy"),
            AddRandomGuidanced("guidance", "discrepancy", "probability"),
            AddGuidanceSignald("image", "guidance", sigma=spec.sigma_vox),
            EnsureTyped(("image", "label"), dtype="float32", track_meta=False),
        ]
    )
