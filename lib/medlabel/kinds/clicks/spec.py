"""The spec of a click model: one structure, the grid and box its network sees, how clicks are simulated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from medlabel.spec import BaseSpec, CTWindow, Intensity, NetworkSpec, ZScore  # noqa: F401 (re-exported for apps)


class ClickSpec(BaseSpec):
    """A DeepGrow-style 3D model: image plus foreground and background click channels in, one structure out.

    Shapes are (x, y, z) on the model's RAS grid at ``spacing_mm``. ``roi_size`` is the box around the
    clicks the network sees at inference (and the training patch), so it should hold the whole structure
    near a click: ``roi_size * spacing_mm`` millimetres.
    """

    kind: Literal["clicks"] = "clicks"
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)
    roi_size: tuple[int, int, int] = (64, 64, 64)
    intensity: Intensity = Field(default_factory=CTWindow, discriminator="kind")
    network: NetworkSpec = NetworkSpec(channels=(16, 32, 64, 128), dropout=0.0)
    sigma_vox: float = Field(2.0, gt=0.0)  # Gaussian width of a click in the guidance channels
    max_interactions: int = Field(4, ge=1)  # simulated correction rounds per training batch
    eval_clicks: int = Field(3, ge=1)  # clicks per validation image in the promotion gate
    # every click sets its class within this geodesic radius of it (scribbles.clicks; 0: the network alone)
    click_radius_mm: float = Field(16.0, ge=0.0)
    click_edge_weight: float = Field(1.0, ge=0.0)  # how strongly intensity edges stop a click's reach

    @field_validator("labels")
    @classmethod
    def _one_label(cls, v: dict[str, int]) -> dict[str, int]:
        if len(v) != 1 or min(v.values()) < 1:
            raise ValueError(f"a click model segments exactly one structure with an id >= 1, got {v}")
        return v

    @field_validator("roi_size")
    @classmethod
    def _roi_divisible(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 16 or s % 16 for s in v):
            raise ValueError(f"roi_size must be multiples of 16 (>= 16), got {v}")
        return v

    @property
    def structure(self) -> str:
        return next(iter(self.labels))

    @property
    def label_id(self) -> int:
        """The structure's value in the stored label maps (e.g. liver 1 in the liver CT labels)."""
        return next(iter(self.labels.values()))
