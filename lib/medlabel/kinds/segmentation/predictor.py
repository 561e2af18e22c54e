"""Loads a segmentation model's serving weights and turns an image file into class probabilities.

Shared by inference, uncertainty scoring and evaluation, so all three see exactly the same
pre-processing and network. Weights are reloaded when the model store publishes new ones.
"""

from __future__ import annotations

import logging

import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference

from medlabel.continual.serving import ServingNetwork
from medlabel.continual.store import ModelStore
from medlabel.errors import BadRequest
from medlabel.kinds.segmentation.network import build_network, dropout_modules
from medlabel.kinds.segmentation.transforms import infer_transforms
from medlabel.runtime import autocast
from medlabel.spec import ModelSpec

logger = logging.getLogger(__name__)


class Predictor:
    """One model's network, pre-processing and sliding-window inference."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec = store.spec
        self._serving = ServingNetwork(
            store, lambda: build_network(self.spec).to(memory_format=torch.channels_last_3d)
        )
        self._pre = infer_transforms(self.spec)

    @property
    def version(self) -> int:
        """The serving version whose weights the network holds."""
        return self._serving.version

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network with the newest published weights, on ``device``, in eval mode."""
        return self._serving(device)

    def preprocess(self, image_path: str) -> MetaTensor:
        """(1, X, Y, Z) float32 on the model grid, with ``original_affine`` and ``spatial_shape`` in meta."""
        try:
            return self._pre({"image": image_path})["image"]
        except Exception as e:  # a corrupt or non-image file surfaces here, deep in a reader
            cause = _root_cause(e).replace(image_path, "the file")  # no server paths in client messages
            raise BadRequest(f"cannot read the image as a 3D volume (NIfTI, NRRD or DICOM expected): {cause}") from e

    def logits(self, image: torch.Tensor, network: torch.nn.Module, device: torch.device) -> torch.Tensor:
        return sliding_window_logits(image, network, self.spec, device)

    def probabilities(self, image: torch.Tensor, device: torch.device, overlap: float = 0.25) -> torch.Tensor:
        """(C, X, Y, Z) softmax probabilities from the serving weights."""
        return torch.softmax(sliding_window_logits(image, self.network(device), self.spec, device, overlap), dim=0)

    def sampled_probabilities(self, image: torch.Tensor, device: torch.device, samples: int) -> torch.Tensor:
        """Mean of ``samples`` stochastic predictions: MC dropout, or flip test-time augmentation without dropout."""
        network = self.network(device)
        drops = dropout_modules(network)
        total = None
        try:
            for s in range(samples):
                if drops:
                    for m in drops:
                        m.train()
                    p = torch.softmax(self.logits(image, network, device), 0)
                else:
                    axis = 1 + s % 3
                    p = torch.softmax(self.logits(image.flip(axis), network, device), 0).flip(axis)
                total = p if total is None else total + p
        finally:
            network.eval()
        return total / samples


@torch.no_grad()
def sliding_window_logits(
    image: torch.Tensor, network: torch.nn.Module, spec: ModelSpec, device: torch.device, overlap: float = 0.25
) -> torch.Tensor:
    """(C, X, Y, Z) logits for a (1, X, Y, Z) image by Gaussian-weighted sliding windows (AMP on CUDA).

    Windows are channels-last, the layout the serving network's weights are kept in (for SegResNet on the
    demo CT 180 MB less peak memory than the default layout, and no slower). The input is a plain tensor:
    MetaTensor's per-operation bookkeeping made channels-last windows several times slower.
    """
    window = window_size(image.shape[1:], spec.roi_size, spec.network.downsampling)
    x = torch.as_tensor(image)[None].to(device).contiguous(memory_format=torch.channels_last_3d)
    with autocast(device):
        if all(w >= s for w, s in zip(window, image.shape[1:])):
            out = one_window_logits(x, window, network)
        else:
            out = sliding_window_inference(
                x, roi_size=window, sw_batch_size=2, predictor=network, overlap=overlap, mode="gaussian"
            )
    return out[0].float()


def one_window_logits(x: torch.Tensor, window: tuple[int, ...], network: torch.nn.Module) -> torch.Tensor:
    """What the sliding window computes when one window covers the whole (N, C, X, Y, Z) image: the same
    centred zero padding, one forward pass, the same crop. With a single window the Gaussian weights
    divide out, so skipping them and the window's full-size accumulation buffers changes nothing but
    the peak memory."""
    pad: list[int] = []
    for size, w in zip(reversed(x.shape[2:]), reversed(window)):  # F.pad lists the last axis first
        diff = max(w - size, 0)
        pad += [diff // 2, diff - diff // 2]
    out = network(torch.nn.functional.pad(x, pad))
    crop = tuple(slice(pad[2 * i], pad[2 * i] + size) for i, size in enumerate(reversed(x.shape[2:])))
    return out[(..., *reversed(crop))]


def window_size(shape: tuple[int, ...], roi: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    """The sliding window: the spec's ROI, shrunk along any axis where the image is smaller than it.

    Padding a small image up to the full ROI only feeds the network zeros: on the 128^3 demo CT a 96^3
    window spends over half its convolutions on padding. The networks are fully convolutional, so a window
    rounded up to a multiple of the network's downsampling (every level divides it, as for the ROI itself)
    runs the same network on the image with little padding, for a fraction of the time. Normalisation
    statistics then come from image rather than padding, as in training, where patches are cut from inside
    the images.
    """
    return tuple(min(r, -(-int(d) // multiple) * multiple) for d, r in zip(shape, roi))


def _root_cause(e: BaseException) -> str:
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
