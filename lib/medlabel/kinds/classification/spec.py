"""The classification model spec: which classes, 2D or 3D, input size, network and transfer learning.

A model of this kind is declared in an app's ``main.py`` as a ``ClassificationSpec``; everything else
(inference, Grad-CAM, training, active learning, label checks) is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from medlabel.spec import BaseSpec, CTWindow, Intensity, TrainSpec, _Frozen


class ClassifierNetwork(_Frozen):
    """A MONAI classification network; ``pretrained`` fine-tunes a user's checkpoint (never a download).

    ``resnet`` is MONAI's ResNet with basic blocks (``layers`` per stage, ``widths`` per stage): the
    default (1, 1, 1, 1) is a ResNet-10, narrow enough for a CPU. With ``pretrained`` set, the backbone
    learns at ``learning_rate * pretrained_lr_factor`` and the new head at the full rate.
    """

    arch: Literal["resnet", "densenet121", "vit"] = "resnet"
    layers: tuple[int, int, int, int] = (1, 1, 1, 1)
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    vit_patch: int = Field(8, ge=2)
    vit_hidden: int = Field(192, ge=8)
    vit_layers: int = Field(4, ge=1)
    vit_heads: int = Field(4, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    pretrained: Path | None = None
    pretrained_lr_factor: float = Field(0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _vit_heads_divide(self) -> ClassifierNetwork:
        if self.arch == "vit" and self.vit_hidden % self.vit_heads:
            raise ValueError(f"vit_hidden ({self.vit_hidden}) must be a multiple of vit_heads ({self.vit_heads})")
        return self


class ClassificationSpec(BaseSpec):
    """A 2D (radiograph, slice, tile) or 3D (volume) classifier.

    ``classes`` are the names a label may use. Single-label (``multi_label=False``): each image has
    exactly one class, probabilities are a softmax. Multi-label: each class is present or not
    (sigmoid per class), and a label lists the classes present (possibly none). Images are resized to
    ``input_size`` (voxels, in the image's own axis order) after the intensity step.
    """

    kind: Literal["classification"] = "classification"
    classes: tuple[str, ...]
    labels: dict[str, int] = {}
    multi_label: bool = False
    dims: Literal[2, 3] = 2
    input_size: tuple[int, ...] = (64, 64)
    intensity: Intensity = Field(default_factory=CTWindow, discriminator="kind")
    network: ClassifierNetwork = ClassifierNetwork()
    explanation: Literal["gradcam", "gradcampp", "occlusion"] = "gradcam"
    train: TrainSpec = TrainSpec(max_epochs=20, batch_size=16, learning_rate=1e-3, val_fraction=0.25)

    @model_validator(mode="before")
    @classmethod
    def _labels_from_classes(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("classes") and not data.get("labels"):
            data = {**data, "labels": {c: i for i, c in enumerate(data["classes"])}}
        return data

    @field_validator("classes")
    @classmethod
    def _class_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or len(set(v)) != len(v) or any(not c.strip() for c in v):
            raise ValueError(f"classes must be distinct non-empty names, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ClassificationSpec:
        if len(self.input_size) != self.dims or any(s < 8 for s in self.input_size):
            raise ValueError(f"input_size needs {self.dims} sizes of at least 8 voxels, got {self.input_size}")
        if not self.multi_label and len(self.classes) < 2:
            raise ValueError("a single-label model needs at least two classes (or set multi_label=True)")
        if self.labels != {c: i for i, c in enumerate(self.classes)}:
            raise ValueError("labels are derived from classes; leave them out")
        if self.network.arch == "densenet121" and min(self.input_size) < 32:
            raise ValueError(f"densenet121 halves the input five times: input_size needs at least 32 voxels per axis, "
                             f"got {self.input_size}")
        if self.network.arch == "vit":
            if self.explanation != "occlusion":
                raise ValueError("a ViT has no convolutional feature map for Grad-CAM: use explanation='occlusion'")
            if any(s % self.network.vit_patch for s in self.input_size):
                raise ValueError(f"input_size {self.input_size} must be multiples of vit_patch {self.network.vit_patch}")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes)
