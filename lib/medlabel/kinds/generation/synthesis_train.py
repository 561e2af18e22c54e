"""Synthesis training: the diffusion model learns axial CT slices given their mask slabs (the datastore's
final labels).

The shared ``ContinualTrainTask`` gives fine-tuning, the fixed split, the gate and versions; this module
swaps monailabel's supervised step for the diffusion step (noise at a random timestep, predict it).
The gate's score is -10 log10 of the prediction MSE (the noise or velocity target) on validation slices at
fixed timesteps and noise (higher is better); sample quality is measured in ``bench/generation.py``.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import DataLoader, Dataset
from monai.handlers import PeakSignalToNoiseRatio, from_engine
from monai.inferers import SimpleInferer
from monai.transforms import (
    CenterSpatialCropd,
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)
from monailabel.tasks.train.basic_train import Context

from medlabel.continual.store import ModelStore
from medlabel.continual.training import ContinualTrainTask
from medlabel.kinds.generation.spec import SynthesisSpec
from medlabel.kinds.generation.synthesis import build_diffusion_network, diffusion_loss
from medlabel.kinds.generation.train import GENERATED_KEY
from medlabel.spec import AppSettings

KEYS = ("image", "label")


def _prepare(spec: SynthesisSpec) -> list:
    w = spec.window
    return [
        LoadImaged(KEYS, image_only=True),
        EnsureChannelFirstd(KEYS),
        Orientationd(KEYS, axcodes="RAS"),
        Spacingd(KEYS, pixdim=spec.spacing_mm, mode=("bilinear", "nearest")),
        ScaleIntensityRanged("image", a_min=w.hu_min, a_max=w.hu_max, b_min=-1.0, b_max=1.0, clip=True),
        SpatialPadd(KEYS, spatial_size=(*spec.roi_size, spec.slab), mode="constant", value=-1.0),
    ]


class ToSlice(MapTransform):
    """(1, X, Y, S) crops -> ``image`` (1, X, Y), the middle slice; ``label`` (S, X, Y), its mask slab."""

    def __init__(self):
        super().__init__(KEYS)

    def __call__(self, data):
        d = dict(data)
        middle = d["image"].shape[-1] // 2
        d["image"], d["label"] = d["image"][..., middle], d["label"][0].permute(2, 0, 1)
        return d


def train_transforms(spec: SynthesisSpec) -> Compose:
    """Slabs of ``slab`` slices, two thirds centred on a labelled voxel; flips on every axis (the serving
    grid follows the mask's own axes, which need not be RAS)."""
    return Compose([*_prepare(spec),
                    RandCropByPosNegLabeld(KEYS, label_key="label", spatial_size=(*spec.roi_size, spec.slab), pos=0.67,
                                           neg=0.33, num_samples=spec.train.samples_per_volume),
                    *[RandFlipd(KEYS, prob=0.5, spatial_axis=a) for a in (0, 1, 2)],
                    ToSlice(),
                    EnsureTyped(KEYS, dtype=torch.float32, track_meta=False)])


def val_transforms(spec: SynthesisSpec) -> Compose:
    """The central slab of each validation image."""
    return Compose([*_prepare(spec), CenterSpatialCropd(KEYS, roi_size=(*spec.roi_size, spec.slab)), ToSlice(),
                    EnsureTyped(KEYS, dtype=torch.float32, track_meta=False)])


def is_mask(path: str) -> bool:
    """An integer labelmap (a clean restoration target is a float CT and is not a mask)."""
    values = sitk.GetArrayViewFromImage(sitk.ReadImage(path))
    return bool(np.issubdtype(values.dtype, np.integer) or not np.any(np.mod(values, 1)))


def noise_psnr(mse: float) -> float:
    return -10 * math.log10(max(mse, 1e-12))


class SynthesisTrain(ContinualTrainTask):
    """Diffusion training on (CT crop, mask) pairs from final labels."""

    def __init__(self, store: ModelStore, settings: AppSettings):
        super().__init__(store, settings, f"Mask-conditioned diffusion '{store.spec.name}' on the final labels")

    def pre_process(self, request, datastore):
        """Real images with an integer mask as final label (never images this kind generated)."""
        items = []
        for image_id in sorted(datastore.get_labeled_images()):
            if (datastore.get_image_info(image_id) or {}).get(GENERATED_KEY):
                continue
            label = datastore.get_label_uri(datastore.get_labels_by_image_id(image_id)["final"], "final")
            if is_mask(label):
                items.append({"image": datastore.get_image_uri(image_id), "label": label})
        return items

    def network(self, context: Context):
        return build_diffusion_network(self.spec)

    def loss_function(self, context: Context):
        return torch.nn.MSELoss()

    def train_pre_transforms(self, context: Context):
        return train_transforms(self.spec)

    def val_pre_transforms(self, context: Context):
        return val_transforms(self.spec)

    def train_post_transforms(self, context: Context):
        return None

    def val_inferer(self, context: Context):
        return SimpleInferer()

    def _step(self, train: bool):
        spec = self.spec

        def step(engine, batch):
            image, mask = batch["image"].to(engine.state.device), batch["label"].to(engine.state.device)
            generator = None if train else torch.Generator().manual_seed(engine.state.iteration)
            network = engine.network
            if train:
                network.train()
                engine.optimizer.zero_grad(set_to_none=True)
                loss = diffusion_loss(network, image, mask, spec, generator)
                loss.backward()
                engine.optimizer.step()
            else:
                network.eval()
                with torch.no_grad():
                    loss = diffusion_loss(network, image, mask, spec, generator)
            # PSNR of (pred - noise) against zero is -10 log10(MSE): the metric handlers see the loss this way
            error = torch.full((image.shape[0], 1, 1, 1), math.sqrt(float(loss)))
            return {"image": image, "label": torch.zeros_like(error), "pred": error, "loss": loss.detach()}

        return step

    def train_iteration_update(self, context: Context):
        return self._step(train=True)

    def val_iteration_update(self, context: Context):
        return self._step(train=False)

    def train_key_metric(self, context: Context):
        return {"train_noise_psnr": PeakSignalToNoiseRatio(max_val=1.0, output_transform=from_engine(["pred", "label"]))}

    def val_key_metric(self, context: Context):
        return {"val_noise_psnr": PeakSignalToNoiseRatio(max_val=1.0, output_transform=from_engine(["pred", "label"]))}

    def evaluate_weights(self, weights, datalist, device):
        """-10 log10 of the prediction MSE over validation slices, fixed noise and timesteps."""
        network = build_diffusion_network(self.spec)
        network.load_state_dict(weights)
        network.to(device).eval()
        losses = []
        with torch.no_grad():
            for i, item in enumerate(DataLoader(Dataset(datalist, val_transforms(self.spec)), batch_size=1)):
                for repeat in range(4):
                    g = torch.Generator().manual_seed(1000 * i + repeat)
                    losses.append(float(diffusion_loss(network, item["image"].to(device), item["label"].to(device),
                                                       self.spec, g)))
        mse = sum(losses) / len(losses) if losses else 1.0
        return {"score": noise_psnr(mse), "noise_mse": mse, "images": len(datalist)}
