import numpy as np
import torch

from medlabel.io.resample import probabilities_to_label


def one_hot(label: np.ndarray, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(label).long(), classes).permute(3, 0, 1, 2).float()


def test_identity_grid_is_argmax():
    label = np.random.default_rng(0).integers(0, 3, (5, 6, 7)).astype(np.uint8)
    out = probabilities_to_label(one_hot(label, 3), np.eye(4), np.eye(4), label.shape)
    assert out.dtype == np.uint8 and np.array_equal(out, label)


def test_flipped_axis_is_undone():
    label = np.zeros((4, 5, 6), np.uint8)
    label[0, 1, 2] = 1
    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = 3  # model grid is the target flipped along i (as RAS reorientation does)
    out = probabilities_to_label(one_hot(label, 2), flip, np.eye(4), (4, 5, 6))
    assert out[3, 1, 2] == 1 and out.sum() == 1


def test_coarse_grid_upsamples_to_target_with_small_slabs():
    coarse = np.zeros((8, 8, 8), np.uint8)
    coarse[2:6, 2:6, 2:6] = 1
    src = np.diag([2.0, 2.0, 2.0, 1.0])  # 2 mm model voxels, 1 mm target voxels, same origin
    out = probabilities_to_label(one_hot(coarse, 2), src, np.eye(4), (15, 15, 15), slab_voxels=15 * 15 * 2)
    expected = np.zeros((15, 15, 15), np.uint8)
    expected[4:11, 4:11, 4:11] = 1  # trilinear edges fall half way between voxel centres
    assert np.array_equal(out[4:11, 4:11, 4:11], expected[4:11, 4:11, 4:11])
    assert out[:3].sum() == 0 and out[12:].sum() == 0


def test_outside_model_grid_is_background():
    prob = one_hot(np.ones((4, 4, 4), np.uint8), 2)
    shifted = np.eye(4)
    shifted[0, 3] = 10.0  # model grid starts 10 mm away
    out = probabilities_to_label(prob, shifted, np.eye(4), (4, 4, 4))
    assert out.sum() == 0


def test_separable_path_matches_3d_grid_sample_on_permuted_flipped_rescaled_grids():
    """The fast path for axis-aligned grids gives the same labels as the general trilinear path."""
    from medlabel.io.resample import _axis_permutation, _grid_sample, _separable

    rng = np.random.default_rng(1)
    prob = torch.softmax(torch.as_tensor(rng.normal(size=(4, 9, 11, 7)) * 3, dtype=torch.float32), 0)
    src = np.zeros((4, 4))
    src[0, 1], src[1, 2], src[2, 0] = 1.5, -1.5, 2.0  # model axes are the target's permuted, one flipped
    src[:3, 3] = (-1.2, 14.0, 0.3)
    src[3, 3] = 1
    target = np.diag([0.7, 0.8, 1.1, 1.0])
    index_map = np.linalg.inv(src) @ target
    shape = (30, 26, 20)  # reaches past the model grid on some sides: background there
    assert _axis_permutation(index_map[:3, :3]) == [1, 2, 0]
    fast = _separable(prob, index_map, [1, 2, 0], shape, slab_voxels=30 * 26 * 3)
    general = _grid_sample(prob, index_map, shape, slab_voxels=30 * 26 * 3)
    assert np.mean(fast == general) > 0.999  # float rounding may flip a near-tie
    assert 0 < (fast == 0).sum() < fast.size and len(np.unique(fast)) == 4
    assert np.array_equal(fast, probabilities_to_label(prob, src, target, shape, slab_voxels=30 * 26 * 3))


def test_first_argmax_prefers_the_first_class_on_ties():
    from medlabel.io.resample import first_argmax

    values = torch.tensor([[0.0, 0.2, 0.5], [0.0, 0.5, 0.5], [0.0, 0.3, 0.1]])
    assert first_argmax(values).tolist() == [0, 1, 0]

