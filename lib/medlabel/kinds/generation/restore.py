"""Restoration from served weights: HU volume in, restored HU volume (and its grid) out.

Shared by inference, the training gate and the benchmark, so all three run exactly the same steps:
HU to window units, the network input (baseline plus condition channel), Gaussian-weighted sliding
windows over the whole volume, window units back to HU.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from medlabel.continual.serving import ServingNetwork
from medlabel.continual.store import ModelStore
from medlabel.kinds.generation.degrade import network_input
from medlabel.kinds.generation.network import build_restoration_network
from medlabel.kinds.generation.spec import RestorationSpec
from medlabel.runtime import autocast

logger = logging.getLogger(__name__)


def to_window(hu: np.ndarray | torch.Tensor, spec: RestorationSpec) -> torch.Tensor:
    return (torch.as_tensor(hu, dtype=torch.float32) - spec.window.hu_min) / spec.window.width


def to_hu(x: torch.Tensor, spec: RestorationSpec) -> torch.Tensor:
    return x * spec.window.width + spec.window.hu_min


@torch.no_grad()
def restore_window(network: torch.nn.Module, degraded: torch.Tensor, spec: RestorationSpec, level: float,
                   device: torch.device) -> torch.Tensor:
    """(1, I, J, K') restored image in window units from a (1, I, J, K) degraded one (K' = K * factor for
    super-resolution)."""
    x = network_input(degraded.float(), spec.degradation, level)
    with autocast(device):
        out = sliding_window_inference(x[None].to(device), roi_size=spec.roi_size, sw_batch_size=2,
                                       predictor=network, overlap=0.25, mode="gaussian")
    return out[0].float().cpu()


class Restorer:
    """One restoration model's serving network, reloaded when the model store publishes new weights."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec: RestorationSpec = store.spec
        self._serving = ServingNetwork(store, lambda: build_restoration_network(self.spec))

    @property
    def version(self) -> int:
        """The serving version whose weights the network holds."""
        return self._serving.version

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network with the newest published weights, on ``device``, in eval mode."""
        return self._serving(device)

    def restore_hu(self, hu_ijk: np.ndarray, level: float, device: torch.device) -> np.ndarray:
        """(I, J, K') float32 HU restored from an (I, J, K) HU volume."""
        x = to_window(hu_ijk, self.spec)[None]
        return to_hu(restore_window(self.network(device), x, self.spec, level, device), self.spec)[0].numpy()
