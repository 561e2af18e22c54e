"""One scribble refinement: the model's probability, the scribbles' intensity model, a graph cut in a box.

The ISeg unary (Wang et al., TMI 2018) keeps the network's belief where the user did not scribble and
makes scribbled voxels certain; an intensity likelihood fitted on the scribbles corrects a confidently
wrong network nearby; the contrast-sensitive graph cut snaps the boundary to image edges. All numerical
parts are the ``scribbles`` package; this module decides where to work and with which samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scribbles import (
    gmm_likelihood, graph_cut, histogram_likelihood, keep_local_changes, make_iseg_unary, new_strokes, scribble_roi,
)

from medlabel.interactive.box import mm_to_voxels
from medlabel.interactive.preprocess import windowed
from medlabel.interactive.volume import Box, Volume, empty_label
from medlabel.kinds.scribbles.request import Scribbles
from medlabel.kinds.scribbles.spec import ScribblesSpec


@dataclass(frozen=True)
class Refinement:
    label: np.ndarray  # uint8 (X, Y, Z), 1 = the refined structure
    box: Box  # where the work happened
    cut_factor: int  # 1: the cut ran on the image's voxels; f: on a grid f times coarser
    seconds: dict[str, float] = field(default_factory=dict)  # time per step: prior, likelihood, cut


def work_box(scribbles: Scribbles, volume: Volume, margin_mm: float) -> Box:
    """The user's ROI, else the scribbles' bounding box grown by ``margin_mm``."""
    if scribbles.roi is not None:
        return scribbles.roi
    return scribble_roi(scribbles.foreground, scribbles.background, mm_to_voxels(margin_mm, volume.spacing_mm))


def _unlike(image: np.ndarray, strokes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``others`` plus the voxels whose intensity is more than 2.5 standard deviations from the strokes'
    mean (a range, not percentiles: a short stroke holds a handful of voxels), or everything but the
    strokes if hardly any voxel is."""
    values = image[strokes].astype(np.float64)
    lo, hi = values.mean() - 2.5 * values.std(), values.mean() + 2.5 * values.std()
    unlike = ((image < lo) | (image > hi)) & ~strokes | others
    return unlike if unlike.sum() >= max(50, strokes.sum()) else ~strokes


def _fit_samples(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, prob: np.ndarray,
                 trained: bool) -> tuple[np.ndarray, np.ndarray]:
    """Voxels to fit the two intensity models on.

    The foreground model is fitted on the foreground strokes. The background model must describe what
    the structure is *not*: the background strokes alone are too few (a model fitted on a short stroke is
    narrow and hands every unseen intensity to the foreground), and the whole box is mostly the structure
    itself whenever the stroke lies inside a large organ (measured: a first stroke in the liver then
    shrank the result, Dice 0.38 -> 0.37). So the background samples are the background strokes plus the
    box voxels whose intensity is unlike the foreground strokes'.

    A request with background strokes only ("remove this") usually paints tissue the model took for the
    structure, so it looks like the structure. A model trained on labels (serving version >= 1) then gives
    the best sample of both classes, its own prediction in the box (measured on briefly trained liver
    models, held-out octants: fitting the foreground on voxels unlike the stroke made the cut drop the
    liver, Dice 0.74 -> 0.63, 0.69 -> 0.57 and 0.80 -> 0.63). An untrained model's prediction is noise:
    then the mirror image of the foreground case, the foreground model fitted on the voxels unlike the strokes.
    """
    if fg.any():
        return fg, _unlike(image, fg, bg)
    predicted = prob > 0.5
    if trained and (predicted & ~bg).sum() >= 50 and (~predicted).sum() >= 50:
        return predicted & ~bg, ~predicted | bg
    return _unlike(image, bg, fg), bg


def _blocks(a: np.ndarray, f: int, mode: str) -> np.ndarray:
    """``a`` as (x, f, y, f, z, f) blocks, padded only where a side is not a multiple of ``f``."""
    pad = [(0, (-n) % f) for n in a.shape]
    if any(p for _, p in pad):
        a = np.pad(a, pad, mode=mode)
    x, y, z = (n // f for n in a.shape)
    return a.reshape(x, f, y, f, z, f)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    return _blocks(a, f, "edge").mean(axis=(1, 3, 5))


def _block_any(a: np.ndarray, f: int) -> np.ndarray:
    return _blocks(a, f, "constant").any(axis=(1, 3, 5))


def _upsample(a: np.ndarray, f: int, shape: tuple[int, ...]) -> np.ndarray:
    for axis in range(3):
        a = np.repeat(a, f, axis=axis)
    return a[: shape[0], : shape[1], : shape[2]]


def cut(image: np.ndarray, unary: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing, lamda: float,
        max_voxels: int) -> tuple[np.ndarray, int]:
    """Graph cut of a box; boxes above ``max_voxels`` are cut on a grid coarsened by an integer factor.

    Building a PyMaxflow grid graph costs about 1 s per 2 M voxels on a 2-core CPU, most of a refinement
    of a 128^3 box; a factor 2 cut of the same box takes a tenth of that and moves the boundary by at
    most one coarse voxel. The scribbled voxels keep their labels at full resolution.
    """
    f = max(1, math.ceil((image.size / max_voxels) ** (1 / 3)))
    if f == 1:
        return graph_cut(image, unary, lamda=lamda, spacing=spacing, fg_seeds=fg, bg_seeds=bg), 1
    fg_c, bg_c = _block_any(fg, f), _block_any(bg, f)
    fg_c &= ~bg_c  # a block holding both kinds of scribble is left to the unary
    bg_c &= ~_block_any(fg, f)
    coarse_unary = np.stack([_block_mean(unary[0], f), _block_mean(unary[1], f)])
    local = graph_cut(_block_mean(image, f), coarse_unary, lamda=lamda, spacing=np.asarray(spacing) * f,
                      fg_seeds=fg_c, bg_seeds=bg_c)
    local = _upsample(local, f, image.shape).copy()
    local[fg], local[bg] = 1, 0
    return local, f


def refine(
    volume: Volume, scribbles: Scribbles, spec: ScribblesSpec, probabilities: Callable[[Box], np.ndarray],
    prior_trained: bool = False,
) -> Refinement:
    """The refined structure on the whole image grid.

    Outside the work box the answer is the structure as the client sent it (nothing there changes);
    with a ROI, outside it is background, since the ROI says where the object is.

    Args:
        volume: the image.
        scribbles: the parsed request.
        spec: the refinement's settings.
        probabilities: box -> (*box shape) P(structure) of the prior model there, against its strongest
            rival class (``prior.probabilities_in_box`` with ``structure``).
        prior_trained: the prior model has learnt from labels (serving version >= 1).
    """
    t0 = time.perf_counter()
    box = work_box(scribbles, volume, spec.margin_mm)
    prob = np.ascontiguousarray(probabilities(box), dtype=np.float32)
    t_prior = time.perf_counter()
    t_likelihood = t_prior
    # one memory layout for all: the image and scribbles are views in file order, the model's answer is C
    # order, and numpy's mixed-layout element-wise steps made likelihood and cut about 1 s slower on 128^3
    image = np.ascontiguousarray(windowed(volume.array[box], spec.prior.intensity))
    fg, bg = np.ascontiguousarray(scribbles.foreground[box]), np.ascontiguousarray(scribbles.background[box])
    fg_fit, bg_fit = _fit_samples(image, fg, bg, prob, prior_trained)
    if not fg_fit.any() or not bg_fit.any():  # the scribbles fill the whole box
        local, factor = fg.astype(np.uint8), 1
    else:
        likelihood = (gmm_likelihood if spec.method == "gmm" else histogram_likelihood)(image, fg_fit, bg_fit)
        unary = make_iseg_unary(np.clip(prob, 0.0, 1.0), fg, bg, likelihood=likelihood, alpha=spec.alpha)
        t_likelihood = time.perf_counter()
        local, factor = cut(image, unary, fg, bg, volume.spacing_mm, spec.lamda, spec.cut_voxels)
    if scribbles.current is not None:  # earlier corrections stay; the new stroke changes what it touches
        current = (np.ascontiguousarray(scribbles.current[box]) | fg) & ~bg  # Slicer's map shows strokes there
        local = keep_local_changes(current, local, new_strokes(current, fg, bg)).astype(np.uint8)
    label = empty_label(volume.shape)
    if scribbles.roi is None and scribbles.current is not None and scribbles.current.any():
        label[...] = scribbles.current
    label[box] = local
    end = time.perf_counter()
    seconds = {"prior": t_prior - t0, "likelihood": t_likelihood - t_prior, "cut": end - t_likelihood}
    return Refinement(label, box, factor, {k: round(v, 3) for k, v in seconds.items()})
