"""Input validation shared by the scribbles modules.

Kept in one place so every public function reports the same problem with the same
words ("shape", "foreground", "background"), which callers and tests rely on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scribbles.errors import ScribbleError


def as_image(image: np.ndarray) -> np.ndarray:
    """Return `image` as a float array, checking it is 2D or 3D and finite.

    Graph construction and likelihoods assume scalar voxels on a 2D/3D grid; a channel
    axis or NaNs would otherwise surface later as an obscure numpy or maxflow error.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ScribbleError(f"image must be 2D or 3D, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ScribbleError("image contains NaN or infinite values")
    return image


def as_mask(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return `mask` as a bool array of `shape`, raising ScribbleError on a shape mismatch.

    Masks often arrive as uint8 label slices; converting here avoids surprises from
    integer masks being used as fancy indices.
    """
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ScribbleError(f"{name} shape {mask.shape} does not match image shape {tuple(shape)}")
    return mask.astype(bool, copy=False)


def check_scribbles(
    image: np.ndarray, fg_mask: np.ndarray, bg_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate an image with its foreground/background scribbles and return them normalised.

    Both classes need at least one scribbled voxel to estimate a likelihood, and a voxel
    cannot be both foreground and background; each failure gets its own message.
    """
    image = as_image(image)
    fg = as_mask(fg_mask, image.shape, "foreground scribble mask")
    bg = as_mask(bg_mask, image.shape, "background scribble mask")
    if not fg.any():
        raise ScribbleError("no foreground scribble: fg_mask is empty")
    if not bg.any():
        raise ScribbleError("no background scribble: bg_mask is empty")
    if np.logical_and(fg, bg).any():
        raise ScribbleError("foreground and background scribbles overlap")
    return image, fg, bg


def as_roi(roi: Sequence[slice], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Normalise ROI slices to bounded, non-empty, unit-step slices for an array of `shape`.

    Open-ended or negative slices are convenient for callers; cropping and pasting back
    need explicit bounds, and an empty or strided box can only be a mistake.
    """
    roi = tuple(roi)
    if len(roi) != len(shape) or not all(isinstance(s, slice) for s in roi):
        raise ScribbleError(f"roi must be {len(shape)} slices, got {roi!r}")
    out = []
    for s, n in zip(roi, shape, strict=True):
        start, stop, step = s.indices(n)
        if step != 1 or stop <= start:
            raise ScribbleError(f"roi slice {s} is empty or strided for an axis of size {n}")
        out.append(slice(start, stop))
    return tuple(out)
