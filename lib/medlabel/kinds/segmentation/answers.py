"""The segmentation model's last whole-image answer, kept for the refinement that follows it.

In Slicer the user runs the model on an image, then scribbles where it is wrong. The scribbles refine
*that* answer: running the network again in the scribbles' box costs most of a first stroke (0.4 s on a
128^3 CT box here, 1.0-1.3 s on a slower CPU) and answers slightly differently from what is on screen
(other sliding windows, less context). So the segmentation infer task leaves its class probabilities
here, on the model's grid in float16 (one image per model: 92 MB for a 512x512x200 CT), and the
refinement crops them while the image file and the serving weights are the ones they came from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from medlabel.interactive.volume import file_key
from medlabel.kinds.segmentation.predictor import Predictor


@dataclass(frozen=True)
class WholeImageAnswer:
    """Class probabilities of one image as the model computed them, on its own grid."""

    prob: torch.Tensor  # (C, X, Y, Z) float16, CPU
    affine: np.ndarray  # model-grid voxel index -> RAS mm


class LastAnswers:
    """The last answer of each model (by its store folder), for the image file and weights it came from."""

    def __init__(self):
        self._answers: dict[str, tuple[tuple, WholeImageAnswer]] = {}
        self._lock = threading.Lock()

    def put(self, predictor: Predictor, version: int, image_path: str, prob: torch.Tensor, affine) -> None:
        """Keeps ``prob`` (C, X, Y, Z) on the grid of ``affine``, computed by the weights of ``version``."""
        answer = WholeImageAnswer(prob.detach().to("cpu", torch.float16), np.asarray(affine, dtype=np.float64))
        with self._lock:
            self._answers[str(predictor.store.root)] = ((file_key(image_path), version), answer)

    def get(self, predictor: Predictor, image_path: str) -> WholeImageAnswer | None:
        """The answer for this image file as it is now, from the weights ``predictor`` serves, if kept."""
        with self._lock:
            kept = self._answers.get(str(predictor.store.root))
        if kept is None or kept[0] != (file_key(image_path), predictor.version):
            return None
        return kept[1]


LAST_ANSWERS = LastAnswers()
"""One per server process: the segmentation infer task writes it, the scribbles refinement reads it."""
