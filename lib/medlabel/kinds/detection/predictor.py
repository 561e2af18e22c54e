"""Loads a detector's serving weights and turns an image file into world boxes with scores.

Shared by inference, the companion labelmap, uncertainty scoring and evaluation, so all see exactly the
same pre-processing and network. Weights are reloaded when the model store publishes new ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor

from medlabel.continual.serving import ServingNetwork
from medlabel.continual.store import ModelStore
from medlabel.errors import BadRequest
from medlabel.kinds.detection.boxes import voxel_to_world
from medlabel.kinds.detection.network import build_detector, build_network
from medlabel.kinds.detection.transforms import infer_transforms
from medlabel.runtime import autocast

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Boxes found in one image: world RAS mm ``(N, 6)`` and scores ``(N,)``, best first."""

    boxes: np.ndarray
    scores: np.ndarray

    def above(self, threshold: float) -> "Detections":
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep])


@torch.no_grad()
def detect_voxel_boxes(detector, image: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MONAI voxel boxes and scores for a (1, X, Y, Z) image by sliding windows (AMP on CUDA)."""
    detector.eval()
    with autocast(device):
        out = detector([image.to(device)], use_inferer=True)[0]
    return out["box"].float().cpu(), out["box_label_scores"].float().cpu()


class DetectionPredictor:
    """One detection model's network, pre-processing and inference."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec = store.spec
        self._serving = ServingNetwork(store, lambda: build_network(self.spec))
        self._pre = infer_transforms(self.spec)

    @property
    def version(self) -> int:
        """The serving version whose weights the network holds."""
        return self._serving.version

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network with the newest published weights, on ``device``, in eval mode."""
        return self._serving(device)

    def preprocess(self, image_path: str) -> dict[str, MetaTensor]:
        """``image`` (1, X, Y, Z) normalised and ``raw`` (original intensities), both on the model grid."""
        try:
            return self._pre({"image": image_path})
        except Exception as e:
            raise BadRequest("cannot read the image as a 3D volume (NIfTI, NRRD or DICOM expected): "
                             f"{str(e).replace(image_path, 'the file').splitlines()[0][:300]}") from e

    def detect(self, image: MetaTensor, device: torch.device, score_threshold: float | None = None,
               flip_axes: tuple[int, ...] = ()) -> Detections:
        """World RAS boxes with scores >= ``score_threshold`` (the spec's by default).

        ``flip_axes`` (spatial axes 0..2) runs on a flipped image and flips the boxes back: test-time
        augmentation for the uncertainty score.
        """
        detector = build_detector(self.spec, self.network(device), score_threshold=score_threshold)
        pixels = image.as_tensor() if isinstance(image, MetaTensor) else image
        if flip_axes:
            pixels = pixels.flip([a + 1 for a in flip_axes])
        boxes, scores = detect_voxel_boxes(detector, pixels, device)
        for axis in flip_axes:
            size = pixels.shape[axis + 1]
            boxes[:, [axis, axis + 3]] = size - boxes[:, [axis + 3, axis]]
        world = voxel_to_world(boxes.numpy(), np.asarray(image.affine))
        return Detections(world, scores.numpy())
