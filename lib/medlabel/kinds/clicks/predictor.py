"""The click model's serving weights and one prediction from clicks, in a box around them.

Clicks arrive as voxel indices of the image file. The box around them (at least the network's
``roi_size`` in millimetres) goes through the model's pre-processing, the clicks are mapped onto the
model grid through the two affines and drawn as DeepGrow's Gaussian guidance channels, and the
structure's probability comes back onto the image voxels by one trilinear resampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.apps.deepgrow.transforms import AddGuidanceSignald
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference

from scribbles.clicks import click_correction

from medlabel.continual.serving import ServingNetwork
from medlabel.continual.store import ModelStore
from medlabel.interactive.preprocess import in_memory_transforms, windowed
from medlabel.interactive.box import at_least, box_around
from medlabel.interactive.volume import Box, Volume, VolumeCache, empty_label, onto_box
from medlabel.kinds.clicks.network import build_network
from medlabel.kinds.clicks.spec import ClickSpec
from medlabel.runtime import autocast

Points = Sequence[Sequence[int]]


@torch.no_grad()
def click_probability(network: torch.nn.Module, image: torch.Tensor, foreground: Points, background: Points,
                      spec: ClickSpec, device: torch.device) -> torch.Tensor:
    """(X, Y, Z) probability of the structure for a (1, X, Y, Z) model-grid image and model-grid clicks."""
    guided = AddGuidanceSignald("image", "guidance", sigma=spec.sigma_vox)(
        {"image": np.asarray(image, dtype=np.float32), "guidance": [list(map(list, foreground)), list(map(list, background))]}
    )["image"]
    x = torch.as_tensor(guided, dtype=torch.float32)[None].to(device)
    with autocast(device):
        logits = sliding_window_inference(x, spec.roi_size, sw_batch_size=1, predictor=network, overlap=0.25, mode="gaussian")
    return torch.softmax(logits[0].float(), 0)[1].cpu()


def to_grid(points: Points, from_affine: np.ndarray, to_affine: np.ndarray) -> list[list[int]]:
    """Voxel indices on one grid -> the nearest voxel indices on another (both affines to the same world)."""
    if not len(points):
        return []
    homogeneous = np.c_[np.asarray(points, dtype=np.float64), np.ones(len(points))]
    mapped = (np.linalg.inv(to_affine) @ np.asarray(from_affine, np.float64) @ homogeneous.T).T[:, :3]
    return np.rint(mapped).astype(int).tolist()


class ClickPredictor:
    """One click model: its serving weights (reloaded when a training promotes new ones) and recent images."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec: ClickSpec = store.spec
        self._serving = ServingNetwork(store, lambda: build_network(self.spec))
        self.images = VolumeCache()
        self._pre = in_memory_transforms(self.spec)

    @property
    def version(self) -> int:
        """The serving version whose weights the network holds."""
        return self._serving.version

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network with the newest published weights, on ``device``, in eval mode."""
        return self._serving(device)

    def box(self, volume: Volume, points: np.ndarray) -> Box:
        """The clicks' bounding box, grown to the network's field of ``roi_size * spacing_mm`` millimetres.

        Sized so that it resamples to at most ``roi_size`` model voxels: one voxel more (183 CT voxels of
        0.7 mm make 65 at 2 mm) would take four sliding windows instead of one.
        """
        field_vox = [int((r - 1) * s / v) + 1 for r, s, v in zip(self.spec.roi_size, self.spec.spacing_mm, volume.spacing_mm)]
        return at_least(box_around(points, [0, 0, 0], volume.shape), field_vox, volume.shape)

    def predict(self, volume: Volume, foreground: Points, background: Points, device: torch.device) -> tuple[np.ndarray, Box]:
        """uint8 (X, Y, Z) label of the structure (1) on the image grid, and the box it was computed in."""
        box = self.box(volume, np.asarray([*foreground, *background]))
        crop = volume.crop(box)
        image = MetaTensor(torch.from_numpy(np.ascontiguousarray(crop.array, dtype=np.float32))[None], affine=crop.affine)
        image = self._pre({"image": image})["image"]
        grid = np.asarray(image.affine, dtype=np.float64)
        prob = click_probability(self.network(device), image, to_grid(foreground, crop.affine, grid),
                                 to_grid(background, crop.affine, grid), self.spec, device)
        resampled = onto_box(prob[None], image.affine, volume, box)[0]
        label = empty_label(volume.shape)
        label[box] = self.correct(resampled > 0.5, crop, box, foreground, background)
        return label, box

    def correct(self, label: np.ndarray, crop: Volume, box: Box, foreground: Points, background: Points) -> np.ndarray:
        """The network's label in the box with every click's geodesic neighbourhood set to the click's class
        (``scribbles.clicks``): a briefly trained network hardly follows correction clicks, the user does."""
        start = np.asarray([s.start for s in box])
        return click_correction(label, windowed(crop.array, self.spec.intensity),
                                (np.asarray(foreground).reshape(-1, 3) - start).tolist(),
                                (np.asarray(background).reshape(-1, 3) - start).tolist(), crop.spacing_mm,
                                self.spec.click_radius_mm, self.spec.click_edge_weight)
