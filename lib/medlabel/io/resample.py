"""Class probabilities on the model grid to a uint8 label on the image's own voxel grid.

MONAI Label's apps invert their pre-transforms on a full-size float map per class (26 channels of a
512x512x200 CT is about 10 GB); here the argmax happens slab by slab while resampling, so the only
full-size array is the uint8 result.
"""

import numpy as np
import torch


def probabilities_to_label(
    prob: torch.Tensor,
    prob_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    slab_voxels: int = 4_000_000,
) -> np.ndarray:
    """Trilinear resampling of ``prob`` (C, X, Y, Z) onto a target grid, then argmax, as (X, Y, Z) uint8.

    Both affines map voxel indices to the same world frame; any rotation, flip or spacing between the two
    grids is handled by one affine map, so orientation and spacing are undone in a single pass.
    Target voxels outside the model grid become background.
    """
    prob = prob.float()
    src_shape = prob.shape[1:]
    index_map = np.linalg.inv(np.asarray(prob_affine, dtype=np.float64)) @ np.asarray(target_affine, np.float64)
    if tuple(src_shape) == tuple(target_shape) and np.allclose(index_map, np.eye(4), atol=1e-4):
        return prob.argmax(0).to(torch.uint8).cpu().numpy()

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
        norm = src * scale - 1.0
        grid = norm.flip(-1)[None]  # grid_sample wants (W, H, D) = (k, j, i) order
        sampled = torch.nn.functional.grid_sample(volume, grid, mode="bilinear", align_corners=True)
        out[:, :, k0:k1] = sampled[0].argmax(0).to(torch.uint8).cpu().numpy()
    return out
