"""PSNR and SSIM of restored images against the clean ones, next to the baselines they must beat.

Both are measured in the spec's HU window scaled to [0, 1] and clipped (so a data range of 1): the
window is part of the measure, and figures are comparable only within one window.
"""

from __future__ import annotations

import torch
from monai.data import Dataset
from monai.metrics import PSNRMetric, SSIMMetric
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, LoadImaged

from medlabel.kinds.generation.degrade import degrade_for_network, name_seed, thicken, thin_slices
from medlabel.kinds.generation.restore import restore_window, to_window
from medlabel.kinds.generation.spec import Denoise, RestorationSpec


def psnr(restored: torch.Tensor, clean: torch.Tensor) -> float:
    """PSNR in dB of two (C, I, J, K) images in window units, clipped to [0, 1]."""
    metric = PSNRMetric(max_val=1.0)
    return float(metric(restored.clamp(0, 1)[None], clean.clamp(0, 1)[None]).mean())


def ssim(restored: torch.Tensor, clean: torch.Tensor) -> float:
    """3D SSIM (MONAI defaults: 11-voxel Gaussian window, sigma 1.5) of two (C, I, J, K) images in window units, clipped to [0, 1]."""
    metric = SSIMMetric(spatial_dims=3, data_range=1.0)
    return float(metric(restored.clamp(0, 1)[None], clean.clamp(0, 1)[None]).mean())


def compare(restored: torch.Tensor, baselines: dict[str, torch.Tensor], clean: torch.Tensor) -> dict[str, float]:
    """``{"psnr": ..., "ssim": ..., "psnr_<baseline>": ..., "ssim_<baseline>": ...}``."""
    out = {"psnr": psnr(restored, clean), "ssim": ssim(restored, clean)}
    for name, image in baselines.items():
        out[f"psnr_{name}"] = psnr(image, clean)
        out[f"ssim_{name}"] = ssim(image, clean)
    return out


def baselines(network_in: torch.Tensor, degraded: torch.Tensor, spec: RestorationSpec, level: float) -> dict:
    """The estimates without a network: the noisy image; linear and cubic slice interpolation (the
    network's own starting estimate is ``network_in[:1]``: the noisy image, or the cubic one)."""
    if isinstance(spec.degradation, Denoise):
        return {"noisy": network_in[:1]}
    return {"trilinear": thin_slices(degraded, int(level)), "cubic": network_in[:1]}


@torch.no_grad()
def evaluate_restoration(spec: RestorationSpec, network: torch.nn.Module, datalist: list[dict],
                         device: torch.device) -> dict:
    """Mean PSNR/SSIM of the network and of the baselines over whole images and every scored level.

    Each image is degraded as validation degrades it (level from the spec, noise seeded by file name).
    ``score`` is the mean PSNR, the gate's measure.
    """
    network.to(device).eval()
    load = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"), EnsureTyped("image", dtype=torch.float32)])
    rows = []
    for item in Dataset([{"image": d["image"]} for d in datalist], load):
        clean = to_window(item["image"].as_tensor(), spec)
        for level in spec.degradation.levels():
            generator = torch.Generator().manual_seed(name_seed(item["image"].meta["filename_or_obj"]))
            x, target = degrade_for_network(clean, spec.degradation, spec.window, level, generator)
            degraded = x[:1] if isinstance(spec.degradation, Denoise) else thicken(clean, int(level))
            restored = restore_window(network, degraded, spec, level, device)
            rows.append(compare(restored, baselines(x, degraded, spec, level), target))
    if not rows:
        return {"score": 0.0, "images": 0}
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return {"score": mean["psnr"], **mean, "images": len(datalist), "levels": spec.degradation.levels()}
