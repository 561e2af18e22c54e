"""Class probabilities on the model grid to a uint8 label on the image's own voxel grid.

MONAI Label's apps invert their pre-transforms on a full-size float map per class (26 channels of a
512x512x200 CT is about 10 GB); here the argmax happens slab by slab while resampling, so the only
full-size array is the uint8 result.

Model and image grids almost always differ only by axis permutation, flips and spacing (the model grid
is the image reoriented to RAS and resampled). Then trilinear interpolation is separable: three passes
of 1D linear interpolation, coarse axes first, each a product with a small (target x source) weight
matrix, give the same values as a 3D ``grid_sample`` at a fraction of the cost. Rotated grids (an
oblique acquisition) take the general ``grid_sample`` path.
"""

from __future__ import annotations

import numpy as np
import torch


def probabilities_to_label(
    prob: torch.Tensor,
    prob_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    slab_voxels: int = 1_000_000,
) -> np.ndarray:
    """Trilinear resampling of ``prob`` (C, X, Y, Z) onto a target grid, then argmax, as (X, Y, Z) uint8.

    Both affines map voxel indices to the same world frame; any rotation, flip or spacing between the two
    grids is handled by one affine map, so orientation and spacing are undone in a single pass.
    Target voxels outside the model grid become background.
    """
    prob = prob.float()
    index_map = np.linalg.inv(np.asarray(prob_affine, dtype=np.float64)) @ np.asarray(target_affine, np.float64)
    if tuple(prob.shape[1:]) == tuple(target_shape) and np.allclose(index_map, np.eye(4), atol=1e-4):
        return first_argmax(prob).cpu().numpy()
    permutation = _axis_permutation(index_map[:3, :3])
    if permutation is not None:
        return _separable(prob, index_map, permutation, target_shape, slab_voxels)
    return _grid_sample(prob, index_map, target_shape, slab_voxels)


def first_argmax(values: torch.Tensor) -> torch.Tensor:
    """Index of the largest of (C, ...) values along C as uint8, the first one on ties (background wins
    where every class is equal, e.g. outside the model grid). A channel loop beats ``argmax(0)`` on CPU,
    which reduces across a strided dimension."""
    best = values[0].clone()
    index = torch.zeros(values.shape[1:], dtype=torch.uint8, device=values.device)
    for c in range(1, values.shape[0]):
        index = torch.where(values[c] > best, torch.tensor(c, dtype=torch.uint8, device=values.device), index)
        torch.maximum(best, values[c], out=best)
    return index


def _axis_permutation(rot: np.ndarray, tol: float = 1e-6) -> list[int] | None:
    """``p`` with target axis i reading source axis p[i] when ``rot`` only permutes, flips and scales."""
    nonzero = np.abs(rot) > tol * max(1.0, np.abs(rot).max())
    if not (nonzero.sum(0) == 1).all() or not (nonzero.sum(1) == 1).all():
        return None
    return [int(np.flatnonzero(nonzero[:, i])[0]) for i in range(3)]


def _linear_weights(positions: torch.Tensor, size: int) -> torch.Tensor:
    """(T, S) matrix of 1D linear interpolation at fractional source ``positions``: two weights per row;
    samples outside the source contribute zero, exactly as ``grid_sample``'s zero padding does per corner."""
    i0 = positions.floor()
    frac = positions - i0
    i0 = i0.long()
    weights = torch.zeros(len(positions), size + 2, dtype=positions.dtype, device=positions.device)
    rows = torch.arange(len(positions), device=positions.device)
    # columns shifted by one, with a spare column on each side for corners that fall outside the source
    weights[rows, (i0 + 1).clamp(0, size + 1)] += 1 - frac
    weights[rows, (i0 + 2).clamp(0, size + 1)] += frac
    return weights[:, 1:-1]


def _separable(prob, index_map, permutation, target_shape, slab_voxels) -> np.ndarray:
    """Three 1D interpolations, each a matrix product along one axis (BLAS does the work, on every core)."""
    volume = prob.permute(0, *(1 + p for p in permutation))  # source axis i now pairs with target axis i
    scale = [float(index_map[permutation[i], i]) for i in range(3)]
    shift = [float(index_map[permutation[i], 3]) for i in range(3)]
    x, y, z = target_shape
    slab = max(1, slab_voxels // (x * y))
    out = np.zeros(target_shape, dtype=np.uint8)

    def weights(axis: int, start: int, stop: int) -> torch.Tensor:
        t = torch.arange(start, stop, dtype=torch.float64, device=prob.device)
        return _linear_weights((t * scale[axis] + shift[axis]).float(), volume.shape[1 + axis])

    wx, wy = weights(0, 0, x), weights(1, 0, y)
    for k0 in range(0, z, slab):
        k1 = min(z, k0 + slab)
        part = volume @ weights(2, k0, k1).T  # (C, Sx, Sy, K): the coarse axes first
        part = torch.matmul(wy, part)  # (Ty, Sy) @ (C, Sx, Sy, K): batched over C and Sx, no transposes
        part = torch.matmul(wx, part.flatten(2)).unflatten(2, (y, k1 - k0))  # (Tx, Sx) @ (C, Sx, Ty*K)
        out[:, :, k0:k1] = first_argmax(part).cpu().numpy()
    return out


def _grid_sample(prob, index_map, target_shape, slab_voxels) -> np.ndarray:
    src_shape = prob.shape[1:]
    rot = torch.as_tensor(index_map[:3, :3], dtype=torch.float32, device=prob.device)
    shift = torch.as_tensor(index_map[:3, 3], dtype=torch.float32, device=prob.device)
    scale = torch.as_tensor([2.0 / max(s - 1, 1) for s in src_shape], device=prob.device)
    x, y, z = target_shape
    slab = max(1, slab_voxels // (x * y))
    out = np.zeros(target_shape, dtype=np.uint8)
    ii, jj = torch.meshgrid(
        torch.arange(x, dtype=torch.float32, device=prob.device),
        torch.arange(y, dtype=torch.float32, device=prob.device),
        indexing="ij",
    )
    volume = prob[None]  # (1, C, X, Y, Z): grid_sample reads the last three as (D, H, W)
    for k0 in range(0, z, slab):
        k1 = min(z, k0 + slab)
        kk = torch.arange(k0, k1, dtype=torch.float32, device=prob.device)
        idx = torch.stack(torch.broadcast_tensors(ii[..., None], jj[..., None], kk[None, None, :]), dim=-1)
        src = idx @ rot.T + shift  # (X, Y, K, 3) source voxel indices (i, j, k)
        grid = (src * scale - 1.0).flip(-1)[None]  # grid_sample wants (W, H, D) = (k, j, i) order
        sampled = torch.nn.functional.grid_sample(volume, grid, mode="bilinear", align_corners=True)
        out[:, :, k0:k1] = first_argmax(sampled[0]).cpu().numpy()
    return out
