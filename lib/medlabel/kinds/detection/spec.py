"""The detection spec: what a lesion detector predicts, on which grid, with which anchors."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from medlabel.spec import BaseSpec, CTWindow, Intensity


class DetectionSpec(BaseSpec):
    """A 3D box detector (RetinaNet) for one lesion class.

    Sizes are (x, y, z) on the model's RAS grid at ``spacing_mm``. Anchors are given in mm at the finest
    feature level the heads run on and doubled at each coarser level, so ``anchor_mm=(6, 10)`` with three
    levels (strides 2, 4, 8) covers lesions from about 6 to 40 mm. ``head_levels=2`` drops the stride-2
    level: the heads then cost about an eighth (most of a CPU training step), at some precision in placing
    lesions under ~8 mm. Labels are boxes (Slicer ROI markups) or labelmaps, whose
    ``mask_label`` components become boxes.
    """

    kind: Literal["detection"] = "detection"
    labels: dict[str, int] = {"lesion": 1}
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)
    roi_size: tuple[int, int, int] = (32, 32, 32)
    intensity: Intensity = Field(default_factory=CTWindow, discriminator="kind")
    widths: tuple[int, int, int] = (8, 16, 32)  # backbone width per level (strides 2, 4, 8)
    fpn_channels: int = Field(16, ge=16, multiple_of=16)  # RetinaNet heads use GroupNorm(16)
    head_levels: int = Field(3, ge=1, le=3)  # the coarsest pyramid levels the heads run on
    anchor_mm: tuple[float, ...] = (6.0, 10.0)
    mask_label: int = Field(2, ge=1)  # the labelmap value that marks lesions (liver_ct's tumour)
    min_lesion_mm3: float = Field(65.0, ge=0)  # smaller mask components are not lesions to detect
    score_threshold: float = Field(0.3, ge=0, le=1)  # detections reported to clients
    nms_iou: float = Field(0.2, gt=0, le=1)
    # classification loss: BCE on hard-negative-sampled anchors, or focal loss over every anchor (RetinaNet's
    # own, normalised by the number of positive anchors)
    cls_loss: Literal["hard_negative_bce", "focal"] = "hard_negative_bce"
    # weight of a Retina U-Net auxiliary segmentation loss (0: none); see network.ResidualFPN
    seg_weight: float = Field(0.0, ge=0)
    max_detections: int = Field(20, ge=1)

    @field_validator("labels")
    @classmethod
    def _one_class(cls, v: dict[str, int]) -> dict[str, int]:
        if list(v.values()) != [1]:
            raise ValueError(f"a detection spec names one lesion class with id 1, got {v}")
        return v

    @field_validator("spacing_mm", "anchor_mm")
    @classmethod
    def _positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(s <= 0 for s in v):
            raise ValueError(f"must be positive, got {v}")
        return v

    @field_validator("roi_size")
    @classmethod
    def _roi_divisible(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 16 or s % 16 for s in v):
            raise ValueError(f"roi_size must be multiples of 16 (>= 16), got {v}")
        return v
