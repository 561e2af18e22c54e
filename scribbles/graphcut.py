"""Binary graph-cut segmentation on 2D/3D grids with PyMaxflow.

Minimises E(L) = sum_p U_p(L_p) + lamda * sum_{p~q} [L_p != L_q] w_pq with the
contrast-sensitive Potts weight w_pq = exp(-(I_p - I_q)^2 / (2 sigma^2)) / dist(p, q)
(Boykov & Jolly, ICCV 2001). Replaces numpymaxflow, which MONAI Label's scribbles use
but which does not build against numpy 2; PyMaxflow (`import maxflow`) does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import maxflow
import numpy as np

from scribbles._checks import as_image, as_mask
from scribbles.errors import ScribbleError

__all__ = ["graph_cut", "neighbour_offsets", "estimate_sigma"]

#: Connectivity -> max number of non-zero offset components (face, edge, corner neighbours).
_CONNECTIVITY = {2: {4: 1, 8: 2}, 3: {6: 1, 18: 2, 26: 3}}


def neighbour_offsets(ndim: int, connectivity: int) -> list[tuple[int, ...]]:
    """Half of the neighbour offsets for a connectivity (one per undirected edge).

    Only offsets whose first non-zero component is positive are returned; edges are
    added symmetrically, so the other half would double every pairwise weight.
    """
    allowed = _CONNECTIVITY.get(ndim, {})
    if connectivity not in allowed:
        raise ScribbleError(f"connectivity must be one of {sorted(allowed)} for {ndim}D, got {connectivity}")
    offsets = []
    for off in itertools.product((-1, 0, 1), repeat=ndim):
        nonzero = [o for o in off if o != 0]
        if nonzero and nonzero[0] > 0 and len(nonzero) <= allowed[connectivity]:
            offsets.append(off)
    return offsets


def estimate_sigma(image: np.ndarray) -> float:
    """Contrast scale from the image: RMS intensity difference between face neighbours.

    Used when no sigma is given; it makes w_pq close to 1 in flat regions and small
    across edges whatever the intensity units (HU, [0, 1], MR arbitrary units).
    """
    image = np.asarray(image, dtype=np.float64)
    sq, n = 0.0, 0
    for axis in range(image.ndim):
        d = np.diff(image, axis=axis)
        sq += float(np.square(d).sum())
        n += d.size
    sigma = float(np.sqrt(sq / max(n, 1)))
    return sigma if sigma > 0 else 1.0


def _shifted_pair(arr: np.ndarray, off: tuple[int, ...]) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """Slices selecting voxels p whose neighbour p+off is inside the grid, with both values."""
    src = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, arr.shape, strict=True))
    dst = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, arr.shape, strict=True))
    return src, arr[src], arr[dst]


def graph_cut(
    image: np.ndarray,
    unary: np.ndarray,
    *,
    lamda: float = 3.0,
    sigma: float | None = None,
    spacing: Sequence[float] | None = None,
    connectivity: int | None = None,
    fg_seeds: np.ndarray | None = None,
    bg_seeds: np.ndarray | None = None,
) -> np.ndarray:
    """Globally optimal binary labelling of `image` given unary costs, by s-t min-cut.

    Pairwise weights shrink across strong intensity edges (scale `sigma`) and with
    physical neighbour distance (from `spacing`), so the boundary snaps to image edges
    and anisotropic voxels are weighted correctly. Seeds are hard constraints (their
    wrong-label cost exceeds any possible cut), unlike the finite costs in `unary`.

    Args:
        image: 2D or 3D intensity image.
        unary: Costs of shape (2, *image.shape): [0] background, [1] foreground.
        lamda: Smoothness weight (>= 0); 0 gives the per-voxel argmin of `unary`.
        sigma: Intensity contrast scale (> 0); None estimates it with `estimate_sigma`.
        spacing: Voxel size per axis (default all 1).
        connectivity: 4 or 8 in 2D, 6, 18 or 26 in 3D; default 4 / 6 (face neighbours).
        fg_seeds: Optional bool mask forced to foreground.
        bg_seeds: Optional bool mask forced to background.

    Returns:
        uint8 array shaped like `image`, 1 = foreground, 0 = background.

    Raises:
        ScribbleError: On shape mismatch or invalid parameters.
    """
    image = as_image(image)
    unary = np.asarray(unary, dtype=np.float64)
    if unary.shape != (2, *image.shape):
        raise ScribbleError(f"unary shape {unary.shape} does not match (2, *image shape) = {(2, *image.shape)}")
    if not np.isfinite(unary).all():
        raise ScribbleError("unary contains NaN or infinite values")
    if lamda < 0:
        raise ScribbleError(f"lamda must be >= 0, got {lamda}")
    sigma = estimate_sigma(image) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ScribbleError(f"sigma must be > 0, got {sigma}")
    spacing = np.ones(image.ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    if spacing.shape != (image.ndim,) or not (spacing > 0).all():
        raise ScribbleError(f"spacing must be {image.ndim} positive values, got {spacing.tolist()}")
    offsets = neighbour_offsets(image.ndim, connectivity or (4 if image.ndim == 2 else 6))

    # Subtracting the per-voxel minimum leaves the optimum unchanged and keeps flows small.
    source_caps = unary[1] - np.minimum(unary[0], unary[1])  # paid when voxel -> foreground
    sink_caps = unary[0] - np.minimum(unary[0], unary[1])  # paid when voxel -> background

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(image.shape)
    cut_bound = 1.0 + float(np.maximum(source_caps, sink_caps).max())
    if lamda > 0:
        img = image.astype(np.float64, copy=False)
        for off in offsets:
            src, a, b = _shifted_pair(img, off)
            dist = float(np.linalg.norm(np.asarray(off) * spacing))
            weights = np.zeros(image.shape)
            weights[src] = lamda * np.exp(-np.square(a - b) / (2.0 * sigma**2)) / dist
            structure = np.zeros((3,) * image.ndim)
            structure[tuple(o + 1 for o in off)] = 1.0
            graph.add_grid_edges(nodes, weights=weights, structure=structure, symmetric=True)
            cut_bound += 2.0 * lamda / dist  # max pairwise weight a single voxel can cut
    # Flipping one voxel changes the energy by less than cut_bound, so a seed's
    # wrong-label cost of cut_bound is never paid at the optimum: a hard constraint.
    fg = None if fg_seeds is None else as_mask(fg_seeds, image.shape, "foreground seed mask")
    bg = None if bg_seeds is None else as_mask(bg_seeds, image.shape, "background seed mask")
    if fg is not None and bg is not None and np.logical_and(fg, bg).any():
        raise ScribbleError("foreground and background seeds overlap")
    if fg is not None:
        source_caps[fg], sink_caps[fg] = 0.0, cut_bound
    if bg is not None:
        source_caps[bg], sink_caps[bg] = cut_bound, 0.0
    graph.add_grid_tedges(nodes, source_caps, sink_caps)
    graph.maxflow()
    # Nodes on the sink side pay their source capacity, i.e. the foreground cost.
    return graph.get_grid_segments(nodes).astype(np.uint8)
