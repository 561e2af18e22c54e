"""The degradation models restoration learns to undo, as pure functions and one MONAI transform.

Images are (C, I, J, K) tensors in window units (HU scaled by ``HUWindow``); K is the through-plane
(slice) axis, the last voxel axis of the file as ITK and nibabel read it. The random transform draws its
parameter first and hands it to the deterministic functions, so a validation image is degraded the
same way in every run (its seed comes from its file name).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, Randomizable
from scipy.ndimage import zoom

from medlabel.kinds.generation.spec import Denoise, HUWindow, SuperResolution


def add_noise(image: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``image`` plus zero-mean Gaussian noise of standard deviation ``sigma`` (same units as the image)."""
    noise = torch.randn(image.shape, generator=generator, dtype=torch.float32)
    return image + sigma * noise.to(image.device, image.dtype)


def thicken(image: torch.Tensor, factor: int) -> torch.Tensor:
    """(C, I, J, K) -> (C, I, J, K // factor): each thick slice is the mean of ``factor`` thin slices.

    Slices past the last whole group are dropped (``crop_to_factor`` gives the matching target).
    """
    k = image.shape[-1] // factor * factor
    return image[..., :k].reshape(*image.shape[:-1], k // factor, factor).mean(-1)


def crop_to_factor(image: torch.Tensor, factor: int) -> torch.Tensor:
    """The thin slices ``thicken`` used: K cut to a multiple of ``factor``."""
    return image[..., : image.shape[-1] // factor * factor]


def thin_slices(image: torch.Tensor, factor: int) -> torch.Tensor:
    """(C, I, J, K) -> (C, I, J, K * factor) by linear interpolation along K (the trilinear baseline).

    ``align_corners=False`` puts thick slice s at thin index factor * s + (factor - 1) / 2, the centre of
    the thin slices it averaged, which is the geometry ``writer.thin_grid`` writes.
    """
    out = F.interpolate(image[None].float(), scale_factor=(1, 1, factor), mode="trilinear", align_corners=False)
    return out[0].to(image.dtype)


def cubic_slices(image: torch.Tensor, factor: int) -> torch.Tensor:
    """(C, I, J, K) -> (C, I, J, K * factor) by cubic-spline interpolation along K, the same geometry as
    ``thin_slices`` (``grid_mode``: voxel edges scale, so centres land where ``align_corners=False`` puts
    them; edges clamped). The stronger baseline, and the estimate super-resolution starts from."""
    rows = image.detach().cpu().float().numpy().reshape(-1, image.shape[-1])  # one row per (c, i, j): 1D splines
    out = zoom(rows, (1, factor), order=3, mode="nearest", grid_mode=True)  # 50x faster than a 4D zoom, same values
    return torch.from_numpy(out.astype(np.float32).reshape(*image.shape[:-1], -1)).to(image.device)


def condition_map(image: torch.Tensor, value: float) -> torch.Tensor:
    """A constant channel holding the degradation parameter, concatenated to the network input."""
    return torch.full_like(image[:1], float(value))


def noise_condition(sigma_hu: float, spec: Denoise) -> float:
    """Noise level as the network sees it: a fraction of the trained maximum."""
    return sigma_hu / spec.max_noise_hu


def factor_condition(factor: int, spec: SuperResolution) -> float:
    return factor / max(spec.factors)


def name_seed(path: str | Path) -> int:
    """A seed from a file name, so a validation image gets the same degradation in every run."""
    return int(hashlib.sha1(Path(str(path)).name.encode()).hexdigest()[:8], 16)


def degrade_for_network(clean: torch.Tensor, degradation: Denoise | SuperResolution, window: HUWindow, level: float,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(degraded input on the target grid, with its condition channel; the matching clean target).

    The input is what inference builds from a real degraded image (``network_input``); the target is the
    clean image on the same grid.
    """
    if isinstance(degradation, Denoise):
        noisy = add_noise(clean, level / window.width, generator)
        return network_input(noisy, degradation, level), clean
    factor = int(level)
    thick = thicken(clean, factor)
    return network_input(thick, degradation, factor), crop_to_factor(clean, factor)


def network_input(degraded: torch.Tensor, degradation: Denoise | SuperResolution, level: float) -> torch.Tensor:
    """(2, I, J, K') network input from a degraded (1, I, J, K) image: the baseline estimate (the image
    itself, or its slices cubic-spline interpolated onto the thin grid) and the condition channel."""
    if isinstance(degradation, Denoise):
        base, cond = degraded, noise_condition(level, degradation)
    else:
        base, cond = cubic_slices(degraded, int(level)), factor_condition(int(level), degradation)
    return torch.cat([base, condition_map(base, cond)], 0)


class Degraded(Randomizable, MapTransform):
    """Turns ``image`` (clean, window units) into the network's degraded input and ``label`` into its target.

    The level is drawn uniformly in the trained noise range, or among the thinning factors. With
    ``fixed=True`` (validation) the level is the degradation's default and the noise is seeded by the
    image's file name. A ``label`` already present is a paired target the user submitted: then the image
    is taken as the degraded input as it is, and the noise level is measured from the pair.
    """

    def __init__(self, degradation: Denoise | SuperResolution, window: HUWindow, fixed: bool = False):
        MapTransform.__init__(self, ("image",))
        self.degradation, self.window, self.fixed = degradation, window, fixed
        self._level: float = 0.0
        self._seed = 0

    def randomize(self, data=None) -> None:
        d = self.degradation
        if isinstance(d, Denoise):
            self._level = float(self.R.uniform(d.min_noise_hu, d.max_noise_hu))
        else:
            self._level = float(self.R.choice(d.factors))
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, data):
        d = dict(data)
        image = torch.as_tensor(d["image"]).float()
        if "label" in d and d["label"] is not None and isinstance(self.degradation, Denoise):
            target = torch.as_tensor(d["label"]).float()
            level = float((image - target).std()) * self.window.width
            level = min(max(level, self.degradation.min_noise_hu), self.degradation.max_noise_hu)
            d["image"], d["label"] = network_input(image, self.degradation, level), target
            return d
        if self.fixed:
            level, seed = float(self.degradation.levels()[0]), name_seed(getattr(d["image"], "meta", {}).get("filename_or_obj", ""))
        else:
            self.randomize()
            level, seed = self._level, self._seed
        generator = torch.Generator().manual_seed(seed)
        d["image"], d["label"] = degrade_for_network(image, self.degradation, self.window, level, generator)
        return d
