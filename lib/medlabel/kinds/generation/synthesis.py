"""Mask-conditioned image synthesis with a MONAI diffusion model, small enough to learn on a CPU.

A 2D ``DiffusionModelUNet`` (no attention, so fully convolutional and free of a fixed input size)
learns axial CT slices given their label mask: the slice's own mask and ``context_slices`` neighbours
either side, one channel per label and slice (concatenation conditioning). A 3D network of the same
width took 20 s per training step on 2 cores and learnt nothing in a CPU budget; slices are 30x
cheaper and every volume gives dozens of training examples. Sampling runs DDIM for ``steps`` steps
from seeded noise over every slice of the mask at once (a batch), on a grid at the model spacing
along the mask's axes, and the stacked volume is resampled onto the mask's grid.
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
        spatial_dims=2,
        in_channels=1 + spec.slab * len(spec.labels),
        out_channels=1,
        channels=ch,
        attention_levels=(False,) * len(ch),
        num_res_blocks=spec.network.num_res_blocks,
        norm_num_groups=min(8, ch[0]),
    )


def mask_channels(slab: torch.Tensor, spec: SynthesisSpec) -> torch.Tensor:
    """(B, S, X, Y) label ids of S mask slices -> (B, S * L, X, Y): one channel per label and slice
    (background is all zeros)."""
    return torch.cat([(slab == i).float() for i in sorted(spec.labels.values())], 1)


def slabs(mask: torch.Tensor, spec: SynthesisSpec) -> torch.Tensor:
    """(X, Y, Z) label ids -> (Z, S, X, Y): for every slice, its mask slab (edge slices repeated)."""
    c = spec.context_slices
    index = (torch.arange(mask.shape[-1])[:, None] + torch.arange(-c, c + 1)[None]).clamp(0, mask.shape[-1] - 1)
    return mask.permute(2, 0, 1)[index]


def _schedulers(spec: SynthesisSpec) -> tuple[DDPMScheduler, DDIMScheduler]:
    return (DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, prediction_type=spec.prediction),
            DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, prediction_type=spec.prediction, clip_sample=True))


def diffusion_loss(network: torch.nn.Module, image: torch.Tensor, slab: torch.Tensor, spec: SynthesisSpec,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """MSE between the network's prediction and its target (the added noise, or the velocity) for
    (B, 1, X, Y) slices noised at random timesteps, given their (B, S, X, Y) mask slabs."""
    noise = torch.randn(image.shape, generator=generator).to(image.device)
    t = torch.randint(0, TRAIN_TIMESTEPS, (image.shape[0],), generator=generator).to(image.device)
    scheduler = _schedulers(spec)[0]
    condition = mask_channels(slab, spec)
    prediction = DiffusionInferer(scheduler)(image, network, noise, t, condition=condition, mode="concat")
    target = noise if spec.prediction == "epsilon" else scheduler.get_velocity(image, noise, t)
    return F.mse_loss(prediction, target)


@torch.no_grad()
def sample(network: torch.nn.Module, mask: torch.Tensor, spec: SynthesisSpec, steps: int, seed: int,
           device: torch.device) -> torch.Tensor:
    """(1, 1, X, Y, Z) image in [-1, 1] for a (1, 1, X, Y, Z) mask whose X and Y are multiples of
    ``spec.multiple``; all Z slices are sampled as one batch.

    DDIM with eta 0 is deterministic given its starting noise, so one seed gives one image.
    """
    scheduler = _schedulers(spec)[1]
    scheduler.set_timesteps(steps, device=device)
    condition = mask_channels(slabs(mask[0, 0], spec), spec).to(device)
    noise = torch.randn((condition.shape[0], 1, *condition.shape[2:]), generator=torch.Generator().manual_seed(seed))
    out = DiffusionInferer(scheduler).sample(noise.to(device), network.to(device).eval(), scheduler,
                                             conditioning=condition, mode="concat", verbose=False)
    return out.clamp(-1, 1).permute(1, 2, 3, 0)[None]


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
    """(the mask resampled by nearest neighbour onto a grid at ``spec.spacing_mm`` along its axes covering
    it, in-plane padded to multiples of ``spec.multiple``; that grid as an empty reference)."""
    size_mm = np.array(mask.GetSize()) * np.array(mask.GetSpacing())
    size = [int(np.ceil(np.ceil(s / sp) / spec.multiple) * spec.multiple) for s, sp in zip(size_mm, spec.spacing_mm)]
    size[2] = int(np.ceil(size_mm[2] / spec.spacing_mm[2]))  # slices: any number
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
