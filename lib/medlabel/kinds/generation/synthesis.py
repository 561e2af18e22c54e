"""Mask-conditioned image synthesis with a MONAI diffusion model, small enough for a CPU.

A ``DiffusionModelUNet`` (no attention, so fully convolutional and free of a fixed input size) learns
to predict the noise DDPM added to a CT crop, given the crop's label mask as extra input channels
(one per label: concatenation conditioning). Sampling runs DDIM for ``steps`` steps from seeded noise
over the whole mask at once, on a grid at the model spacing along the mask's axes, and the image is
resampled onto the mask's grid.
"""

from __future__ import annotations


import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from monai.inferers import DiffusionInferer
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medlabel.continual.serving import ServingNetwork
from medlabel.continual.store import ModelStore
from medlabel.errors import BadRequest
from medlabel.kinds.generation.spec import TRAIN_TIMESTEPS, SynthesisSpec


def build_diffusion_network(spec: SynthesisSpec) -> DiffusionModelUNet:
    ch = spec.network.channels
    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=1 + len(spec.labels),
        out_channels=1,
        channels=ch,
        attention_levels=(False,) * len(ch),
        num_res_blocks=spec.network.num_res_blocks,
        norm_num_groups=min(8, ch[0]),
    )


def mask_channels(mask: torch.Tensor, spec: SynthesisSpec) -> torch.Tensor:
    """(B, 1, X, Y, Z) label ids -> (B, L, X, Y, Z) one channel per label (background is all zeros)."""
    return torch.cat([(mask == i).float() for i in sorted(spec.labels.values())], 1)


def diffusion_loss(network: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor, spec: SynthesisSpec,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """MSE between the noise DDPM adds at random timesteps and the network's prediction of it."""
    noise = torch.randn(image.shape, generator=generator).to(image.device)
    t = torch.randint(0, TRAIN_TIMESTEPS, (image.shape[0],), generator=generator).to(image.device)
    inferer = DiffusionInferer(DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS))
    prediction = inferer(image, network, noise, t, condition=mask_channels(mask, spec), mode="concat")
    return F.mse_loss(prediction, noise)


@torch.no_grad()
def sample(network: torch.nn.Module, mask: torch.Tensor, spec: SynthesisSpec, steps: int, seed: int,
           device: torch.device) -> torch.Tensor:
    """(1, 1, X, Y, Z) image in [-1, 1] for a (1, 1, X, Y, Z) mask whose sizes are multiples of ``spec.multiple``.

    DDIM with eta 0 is deterministic given its starting noise, so one seed gives one image.
    """
    scheduler = DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, clip_sample=True)
    scheduler.set_timesteps(steps, device=device)
    noise = torch.randn(mask.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    inferer = DiffusionInferer(scheduler)
    out = inferer.sample(noise, network.to(device).eval(), scheduler, conditioning=mask_channels(mask.to(device), spec),
                         mode="concat", verbose=False)
    return out.clamp(-1, 1)


def check_mask(mask: sitk.Image, reference: sitk.Image, spec: SynthesisSpec, image_id: str) -> np.ndarray:
    """The mask's label ids as (K, J, I) integers; ``BadRequest`` if it does not fit the image or the model."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise BadRequest(f"the mask must be a 3D single-channel labelmap, got {mask.GetDimension()}D with "
                         f"{mask.GetNumberOfComponentsPerPixel()} component(s)")
    if mask.GetSize() != reference.GetSize():
        raise BadRequest(f"the mask has voxel size {mask.GetSize()} but image '{image_id}' has "
                         f"{reference.GetSize()}: draw the mask on that image's grid")
    values = sitk.GetArrayFromImage(mask)
    if np.any(np.mod(values, 1)) or values.min() < 0:
        raise BadRequest("the mask must hold non-negative integer label ids")
    unknown = sorted(set(np.unique(values).astype(int).tolist()) - {0, *spec.labels.values()})
    if unknown:
        raise BadRequest(f"the mask holds label ids {unknown} this model does not know; it knows {spec.labels}")
    return values.astype(np.int16)


def to_model_grid(mask: sitk.Image, spec: SynthesisSpec) -> tuple[sitk.Image, sitk.Image]:
    """(the mask resampled by nearest neighbour onto an axis-aligned grid at ``spec.spacing_mm`` covering it,
    padded to multiples of ``spec.multiple``; that grid as an empty reference)."""
    size_mm = np.array(mask.GetSize()) * np.array(mask.GetSpacing())
    size = [int(np.ceil(np.ceil(s / sp) / spec.multiple) * spec.multiple) for s, sp in zip(size_mm, spec.spacing_mm)]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spec.spacing_mm)
    grid.SetDirection(mask.GetDirection())
    centre = mask.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in mask.GetSize()])
    offset = np.array(mask.GetDirection()).reshape(3, 3) @ ((np.array(size) - 1) / 2 * np.array(spec.spacing_mm))
    grid.SetOrigin(tuple(np.array(centre) - offset))
    return sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0), grid


class Synthesizer:
    """One synthesis model's serving network (reloaded when new weights are published) and its sampler."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec: SynthesisSpec = store.spec
        self._serving = ServingNetwork(store, lambda: build_diffusion_network(self.spec))

    @property
    def version(self) -> int:
        """The serving version whose weights the network holds."""
        return self._serving.version

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network with the newest published weights, on ``device``, in eval mode."""
        return self._serving(device)

    def generate_hu(self, mask: sitk.Image, steps: int, seed: int, device: torch.device) -> np.ndarray:
        """(K, J, I) float32 HU on the mask's own grid."""
        on_grid, grid = to_model_grid(mask, self.spec)
        m = torch.from_numpy(sitk.GetArrayFromImage(on_grid).transpose(2, 1, 0).astype(np.float32))[None, None]
        x = sample(self.network(device), m, self.spec, steps, seed, device)[0, 0].cpu().numpy()
        w = self.spec.window
        generated = sitk.GetImageFromArray(((x + 1) / 2 * w.width + w.hu_min).transpose(2, 1, 0).astype(np.float32))
        generated.CopyInformation(grid)
        back = sitk.Resample(generated, mask, sitk.Transform(), sitk.sitkLinear, float(w.hu_min), sitk.sitkFloat32)
        return sitk.GetArrayFromImage(back)
