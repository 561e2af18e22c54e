"""Specs of the generation kind: restoration (denoising, through-plane super-resolution) and synthesis.

A restoration model is trained without labels: images from the datastore are degraded by a documented
model (``degrade.py``) and the network learns to undo it. The degradation parameter (noise level or
slice-thinning factor) is also a network input, so one model serves every level it was trained on and
a request outside that range is refused with a message instead of giving an untested answer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from medlabel.spec import BaseSpec, TrainSpec, _Frozen

SMALL_TRAIN = TrainSpec(max_epochs=20, iterations_per_epoch=20, learning_rate=2e-3, samples_per_volume=4, batch_size=4)
# Restoration: many small steps (4 crops each) at a high rate; on a 2-core CPU denoising gains 2-3 dB
# in its first 50 steps this way, and nothing in 20 steps of 16 crops at 2e-3 (docs/generation.md).
RESTORATION_TRAIN = TrainSpec(max_epochs=10, iterations_per_epoch=40, learning_rate=5e-3, samples_per_volume=4,
                              batch_size=1)


class HUWindow(_Frozen):
    """Linear HU scaling to [0, 1] for the network (not clipped) and the window PSNR/SSIM are measured in."""

    hu_min: float = -1000.0
    hu_max: float = 1000.0

    @model_validator(mode="after")
    def _ordered(self) -> HUWindow:
        if self.hu_min >= self.hu_max:
            raise ValueError(f"hu_min ({self.hu_min}) must be below hu_max ({self.hu_max})")
        return self

    @property
    def width(self) -> float:
        return self.hu_max - self.hu_min


class Denoise(_Frozen):
    """Low-dose CT noise: zero-mean Gaussian noise of ``noise_level_hu`` standard deviation added in HU.

    Lowering the dose of a scan whose noise is sigma0 to a fraction d adds noise of std
    sigma0 * sqrt(1/d - 1) in the image domain (quantum noise variance scales with 1/dose).
    """

    task: Literal["denoise"] = "denoise"
    min_noise_hu: float = Field(10.0, gt=0)
    max_noise_hu: float = Field(80.0, gt=0)
    default_noise_hu: float = Field(40.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Denoise:
        if not self.min_noise_hu <= self.default_noise_hu <= self.max_noise_hu:
            raise ValueError("noise levels must satisfy min_noise_hu <= default_noise_hu <= max_noise_hu")
        return self

    def levels(self) -> list[float]:
        """The conditions the gate scores: the default noise level."""
        return [self.default_noise_hu]


class SuperResolution(_Frozen):
    """Thick slices: each thick slice is the mean of ``factor`` consecutive thin slices along the k axis.

    The network sees the thick volume interpolated (cubic spline) back onto the thin grid and learns the
    residual; the thin grid has ``factor`` times the slices, spacing / factor, and its first slice centre
    half a thick slice minus half a thin slice before the first thick slice centre.
    """

    task: Literal["super_resolution"] = "super_resolution"
    factors: tuple[int, ...] = (2, 4)
    default_factor: int = 2

    @field_validator("factors")
    @classmethod
    def _factors(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(f < 2 or f > 8 for f in v):
            raise ValueError(f"factors must be integers in 2..8, got {v}")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _default(self) -> SuperResolution:
        if self.default_factor not in self.factors:
            raise ValueError(f"default_factor {self.default_factor} must be one of factors {self.factors}")
        return self

    def levels(self) -> list[int]:
        """The conditions the gate scores: every factor, averaged."""
        return list(self.factors)


class RestorationNetwork(_Frozen):
    """A residual MONAI UNet without normalisation (a norm layer would erase the condition channel).

    ``unit_hu``: the HU difference the UNet sees as 1 (its input and output scale; see ``network.py``).
    """

    channels: tuple[int, ...] = (16, 32, 64)
    unit_hu: float = Field(200.0, gt=0)

    @field_validator("channels")
    @classmethod
    def _levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2 or any(c <= 0 for c in v):
            raise ValueError(f"channels needs at least two positive widths, got {v}")
        return v


class RestorationSpec(BaseSpec):
    """A CT restoration model: denoising or through-plane super-resolution, trained self-supervised.

    ``roi_size`` is (i, j, k) on the image's own voxel grid (restoration never resamples in-plane);
    multiples of 8 so the UNet levels and every thinning factor divide it.
    """

    kind: Literal["generation"] = "generation"
    labels: dict[str, int] = {}
    degradation: Denoise | SuperResolution = Field(discriminator="task")
    window: HUWindow = HUWindow()
    roi_size: tuple[int, int, int] = (32, 32, 32)
    network: RestorationNetwork = RestorationNetwork()
    train: TrainSpec = RESTORATION_TRAIN
    max_train_slice_mm: float = Field(1.5, gt=0)  # super-resolution learns only from images this thin

    @field_validator("roi_size")
    @classmethod
    def _roi(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 16 or s % 8 for s in v):
            raise ValueError(f"roi_size must be multiples of 8 (>= 16), got {v}")
        return v

    @model_validator(mode="after")
    def _factors_divide_roi(self) -> RestorationSpec:
        d = self.degradation
        if isinstance(d, SuperResolution) and any(self.roi_size[2] % f for f in d.factors):
            raise ValueError(f"roi_size[2] ({self.roi_size[2]}) must be a multiple of every factor {d.factors}, "
                             "so thick crops stay whole slices")
        return self

    @property
    def task(self) -> str:
        return self.degradation.task


TRAIN_TIMESTEPS = 1000


class DiffusionNetwork(_Frozen):
    """A 2D ``DiffusionModelUNet`` without attention (fully convolutional): one axial slice at a time."""

    channels: tuple[int, ...] = (16, 32, 64)
    num_res_blocks: int = Field(1, ge=1)


class SynthesisSpec(BaseSpec):
    """An image generator conditioned on a label mask: the pair (image, mask) can train other models.

    The model generates axial slices on a grid at ``spacing_mm``, each conditioned on its own mask slice
    and ``context_slices`` mask slices either side (so a slice knows where the organ goes next); a
    volume is its slices stacked. ``roi_size`` is the in-plane size of the training crops (x, y).
    Intensities are the HU window scaled to [-1, 1]. ``prediction``: what the network predicts, the
    added noise (``epsilon``) or the velocity (``v_prediction``, better behaved with few DDIM steps).
    """

    kind: Literal["generation"] = "generation"
    task: Literal["synthesis"] = "synthesis"
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)
    roi_size: tuple[int, int] = (32, 32)
    context_slices: int = Field(1, ge=0, le=4)
    prediction: Literal["epsilon", "v_prediction"] = "v_prediction"
    window: HUWindow = HUWindow(hu_min=-200.0, hu_max=300.0)
    network: DiffusionNetwork = DiffusionNetwork()
    default_steps: int = Field(25, ge=1, le=TRAIN_TIMESTEPS)
    max_steps: int = Field(200, ge=1, le=TRAIN_TIMESTEPS)
    train: TrainSpec = SMALL_TRAIN

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, int]) -> dict[str, int]:
        if not v or sorted(v.values()) != list(range(1, len(v) + 1)):
            raise ValueError(f"labels must be ids 1..N without gaps, got {v}")
        return v

    @property
    def multiple(self) -> int:
        """Every in-plane size the UNet sees is a multiple of this (one halving per level after the first)."""
        return 2 ** (len(self.network.channels) - 1)

    @property
    def slab(self) -> int:
        """Mask slices one generated slice is conditioned on."""
        return 2 * self.context_slices + 1
