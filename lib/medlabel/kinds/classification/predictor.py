"""Loads a classifier's serving weights and turns an image file into probabilities, embeddings and maps.

Shared by inference, the active-learning strategies and evaluation, so all of them see exactly the
same pre-processing and network. Weights are reloaded when the model store publishes new ones.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.visualize import GradCAM, GradCAMpp, OcclusionSensitivity

from medlabel.continual.serving import ServingNetwork
from medlabel.continual.store import ModelStore
from medlabel.errors import BadRequest
from medlabel.kinds.classification.network import Classifier, build_network, dropout_modules
from medlabel.kinds.classification.spec import ClassificationSpec
from medlabel.kinds.classification.transforms import infer_transforms
from medlabel.runtime import autocast

logger = logging.getLogger(__name__)


def activate(logits: torch.Tensor, spec: ClassificationSpec) -> torch.Tensor:
    """(..., C) logits -> probabilities: sigmoid per class (multi-label) or softmax."""
    return torch.sigmoid(logits) if spec.multi_label else torch.softmax(logits, dim=-1)


class ClassificationPredictor:
    """One classifier's network (newest published weights), pre-processing and explanations."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec: ClassificationSpec = store.spec
        # version 0 starts from the user's pretrained checkpoint; later versions load over an empty network
        self._serving = ServingNetwork(store, lambda: build_network(self.spec, pretrained=False),
                                       initial=lambda: build_network(self.spec))
        self._pre = infer_transforms(self.spec)
        self._explainer = None
        self._explained: Classifier | None = None

    @property
    def version(self) -> int:
        """The serving version whose weights the network holds."""
        return self._serving.version

    def network(self, device: torch.device) -> Classifier:
        """The network with the newest published weights, on ``device``, in eval mode."""
        return self._serving(device)

    def preprocess(self, image_path: str) -> MetaTensor:
        """(1, *input_size) float32; ``meta["input_shape"]`` is the image's own voxel size."""
        try:
            return self._pre({"image": image_path})["image"]
        except Exception as e:  # a corrupt file, or a volume for a 2D model
            cause = _root_cause(e).replace(image_path, "the file")
            raise BadRequest(f"model '{self.spec.name}' cannot read the image as a {self.spec.dims}D image: {cause}") from e

    @torch.no_grad()
    def probabilities(self, image: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(C,) class probabilities."""
        network = self.network(device)
        with autocast(device):
            logits = network(image[None].to(device))
        return activate(logits.float(), self.spec)[0].cpu()

    @torch.no_grad()
    def sampled_probabilities(self, image: torch.Tensor, device: torch.device, samples: int) -> torch.Tensor:
        """(samples, C) probabilities with dropout active (MC dropout), as one batch."""
        network = self.network(device)
        drops = dropout_modules(network)
        try:
            for m in drops:
                m.train()
            batch = image[None].to(device).expand(samples, *image.shape)
            with autocast(device):
                logits = network(batch)
        finally:
            network.eval()
        return activate(logits.float(), self.spec).cpu()

    @torch.no_grad()
    def embedding(self, image: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(F,) the backbone's embedding of the image (the core-set strategy's feature space)."""
        return self.embedding_and_probabilities(image, device)[0]

    @torch.no_grad()
    def embedding_and_probabilities(self, image: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(F,) embedding and (C,) probabilities from one pass (the head is applied to the embedding)."""
        network = self.network(device)
        with autocast(device):
            features = network.embed(image[None].to(device))
            logits = network.head(features)
        return features[0].float().cpu(), activate(logits.float(), self.spec)[0].cpu()

    def explain(self, image: torch.Tensor, device: torch.device, class_index: int) -> torch.Tensor:
        """(*input_size) map in [0, 1] of where the image drives ``class_index`` up (float32, CPU).

        Grad-CAM (or Grad-CAM++) on the backbone's last convolutional feature map; occlusion sensitivity
        (the drop of the class probability when a patch is blurred out) for networks without one.
        """
        network = self.network(device)
        x = image[None].to(device)
        if self.spec.explanation == "occlusion":
            mask = [max(2, s // 4) for s in self.spec.input_size]
            occlusion = OcclusionSensitivity(network, mask_size=mask, n_batch=32, verbose=False,
                                             activate=lambda t: activate(t, self.spec))
            with torch.no_grad():
                occluded, _ = occlusion(x)
                drop = activate(network(x), self.spec)[0, class_index] - occluded[0, class_index]  # (B, C, *spatial)
            drop = drop.clamp_min(0)
            return (drop / drop.max().clamp_min(1e-8)).float().cpu()
        if self._explainer is None or self._explained is not network:  # new weights: hook the new network
            cam = GradCAMpp if self.spec.explanation == "gradcampp" else GradCAM
            self._explainer = cam(nn_module=network, target_layers=network.target_layer)
            self._explained = network
        with torch.enable_grad():
            result = self._explainer(x, class_idx=class_index)
        return result[0, 0].detach().float().cpu()


def to_image_grid(values: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A map on the model's input grid resized (linear) to the image's own voxel size ``input_shape``."""
    target = [s for s in input_shape if s != 1] if len(input_shape) > values.ndim else list(input_shape)
    mode = "bilinear" if values.ndim == 2 else "trilinear"
    resized = F.interpolate(values[None, None].float(), size=target, mode=mode, align_corners=False)[0, 0]
    return resized.reshape(input_shape)


def _root_cause(e: BaseException) -> str:
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
