"""The fast label path of interactive answers: SimpleITK reading and file-ordered label arrays."""

import numpy as np

from medlabel.interactive.volume import empty_label, read_label, read_volume
from medlabel.io.writer import write_label


def _affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.array([[0, -0.7, 0], [-0.8, 0, 0], [0, 0, 2.0]])  # permuted, flipped, anisotropic
    affine[:3, 3] = [10.0, -20.0, 30.0]
    return affine


def test_read_label_matches_monai_reader():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, size=(5, 6, 7), dtype=np.uint8)
    path = write_label(label, _affine(), ".nrrd")
    fast, reference = read_label(path, "label"), read_volume(path, "label", dtype=None)
    assert np.array_equal(fast.array, label) and np.array_equal(reference.array, label)
    assert np.allclose(fast.affine, reference.affine, atol=1e-5)


def test_file_ordered_label_round_trips():
    label = empty_label((5, 6, 7))
    label[1:3, 2:5, 4] = 1
    assert label.T.flags.c_contiguous  # what the writer hands to SimpleITK, without a copy
    assert np.array_equal(read_label(write_label(label, _affine(), ".nrrd"), "label").array, label)
