"""A segmentation model's class probabilities inside a box of the image, on the image's own voxels.

The refinement needs the model's belief only where the user scribbles; running the segmentation model
on the box (plus some context) instead of the whole CT is what keeps a refinement interactive. The box
goes through the model's own pre-processing (RAS, model spacing, intensity), the model's sliding window,
and back onto the image voxels by one trilinear resampling. When the model has just segmented the whole
image (Slicer: run the model, then scribble), its answer is cropped instead of running it again.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from monai.data import MetaTensor

from medlabel.interactive.box import grow, mm_to_voxels
from medlabel.interactive.volume import Box, Volume, crop_affine, file_key, onto_box
from medlabel.interactive.preprocess import in_memory_transforms
from medlabel.kinds.segmentation.answers import LAST_ANSWERS, WholeImageAnswer
from medlabel.kinds.segmentation.predictor import Predictor


def structure_probability(prob: np.ndarray, index: int) -> np.ndarray:
    """P(structure) against its strongest rival class, ``p_s / (p_s + max_other)``: above 0.5 exactly where
    the model's argmax picks the structure, and 0.5 where the model cannot tell (an untrained model's
    1/C everywhere would otherwise read as a confident "not this structure")."""
    others = np.delete(prob, index, axis=0).max(axis=0)
    return prob[index] / np.maximum(prob[index] + others, 1e-6)


def _onto_box(prob: torch.Tensor, affine, volume: Volume, box: Box, structure: int | None) -> np.ndarray:
    """``onto_box``; with ``structure`` only that class against its rival, computed before resampling so
    that one channel is resampled instead of C."""
    if structure is not None:
        return onto_box(torch.from_numpy(structure_probability(prob.float().numpy(), structure))[None], affine, volume,
                        box)[0]
    return onto_box(prob, affine, volume, box)


@torch.no_grad()
def probabilities_in_box(
    predictor: Predictor, volume: Volume, box: Box, context_mm: float, device: torch.device, overlap: float = 0.25,
    structure: int | None = None,
) -> np.ndarray:
    """(C, *box shape) float32 class probabilities of the serving model for the voxels of ``box``.

    ``overlap`` is the sliding windows'; 0 takes a third of the windows of the default 0.25 on a 128^3 CT
    box (seams between windows matter little to a prior that is blended with the scribbles and cut).
    With ``structure`` (a class index) the answer is (*box shape): that class against its strongest rival
    (``structure_probability``), computed on the model's grid so that one channel is resampled onto the
    box instead of C (0.3 s for three on a 128^3 CT box). This is what the refinement reads.
    """
    outer = grow(box, mm_to_voxels(context_mm, volume.spacing_mm), volume.shape)
    crop = volume.crop(outer)
    image = MetaTensor(torch.from_numpy(np.ascontiguousarray(crop.array, dtype=np.float32))[None], affine=crop.affine)
    image = in_memory_transforms(predictor.spec)({"image": image})["image"]
    prob = predictor.probabilities(image, device, overlap).cpu()
    return _onto_box(prob, image.affine, volume, box, structure)


def answer_in_box(answer: WholeImageAnswer, volume: Volume, box: Box, structure: int | None = None) -> np.ndarray:
    """What ``probabilities_in_box`` answers, read from the model's whole-image answer instead of running
    it: the part of the model grid under ``box`` (one voxel wider, for the interpolation), resampled."""
    corners = np.array([[s.start, s.stop - 1][k] for s in box for k in (0, 1)], dtype=np.float64).reshape(3, 2)
    ijk = np.stack(np.meshgrid(*corners, indexing="ij"), -1).reshape(-1, 3)
    world = volume.affine[:3, :3] @ ijk.T + volume.affine[:3, 3:4]
    model = np.linalg.solve(answer.affine[:3, :3], world - answer.affine[:3, 3:4])
    shape = answer.prob.shape[1:]
    part = tuple(slice(max(0, int(np.floor(lo)) - 1), min(n, int(np.ceil(hi)) + 2))
                 for lo, hi, n in zip(model.min(1), model.max(1), shape))
    return _onto_box(answer.prob[(slice(None), *part)], crop_affine(answer.affine, part), volume, box, structure)


class PriorCache:
    """The prior's probabilities in the last box, reused while the user keeps scribbling inside it.

    A new box reads the model's whole-image answer when the segmentation task left one for this image
    and these weights (``LAST_ANSWERS``: the user ran the model, then scribbles), else runs the network.

    In Slicer the user places the ROI once and paints stroke after stroke in it: the image, the box and the
    serving weights stay the same, so the model's answer does too (in a 128^3 CT box it is most of a
    refinement). Keyed by the image file (path, size, mtime), the serving weights' stamp and the box; a
    box inside the cached one is cropped from it.
    """

    def __init__(self):
        self._key: tuple | None = None
        self._box: Box | None = None
        self._prob: np.ndarray | None = None
        self._lock = threading.Lock()
        self.source = ""  # where the last answer came from, for the infer task's report

    def get(self, predictor: Predictor, image_path: str, volume: Volume, box: Box, context_mm: float,
            device: torch.device, overlap: float, structure: int | None = None) -> np.ndarray:
        predictor.network(device)  # picks up newly promoted weights before the stamp is read
        answer = LAST_ANSWERS.get(predictor, image_path)
        key = (file_key(image_path), predictor.store.serving_stamp(), context_mm, str(device), overlap, structure,
               id(answer))
        with self._lock:
            if key == self._key and all(c.start <= b.start and b.stop <= c.stop for b, c in zip(box, self._box)):
                inner = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, self._box))
                self.source = "cached box"
                return self._prob[(..., *inner)]  # one channel (a structure) or all classes
        if answer is not None:
            prob, source = answer_in_box(answer, volume, box, structure), "model's answer on the image"
        else:
            prob = probabilities_in_box(predictor, volume, box, context_mm, device, overlap, structure)
            source = "network in the box"
        prob.flags.writeable = False
        with self._lock:
            self._key, self._box, self._prob, self.source = key, box, prob, source
        return prob
