"""A model's serving weights in memory, reloaded when the model store publishes new ones.

Every kind's predictor holds one: inference always sees the newest promoted (or rolled-back) version,
and reports which version that is, without a restart.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import torch

from medlabel.continual.store import ModelStore

logger = logging.getLogger(__name__)


class ServingNetwork:
    """``serving(device)`` is the network with the newest published weights, in eval mode on ``device``.

    ``build`` makes an empty network of the spec's architecture; ``initial`` makes version 0 when the store
    has none yet (default ``build``; a classifier starts from a user's pretrained checkpoint instead).
    """

    def __init__(self, store: ModelStore, build: Callable[[], torch.nn.Module],
                 initial: Callable[[], torch.nn.Module] | None = None):
        self.store = store
        self._build = build
        store.ensure_initial(initial or build)
        self._lock = threading.Lock()
        self._network: torch.nn.Module | None = None
        self._stamp: object = object()
        self.version = 0  # the serving version whose weights the network holds

    def __call__(self, device: torch.device) -> torch.nn.Module:
        with self._lock:
            stamp = self.store.serving_stamp()
            if self._network is None or stamp != self._stamp:
                network = self._build()
                checkpoint = self.store.load_serving()
                if checkpoint is not None:
                    network.load_state_dict(checkpoint["model"])
                    self.version = int(checkpoint.get("info", {}).get("version", 0))
                else:  # only if the serving file was removed by hand
                    self.version = 0
                    logger.warning(f"model '{self.store.spec.name}' has no serving weights: serving a fresh initialisation")
                self._network, self._stamp = network, stamp
            return self._network.to(device).eval()
