"""Typed model specs and app settings: the only place where configuration is parsed.

An app is a list of ``ModelSpec``; ``--conf key value`` strings become one ``AppSettings``. Both are
frozen pydantic models, so a typo or a bad value fails at start-up with a message naming the field,
and every later reader gets typed values instead of string dicts.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medlabel.errors import ConfigError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CTWindow(_Frozen):
    """Clip CT to a Hounsfield window and scale it to [0, 1]; HU are absolute, so no statistics are needed."""

    kind: Literal["ct_window"] = "ct_window"
    hu_min: float = -175.0
    hu_max: float = 250.0

    @model_validator(mode="after")
    def _ordered(self) -> CTWindow:
        if self.hu_min >= self.hu_max:
            raise ValueError(f"hu_min ({self.hu_min}) must be below hu_max ({self.hu_max})")
        return self


class ZScore(_Frozen):
    """Normalise MR (arbitrary units) to zero mean, unit variance over non-zero voxels."""

    kind: Literal["zscore"] = "zscore"


Intensity = CTWindow | ZScore


class NetworkSpec(_Frozen):
    """Which MONAI network to build and how wide; one builder serves training and inference."""

    arch: Literal["unet", "segresnet", "dynunet"] = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @field_validator("channels")
    @classmethod
    def _levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2 or any(c <= 0 for c in v):
            raise ValueError(f"channels needs at least two positive widths, got {v}")
        return v

    @property
    def downsampling(self) -> int:
        """How much the coarsest level shrinks the input: every level after the first halves it, so a
        window's sides must be multiples of this."""
        return 2 ** (len(self.channels) - 1)


class TrainSpec(_Frozen):
    """Fine-tuning schedule; sized for a few labelled volumes on a CPU (see README, 'Planning')."""

    max_epochs: int = Field(40, ge=1)
    iterations_per_epoch: int = Field(20, ge=1)  # batches per epoch, however few the labelled images
    learning_rate: float = Field(3e-3, gt=0)
    samples_per_volume: int = Field(4, ge=1)
    batch_size: int = Field(2, ge=1)
    val_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    foreground_ratio: float = Field(0.67, ge=0.0, le=1.0)
    max_minutes: float | None = Field(None, gt=0)  # wall-clock cap: no epoch starts that would end past it


class BaseSpec(_Frozen):
    """What every model of every kind declares; each kind's spec adds its own fields.

    The model store, retraining trigger, versions and routes need only these, so a new kind gets the
    continual-learning loop by subclassing this and registering builders in ``medlabel.kinds.registry``.
    """

    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    description: str = ""
    labels: dict[str, int]
    train: TrainSpec = TrainSpec()

    @property
    def label_names(self) -> list[str]:
        """Label names ordered by id."""
        return [k for k, _ in sorted(self.labels.items(), key=lambda kv: kv[1])]


class ModelSpec(BaseSpec):
    """A 3D segmentation model: what it predicts, at which resolution, with which network.

    Shapes and sizes are (x, y, z) in the model's RAS grid; ``spacing_mm`` is the grid the network sees.
    """

    kind: Literal["segmentation"] = "segmentation"
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    roi_size: tuple[int, int, int] = (64, 64, 64)
    intensity: Intensity = Field(default_factory=CTWindow, discriminator="kind")
    network: NetworkSpec = NetworkSpec()

    @field_validator("labels")
    @classmethod
    def _label_ids(cls, v: dict[str, int]) -> dict[str, int]:
        if not v:
            raise ValueError("labels must name at least one structure")
        ids = sorted(v.values())
        if ids != list(range(1, len(ids) + 1)):
            raise ValueError(f"label ids must be 1..N without gaps (0 is background), got {v}")
        return v

    @field_validator("spacing_mm")
    @classmethod
    def _positive_spacing(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in v):
            raise ValueError(f"spacing_mm must be positive, got {v}")
        return v

    @field_validator("roi_size")
    @classmethod
    def _roi_divisible(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 16 or s % 16 for s in v):
            raise ValueError(f"roi_size must be multiples of 16 (>= 16) so every network level divides, got {v}")
        return v

    @property
    def num_classes(self) -> int:
        """Output channels: background plus each label."""
        return len(self.labels) + 1



class AppSettings(_Frozen):
    """Everything a user may pass as ``--conf key value``; unknown keys stop start-up."""

    models: tuple[str, ...] = ()
    model_dir: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_epochs: int | None = Field(None, ge=1)
    uncertainty_samples: int = Field(4, ge=2, le=16)
    max_upload_mb: int = Field(1024, ge=1)
    retrain_after: int = Field(4, ge=0)  # new final labels that queue a training; 0 disables
    cpu_precision: Literal["auto", "float32", "bfloat16"] = "auto"  # inference on CPU; see medlabel.runtime
    server_mode: bool = False  # set by monailabel itself

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(s.strip() for s in v.split(",") if s.strip())
        return v

    @classmethod
    def from_conf(cls, conf: Mapping[str, str]) -> AppSettings:
        """Parse monailabel's ``--conf`` dict, naming the key and the closest valid spelling on error."""
        known = set(cls.model_fields)
        for key in conf:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"unknown --conf key '{key}'{hint} Valid keys: {', '.join(sorted(known))}")
        try:
            return cls.model_validate(dict(conf))
        except ValidationError as e:
            raise ConfigError(_describe(e, "--conf")) from None


def _describe(error: ValidationError, where: str) -> str:
    parts = []
    for err in error.errors():
        field = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where} '{field}': {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def parse_specs(specs: list[BaseSpec], enabled: tuple[str, ...]) -> list[BaseSpec]:
    """Check names are unique and select the enabled ones (all when ``enabled`` is empty)."""
    names = [s.name for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"model names must be unique; repeated: {sorted(dupes)}")
    unknown = [m for m in enabled if m not in names]
    if unknown:
        raise ConfigError(f"--conf models names unknown model(s) {unknown}; this app has {names}")
    return [s for s in specs if not enabled or s.name in enabled]


def valid_name(value: str) -> bool:
    """True for a safe identifier (model, strategy, version): no path characters possible."""
    return bool(re.fullmatch(NAME_PATTERN, value))
