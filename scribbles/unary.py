"""ISeg-style unary terms: model probability overridden by the user's scribbles.

Implements Eq. 7 of Wang et al., "Interactive medical image segmentation using deep
learning with image-specific fine tuning", IEEE TMI 37(7), 2018 (arXiv:1710.04043),
as MONAI Label's `make_iseg_unary` does: scribbled voxels are certain, all others
keep the network's belief, optionally blended with a scribble-based likelihood.
"""

from __future__ import annotations

import numpy as np

from scribbles._checks import as_mask
from scribbles.errors import ScribbleError

__all__ = ["make_iseg_unary"]


def make_iseg_unary(
    prob: np.ndarray,
    fg_mask: np.ndarray,
    bg_mask: np.ndarray,
    *,
    likelihood: np.ndarray | None = None,
    alpha: float = 0.5,
    eps: float = 1e-6,
) -> np.ndarray:
    """Two-class negative-log-likelihood unary terms from P(fg) and scribbles.

    P(fg) is `prob`, or `(1 - alpha) * prob + alpha * likelihood` when a likelihood map is
    given (so a scribble-derived intensity model can correct a confidently wrong network
    away from the scribbles). Scribbled foreground is then forced to P(fg)=1 and scribbled
    background to P(fg)=0. Probabilities are clipped to [eps, 1 - eps] before the log so
    the costs stay finite (max -log(eps), about 13.8 for the default) and the graph cut
    remains well conditioned. Either scribble mask may be empty.

    Args:
        prob: Model probability of foreground in [0, 1], 2D or 3D.
        fg_mask: Boolean foreground scribbles, same shape as `prob`.
        bg_mask: Boolean background scribbles, same shape as `prob`.
        likelihood: Optional P(fg) from scribble intensities, same shape as `prob`.
        alpha: Weight of `likelihood` in the blend, in [0, 1]; ignored without it.
        eps: Clipping bound, in (0, 0.5).

    Returns:
        float32 array of shape (2, *prob.shape): index 0 is the cost of labelling a voxel
        background (-log P(bg)), index 1 the cost of foreground (-log P(fg)).

    Raises:
        ScribbleError: On shape mismatch, overlapping scribbles, probabilities outside
            [0, 1] or out-of-range `alpha` / `eps`.
    """
    p = np.asarray(prob, dtype=np.float32)
    if p.ndim not in (2, 3):
        raise ScribbleError(f"prob must be 2D or 3D, got shape {p.shape}")
    fg = as_mask(fg_mask, p.shape, "foreground scribble mask")
    bg = as_mask(bg_mask, p.shape, "background scribble mask")
    if np.logical_and(fg, bg).any():
        raise ScribbleError("foreground and background scribbles overlap")
    if not 0.0 < eps < 0.5:
        raise ScribbleError(f"eps must be in (0, 0.5), got {eps}")
    if not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ScribbleError("prob must contain probabilities in [0, 1]")
    if likelihood is not None:
        lik = np.asarray(likelihood, dtype=np.float32)
        if lik.shape != p.shape:
            raise ScribbleError(f"likelihood shape {lik.shape} does not match prob shape {p.shape}")
        if not 0.0 <= alpha <= 1.0:
            raise ScribbleError(f"alpha must be in [0, 1], got {alpha}")
        p = (1.0 - alpha) * p + alpha * lik
    else:
        p = p.copy()
    p[fg] = 1.0
    p[bg] = 0.0
    p = np.clip(p, eps, 1.0 - eps)
    return np.stack([-np.log1p(-p), -np.log(p)]).astype(np.float32)
